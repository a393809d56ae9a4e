"""Layer-level speed targets of the native runtime, checked as benchmarks (never as timed unit tests):
a 90 %-sparse 1x1 convolution runs at least 2x faster than the same layer dense (Fast Sparse ConvNets)
and a 4-bit codebook layer stays within 1.2x of dense (issue 3).

The dense and the encoded layer run interleaved, BLOCK runs each in turn, and the ratio is paired
(the median over cycles of encoded block median / dense block median): this shared machine's speed
drifts within seconds, and a dense median taken before the encoded one once read 1.29x for a layer
that measures 1.0-1.1x interleaved."""

from __future__ import annotations

import itertools
import statistics
import time

import numpy as np
import pytest

from edgefit.runtime import Session
from edgefit.runtime.harness.paired import block_medians, paired_ratio, warm_up

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]

BLOCK = 5
ROUNDS = 6 * BLOCK
#: Encoding -> the most it may take relative to the dense layer.
TARGETS = {"bsr1": 0.5, "bsr4": 0.5, "cb4": 1.2}


def _timed_ms(session: Session, feeds: dict[str, np.ndarray]) -> float:
    t0 = time.perf_counter()
    session.run(feeds)
    return (time.perf_counter() - t0) * 1e3


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_1x1_layer_vs_dense(benchmark, h, artifact, kind):
    rng = np.random.default_rng(0)
    ci = co = 256
    # 90 % sparse in the pattern the encoding stores (1x4 blocks for bsr4, as `--block 1x4` prunes):
    # unstructured weights would keep 1 - 0.9**4 = 34 % of the 4-row blocks.
    w = h.sparse_weights(rng, (co, ci, 1, 1), 0.1, 4 if kind == "bsr4" else 1)
    x = rng.standard_normal((1, ci, 28, 28)).astype(np.float32)

    def session(encoding: str) -> Session:
        graph = h.single_op("conv2d", {"x": (x.shape, "f32")}, {"w": h.encode(w, encoding)}, (1, co, 28, 28))
        return Session(artifact(graph))

    feeds = {"x": x}
    dense, s = session("dense"), session(kind)
    dense_times: list[float] = []
    rounds = itertools.count()

    def dense_block_every_block() -> None:
        if next(rounds) % BLOCK:
            return
        warm_up(lambda: dense.run(feeds))  # as the encoded layer gets below
        dense_times.extend(_timed_ms(dense, feeds) for _ in range(BLOCK))
        warm_up(lambda: s.run(feeds))

    benchmark.pedantic(s.run, args=(feeds,), setup=dense_block_every_block, rounds=ROUNDS, iterations=1)
    encoded = [t * 1e3 for t in benchmark.stats.stats.data]
    ratio = paired_ratio(block_medians(encoded, BLOCK), block_medians(dense_times, BLOCK))
    ms, dense_ms = statistics.median(encoded), statistics.median(dense_times)
    benchmark.extra_info.update(dense_ms=dense_ms, ratio=ratio, kernel=s.kernel_of("n0"))
    assert ratio <= TARGETS[kind], f"{kind} {ms:.3f} ms vs dense {dense_ms:.3f} ms: {ratio:.2f}x (paired)"
