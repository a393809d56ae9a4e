"""Paired latency ratios for a shared, drifting machine: two runtimes timed in alternating blocks of
runs, each block reduced to its median, and the ratio taken per pair of blocks run side by side
(then its median), so that both sides of every ratio saw the same machine."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def block_medians(times: Sequence[float], block: int) -> list[float]:
    """The median of each whole block of `block` consecutive times (a partial last block is dropped)."""
    return [statistics.median(times[i : i + block]) for i in range(0, len(times) - block + 1, block)]


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over block pairs of a / b (block medians of two runtimes, in the order they ran)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))
