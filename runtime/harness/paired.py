"""Paired latency ratios for a shared, drifting machine: two runtimes timed in alternating blocks of
runs, each block reduced to its median, and the ratio taken per pair of blocks run side by side
(then its median), so that both sides of every ratio saw the same machine."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

#: Untimed warm-up before each block. One run was not enough: right after another runtime's block
#: the scheduler can leave a 2-thread runtime's worker on its caller's core for the next ~10 ms,
#: and the first timed runs then took up to 2x (measured: sparse MobileNetV2, 2 threads, 4-6 ms
#: vs 2.5-3 ms for the rest of the block; with 20 ms of warm-up the block is even).
WARM_UP_S = 0.02


def warm_up(
    run: Callable[[], object], seconds: float = WARM_UP_S, clock: Callable[[], float] = time.perf_counter
) -> int:
    """Calls `run` at least once and until `seconds` have passed; returns how many times it ran.
    Timing the warm-up rather than counting runs gives every runtime the same settling time,
    whatever its speed."""
    end = clock() + seconds
    runs = 0
    while True:
        run()
        runs += 1
        if clock() >= end:
            return runs


def block_medians(times: Sequence[float], block: int) -> list[float]:
    """The median of each whole block of `block` consecutive times (a partial last block is dropped)."""
    return [statistics.median(times[i : i + block]) for i in range(0, len(times) - block + 1, block)]


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over block pairs of a / b (block medians of two runtimes, in the order they ran)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def paired_quartiles(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The lower and upper quartiles of the per-pair ratios a / b: how far the cycles agree with
    their median (paired_ratio). A spread that straddles 1.0 means the two runtimes are not told
    apart on this machine in this run. One pair gives that ratio twice."""
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    if len(ratios) < 2:
        return (ratios[0], ratios[0]) if ratios else (float("nan"), float("nan"))
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q1, q3
