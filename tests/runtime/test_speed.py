"""Layer-level speed targets of the native runtime, checked as benchmarks (never as timed unit tests):
a 90 %-sparse 1x1 convolution runs at least 2x faster than the same layer dense (Fast Sparse ConvNets)
and a 4-bit codebook layer stays within 1.2x of dense (issue 3)."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from edgefit.runtime import Session

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]

ROUNDS = 30
#: Encoding -> the most it may take relative to the dense layer.
TARGETS = {"bsr1": 0.5, "bsr4": 0.5, "cb4": 1.2}


def _median_ms(session: Session, feeds: dict[str, np.ndarray]) -> float:
    session.run(feeds)
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        session.run(feeds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


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

    dense_ms = _median_ms(session("dense"), {"x": x})
    s = session(kind)
    benchmark.pedantic(s.run, args=({"x": x},), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    ms = benchmark.stats.stats.median * 1e3
    benchmark.extra_info.update(dense_ms=dense_ms, ratio=ms / dense_ms, kernel=s.kernel_of("n0"))
    assert ms <= TARGETS[kind] * dense_ms, f"{kind} {ms:.3f} ms vs dense {dense_ms:.3f} ms"
