"""An NCHW block-sparse 1x1 convolution whose large output only a depthwise layer reads runs with
it band by band of output rows (executor.cc, fuse_spmm_depthwise): the intermediate is never
stored, each band's input rows are computed once (the rows two bands share are kept), and the
result must match the reference as the two layers run apart do."""

from __future__ import annotations

import numpy as np
import pytest

from edgefit.compiler import reference
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify
from edgefit.runtime import Session


def _graph(h, n: int, ci: int, c: int, hh: int, ww: int, k: int, s: int, block: int, tail: bool):
    """x -> sparse 1x1 (ci -> c, relu6) -> k x k depthwise, stride s, "same" padding (relu6) -> y;
    with `tail`, the intermediate is also read by a second 1x1 (so the pair cannot fuse)."""
    rng = np.random.default_rng(ci + c + hh + k + s)
    pad = k // 2
    ho, wo = (hh + 2 * pad - k) // s + 1, (ww + 2 * pad - k) // s + 1
    consts = {
        "w1": h.encode(h.sparse_weights(rng, (c, ci, 1, 1), 0.3, block), f"bsr{block}"),
        "b1": h.encode(rng.standard_normal(c).astype(np.float32), "dense"),
        "w2": h.encode(rng.standard_normal((c, 1, k, k)).astype(np.float32) / k, "dense"),
        "b2": h.encode(rng.standard_normal(c).astype(np.float32), "dense"),
    }
    shapes = {"x": (n, ci, hh, ww), "a": (n, c, hh, ww), "y": (n, c, ho, wo)}
    one = {"dilation": (1, 1), "act": "relu6"}
    nodes = [
        Node(
            "conv2d",
            "expand",
            ("x", "w1", "b1"),
            ("a",),
            freeze(one | {"stride": (1, 1), "padding": (0,) * 4, "groups": 1}),
            "t:1",
        ),
        Node(
            "conv2d",
            "dw",
            ("a", "w2", "b2"),
            ("y",),
            freeze(one | {"stride": (s, s), "padding": (pad,) * 4, "groups": c}),
            "t:2",
        ),
    ]
    outputs = ["y"]
    if tail:
        consts["w3"] = h.encode(h.sparse_weights(rng, (8, c, 1, 1), 0.3, block), f"bsr{block}")
        shapes["t"] = (n, 8, hh, ww)
        nodes.append(
            Node(
                "conv2d",
                "tail",
                ("a", "w3"),
                ("t",),
                freeze(one | {"stride": (1, 1), "padding": (0,) * 4, "groups": 1}),
                "t:3",
            )
        )
        outputs.append("t")
    values = {v: Value(v, sh, "f32") for v, sh in shapes.items()}
    values |= {v: Value(v, tuple(w.shape), "f32") for v, w in consts.items()}
    graph = verify(Graph(("x",), tuple(outputs), tuple(nodes), values, consts, {"model": "test"}))
    return graph, {"x": rng.standard_normal(shapes["x"]).astype(np.float32)}


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(
    "n,ci,c,hh,ww,k,s,block",
    [
        (1, 16, 64, 96, 96, 3, 2, 4),  # MobileNetV2 features.2's shape of pair, smaller
        (2, 8, 56, 97, 101, 5, 2, 1),  # odd sizes, 5x5, two images
        (1, 12, 32, 128, 130, 3, 1, 2),  # stride 1: every band shares two rows with the next
    ],
    ids=["k3s2", "k5s2-odd-n2", "k3s1"],
)
def test_large_sparse_expand_and_depthwise_run_in_bands(h, artifact, threads, n, ci, c, hh, ww, k, s, block):
    graph, feeds = _graph(h, n, ci, c, hh, ww, k, s, block, tail=False)
    assert c * hh * ww * 4 >= 2 << 20  # large enough to be fused
    sess = Session(artifact(graph), threads=threads)
    got = sess.run(feeds)["y"]
    want = reference.run(graph, feeds)["y"]
    assert h.rel_err(got, want) <= 2e-5
    assert sess.kernel_of("expand").endswith("(row bands)"), sess.kernel_of("expand")
    assert sess.kernel_of("dw") == "fused into expand"


@pytest.mark.parametrize("case", ["small", "shared"])
def test_small_or_shared_intermediates_are_stored(h, artifact, case):
    """Below 2 MB the bands measured slower (csrc/README.md); an intermediate read twice must be
    stored whatever its size."""
    hh = 56 if case == "small" else 96
    graph, feeds = _graph(h, 1, 16, 64, hh, hh, 3, 2, 4, tail=case == "shared")
    sess = Session(artifact(graph), threads=2)
    got, want = sess.run(feeds), reference.run(graph, feeds)
    for name in want:
        assert h.rel_err(got[name], want[name]) <= 2e-5, name
    assert "row bands" not in sess.kernel_of("expand")
    assert sess.kernel_of("dw").startswith("f32_dwconv"), sess.kernel_of("dw")
