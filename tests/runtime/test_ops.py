"""Every op of docs/ops.md and every weight encoding through the native runtime, for every kernel
set this CPU runs (scalar reference, AVX2, AVX-512), against the numpy reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from edgefit.compiler import reference
from edgefit.runtime import Session

ENCODINGS = ["dense", "int8", "bsr1", "bsr2", "bsr4", "cb2", "cb3g2", "cb4g3", "cb8"]
TOL = 2e-5


def _check(h, artifact, graph, feeds, isa, tol=TOL):
    s = Session(artifact(graph), isa=isa)
    got = s.run(feeds)
    want = reference.run(graph, feeds)
    for name, w in want.items():
        assert got[name].shape == w.shape and got[name].dtype == w.dtype
        if w.dtype == np.uint8:
            # Rounding of exact .5 ties may differ by one step between f32 paths.
            assert np.abs(got[name].astype(int) - w.astype(int)).max() <= 1
        else:
            assert h.rel_err(got[name], w) <= tol, (name, h.rel_err(got[name], w))
    return s


# (Ci, Co, k, stride, padding, dilation, groups, H, W, N)
CONVS = [
    (8, 13, 1, 1, (0, 0, 0, 0), 1, 1, 5, 7, 1),  # 1x1 direct GEMM; row + pixel tails
    (16, 24, 1, 1, (0, 0, 0, 0), 1, 1, 17, 17, 1),  # 289 pixels: not a tile multiple
    (6, 8, 1, 2, (0, 0, 0, 0), 1, 1, 9, 9, 1),  # 1x1 stride 2 (im2col)
    (3, 16, 3, 2, (1, 1, 1, 1), 1, 1, 15, 14, 2),  # first-layer style, batch 2
    (5, 7, 3, 1, (0, 1, 2, 0), 1, 1, 6, 5, 1),  # asymmetric padding
    (4, 8, 3, 1, (2, 2, 2, 2), 2, 1, 7, 7, 1),  # dilation 2
    (8, 8, 3, 1, (1, 1, 1, 1), 1, 2, 6, 6, 1),  # grouped
    (4, 4, 7, 2, (3, 3, 3, 3), 1, 1, 1, 1, 1),  # tiny spatial, kernel larger than input
    # Dense stride-1 k x k with > 64 output pixels: the direct transposed tiles (f32_conv_t_*).
    (8, 16, 3, 1, (1, 1, 1, 1), 1, 1, 12, 11, 2),  # batch 2
    (16, 32, 3, 1, (0, 1, 2, 0), 1, 2, 10, 9, 1),  # grouped, asymmetric padding
    (8, 16, 3, 1, (2, 2, 2, 2), 2, 1, 9, 9, 1),  # dilation 2
]
DWCONVS = [(3, 1), (3, 2), (5, 1), (5, 2)]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("case", CONVS, ids=lambda c: f"ci{c[0]}co{c[1]}k{c[2]}s{c[3]}g{c[6]}")
def test_conv2d(h, artifact, isa, encoding, case):
    ci, co, k, s, pad, d, g, hh, ww, n = case
    rng = np.random.default_rng(ci * 31 + co)
    block = int(encoding[3:]) if encoding.startswith("bsr") else 1
    if (co // g) % block:
        co = co + (block - co % block) if g == 1 else co
        if (co // g) % block:
            pytest.skip(f"block {block} does not divide {co // g} output channels per group")
    w = h.sparse_weights(rng, (co, ci // g, k, k), 0.4, block)
    ho = (hh + pad[0] + pad[2] - d * (k - 1) - 1) // s + 1
    wo = (ww + pad[1] + pad[3] - d * (k - 1) - 1) // s + 1
    graph = h.single_op(
        "conv2d",
        {"x": ((n, ci, hh, ww), "f32")},
        {"w": h.encode(w, encoding), "b": h.encode(rng.standard_normal(co).astype(np.float32), "dense")},
        (n, co, ho, wo),
        {"stride": (s, s), "padding": pad, "dilation": (d, d), "groups": g, "act": "relu6"},
    )
    x = rng.standard_normal((n, ci, hh, ww)).astype(np.float32)
    sess = _check(h, artifact, graph, {"x": x}, isa)
    kernel = sess.kernel_of("n0")
    family = {"bsr": "spmm", "cb": "cb_gemm"}.get(
        encoding[:3] if encoding.startswith("bsr") else encoding[:2], "gemm"
    )
    assert f"f32_{family}" in kernel or family in kernel, kernel
    if isa != "scalar":
        assert any(v in kernel for v in ("avx2", "avx512", "neon")), kernel


@pytest.mark.parametrize("encoding", ["dense", "int8"])
@pytest.mark.parametrize("k,s", DWCONVS)
@pytest.mark.parametrize("hw", [(1, 1), (7, 9), (16, 17)])
@pytest.mark.parametrize("act", ["none", "relu", "hardswish"])
def test_depthwise(h, artifact, isa, encoding, k, s, hw, act):
    rng = np.random.default_rng(k * 10 + s)
    c, (hh, ww), p = 5, hw, k // 2
    w = rng.standard_normal((c, 1, k, k)).astype(np.float32)
    ho, wo = (hh + 2 * p - k) // s + 1, (ww + 2 * p - k) // s + 1
    graph = h.single_op(
        "conv2d",
        {"x": ((1, c, hh, ww), "f32")},
        {"w": h.encode(w, encoding), "b": h.encode(rng.standard_normal(c).astype(np.float32), "dense")},
        (1, c, ho, wo),
        {"stride": (s, s), "padding": (p, p, p, p), "dilation": (1, 1), "groups": c, "act": act},
    )
    x = rng.standard_normal((1, c, hh, ww)).astype(np.float32)
    sess = _check(h, artifact, graph, {"x": x}, isa)
    kernel = sess.kernel_of("n0")
    assert "dwconv" in kernel
    if isa != "scalar":
        assert f"{k}x{k}s{s}__" in kernel and "scalar" not in kernel, kernel


def test_depthwise_dilated_uses_generic(h, artifact, isa):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    graph = h.single_op(
        "conv2d",
        {"x": ((1, 4, 9, 9), "f32")},
        {"w": h.encode(w, "dense")},
        (1, 4, 5, 5),
        {"stride": (1, 1), "padding": (0, 0, 0, 0), "dilation": (2, 2), "groups": 4},
    )
    sess = _check(h, artifact, graph, {"x": rng.standard_normal((1, 4, 9, 9)).astype(np.float32)}, isa)
    assert sess.kernel_of("n0") == "f32_dwconv_ukernel_kxk__scalar"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("n,k,o", [(1, 37, 12), (3, 64, 20), (1, 1, 4)])
@pytest.mark.parametrize("act", ["none", "hardswish"])
def test_linear(h, artifact, isa, encoding, n, k, o, act):
    rng = np.random.default_rng(n + k + o)
    block = int(encoding[3:]) if encoding.startswith("bsr") else 1
    w = h.sparse_weights(rng, (o, k), 0.3, block)
    graph = h.single_op(
        "linear",
        {"x": ((n, k), "f32")},
        {"w": h.encode(w, encoding), "b": h.encode(rng.standard_normal(o).astype(np.float32), "dense")},
        (n, o),
        {"act": act},
    )
    _check(h, artifact, graph, {"x": rng.standard_normal((n, k)).astype(np.float32)}, isa)


@pytest.mark.parametrize("op", ["relu", "relu6", "hardswish"])
def test_unary(h, artifact, isa, op):
    x = (np.random.default_rng(1).standard_normal((2, 3, 5, 7)) * 5).astype(np.float32)
    graph = h.single_op(op, {"x": (x.shape, "f32")}, {}, x.shape)
    _check(h, artifact, graph, {"x": x}, isa, tol=1e-6)


@pytest.mark.parametrize("act", ["none", "relu", "relu6", "hardswish"])
def test_add_and_affine(h, artifact, isa, act):
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((1, 6, 9, 11)).astype(np.float32) * 4 for _ in range(2))
    graph = h.single_op("add", {"a": (a.shape, "f32"), "b": (b.shape, "f32")}, {}, a.shape, {"act": act})
    _check(h, artifact, graph, {"a": a, "b": b}, isa, tol=1e-6)
    scale, shift = (h.encode(rng.standard_normal(6).astype(np.float32), "dense") for _ in range(2))
    graph = h.single_op(
        "channel_affine", {"x": (a.shape, "f32")}, {"s": scale, "t": shift}, a.shape, {"act": act}
    )
    _check(h, artifact, graph, {"x": a}, isa, tol=1e-6)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_concat(h, artifact, isa, axis):
    rng = np.random.default_rng(4)
    shapes = [(2, 3, 4, 5), (2, 3, 4, 5)]
    ax = axis % 4
    shapes[1] = tuple(d + 2 if i == ax else d for i, d in enumerate(shapes[1]))
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    out = tuple(sum(s[ax] for s in shapes) if i == ax else d for i, d in enumerate(shapes[0]))
    graph = h.single_op("concat", {"a": (shapes[0], "f32"), "b": (shapes[1], "f32")}, {}, out, {"axis": axis})
    _check(h, artifact, graph, {"a": xs[0], "b": xs[1]}, isa, tol=0)


POOLS = [
    ((3, 3), (2, 2), (1, 1, 1, 1), 0, 1),
    ((3, 3), (2, 2), (0, 0, 0, 0), 1, 1),  # ceil_mode overhang
    ((2, 2), (2, 2), (0, 0, 0, 0), 1, 0),
    ((3, 3), (1, 1), (1, 1, 1, 1), 0, 0),  # count_include_pad off
    ((3, 2), (2, 1), (1, 0, 1, 0), 1, 1),
]


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("pool", POOLS)
def test_pools(h, artifact, isa, op, pool):
    kernel, stride, pad, ceil_mode, include = pool
    x = np.random.default_rng(5).standard_normal((1, 3, 8, 7)).astype(np.float32)
    attrs = {
        "kernel": kernel,
        "stride": stride,
        "padding": pad,
        "ceil_mode": ceil_mode,
        "count_include_pad": include,
    }
    ho = reference.pool_out(8, kernel[0], stride[0], pad[0], pad[2], bool(ceil_mode))
    wo = reference.pool_out(7, kernel[1], stride[1], pad[1], pad[3], bool(ceil_mode))
    graph = h.single_op(op, {"x": (x.shape, "f32")}, {}, (1, 3, ho, wo), attrs)
    _check(h, artifact, graph, {"x": x}, isa, tol=1e-6)


def test_global_pool_reshape_softmax(h, artifact, isa):
    from edgefit.compiler.ir import Graph, Node, Value, freeze, verify

    x = np.random.default_rng(6).standard_normal((2, 10, 5, 3)).astype(np.float32)
    values = {
        "x": Value("x", x.shape),
        "p": Value("p", (2, 10, 1, 1)),
        "f": Value("f", (2, 10)),
        "y": Value("y", (2, 10)),
    }
    nodes = (
        Node("global_avg_pool", "gap", ("x",), ("p",)),
        Node("reshape", "flat", ("p",), ("f",), freeze({"shape": (2, 10)})),
        Node("softmax", "sm", ("f",), ("y",), freeze({"axis": 1})),
    )
    graph = verify(Graph(("x",), ("y",), nodes, values, {}, {}))
    sess = _check(h, artifact, graph, {"x": x}, isa, tol=1e-6)
    assert sess.kernel_of("flat") == "alias"


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantize_dequantize(h, artifact, isa, per_channel):
    from edgefit.compiler.ir import Graph, Node, Value, freeze, verify

    x = (np.random.default_rng(7).standard_normal((1, 3, 4, 5)) * 3).astype(np.float32)
    scale = (0.05, 0.1, 0.02) if per_channel else (0.04,)
    zp = (128, 100, 3) if per_channel else (120,)
    attrs = freeze({"scale": scale, "zero_point": zp, "axis": 1})
    values = {"x": Value("x", x.shape), "q": Value("q", x.shape, "u8"), "y": Value("y", x.shape)}
    nodes = (Node("quantize", "q", ("x",), ("q",), attrs), Node("dequantize", "dq", ("q",), ("y",), attrs))
    graph = verify(Graph(("x",), ("q", "y"), nodes, values, {}, {}))
    _check(h, artifact, graph, {"x": x}, isa, tol=1e-6)
    # A split model's tail takes the u8 bottleneck tensor as its graph input.
    tail = verify(Graph(("q",), ("y",), nodes[1:], values, {}, {}))
    q = np.random.default_rng(8).integers(0, 256, x.shape).astype(np.uint8)
    _check(h, artifact, tail, {"q": q}, isa, tol=1e-6)
