"""Performance targets of the native runtime that can be checked on any x86/ARM CPU: a 90 %-sparse
1x1 convolution runs at least 2x faster than the same layer dense (Fast Sparse ConvNets), and a
4-bit codebook layer stays close to dense. Minimum of repeated runs, so a busy machine only adds noise."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgefit.runtime import Session

pytestmark = pytest.mark.benchmark


def _best_ms(session: Session, feeds: dict[str, np.ndarray], repeat: int = 30) -> float:
    session.run(feeds)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        session.run(feeds)
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def test_sparse_1x1_is_twice_as_fast_as_dense(h, artifact):
    rng = np.random.default_rng(0)
    ci = co = 256
    w = h.sparse_weights(rng, (co, ci, 1, 1), 0.1)
    x = rng.standard_normal((1, ci, 28, 28)).astype(np.float32)
    times = {}
    for kind in ("dense", "bsr1", "bsr4", "cb4"):
        graph = h.single_op("conv2d", {"x": (x.shape, "f32")}, {"w": h.encode(w, kind)}, (1, co, 28, 28))
        s = Session(artifact(graph))
        times[kind] = _best_ms(s, {"x": x})
    assert times["dense"] >= 2.0 * times["bsr1"], times
    assert times["dense"] >= 2.0 * times["bsr4"], times
    # Codebook decoding costs something, but the layer must not fall far behind dense.
    assert times["cb4"] <= 2.0 * times["dense"], times
