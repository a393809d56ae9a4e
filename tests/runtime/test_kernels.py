"""Kernel registry coverage and checks against PyTorch: every kernel variant this CPU can run is
selected by some ISA cap and exercised here, and convolutions agree with torch over edge shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgefit.compiler.ir import Graph, Node, Value, freeze, verify
from edgefit.runtime import Session


def _coverage_graphs(h) -> list[tuple[Graph, dict[str, np.ndarray]]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8, 12, 12)).astype(np.float32)
    out = []

    def conv(w_kind, co, k, s, groups=1, dil=1, act="none"):
        ci = 8
        w = h.sparse_weights(
            rng, (co, ci // groups, k, k), 0.5, int(w_kind[3:]) if w_kind.startswith("bsr") else 1
        )
        p = dil * (k // 2)
        ho = (12 + 2 * p - dil * (k - 1) - 1) // s + 1
        g = h.single_op(
            "conv2d",
            {"x": ((1, ci, 12, 12), "f32")},
            {"w": h.encode(w, w_kind)},
            (1, co, ho, ho),
            {"stride": (s, s), "padding": (p,) * 4, "dilation": (dil, dil), "groups": groups, "act": act},
        )
        out.append((g, {"x": x}))

    for kind in ("dense", "bsr1", "bsr2", "bsr4", "cb4"):
        conv(kind, 8, 1, 1)
    conv("dense", 8, 3, 1, act="hardswish")
    conv("dense", 16, 3, 1)  # 12x12 output, 16 channels out: direct transposed tiles (f32_conv_t_*)
    conv("dense", 4, 3, 1)  # fewer outputs than any strip: unfold into packed B + blocked GEMM
    conv("bsr1", 8, 3, 2)  # sparse k x k: unfolded whole, then spmm
    conv("dense", 16, 3, 2)  # 6x6 output: the transposed small-image tiles (f32_gemm_t_*)
    for k, s in ((3, 1), (3, 2), (5, 1), (5, 2)):
        conv("dense", 8, k, s, groups=8)
    conv("dense", 8, 3, 1, groups=8, dil=2)
    lin = h.single_op(
        "linear", {"x": ((1, 8), "f32")}, {"w": h.encode(rng.standard_normal((4, 8)), "dense")}, (1, 4)
    )
    out.append((lin, {"x": x[0, :, 0, 0][None]}))
    for op in ("relu", "relu6", "hardswish", "global_avg_pool", "softmax"):
        shape = (1, 8, 1, 1) if op == "global_avg_pool" else x.shape
        out.append((h.single_op(op, {"x": (x.shape, "f32")}, {}, shape), {"x": x}))
    out.append(
        (h.single_op("add", {"a": (x.shape, "f32"), "b": (x.shape, "f32")}, {}, x.shape), {"a": x, "b": x})
    )
    s, t = (h.encode(rng.standard_normal(8).astype(np.float32), "dense") for _ in range(2))
    out.append((h.single_op("channel_affine", {"x": (x.shape, "f32")}, {"s": s, "t": t}, x.shape), {"x": x}))
    for op in ("max_pool2d", "avg_pool2d"):
        out.append((h.single_op(op, {"x": (x.shape, "f32")}, {}, (1, 8, 6, 6), {"kernel": (2, 2)}), {"x": x}))
    q = freeze({"scale": (0.1,), "zero_point": (128,)})
    values = {"x": Value("x", x.shape), "q": Value("q", x.shape, "u8"), "y": Value("y", x.shape)}
    nodes = (Node("quantize", "n0", ("x",), ("q",), q), Node("dequantize", "n1", ("q",), ("y",), q))
    out.append((verify(Graph(("x",), ("y",), nodes, values, {}, {})), {"x": x}))
    # Four 16-channel convolutions (the second depthwise, the third 4-bit codebook) into a global
    # pool and a max pool (blocked, its ReLU reads it back to NCHW): a channel-blocked region
    # (f32_nchwc_*) with a reorder in and one out.
    xb = rng.standard_normal((1, 16, 8, 8)).astype(np.float32)
    groups = (1, 16, 1, 1)
    consts = {
        f"w{i}": h.encode(
            rng.standard_normal((16, 16 // g, 3, 3)).astype(np.float32), "cb4" if i == 2 else "dense"
        )
        for i, g in enumerate(groups)
    }
    chain = ("x", "a0", "a1", "a2", "a3")
    values = {v: Value(v, (1, 16, 8, 8)) for v in chain}
    values |= {"y": Value("y", (1, 16, 1, 1)), "z": Value("z", (1, 16, 4, 4))}
    values |= {"m": Value("m", (1, 16, 4, 4))}
    values |= {k: Value(k, c.shape) for k, c in consts.items()}
    nodes = tuple(
        Node(
            "conv2d",
            f"c{i}",
            (chain[i], f"w{i}"),
            (chain[i + 1],),
            freeze({"stride": (1, 1), "padding": (1, 1, 1, 1), "dilation": (1, 1), "groups": g}),
        )
        for i, g in enumerate(groups)
    )
    nodes += (
        Node("global_avg_pool", "gap", ("a3",), ("y",), freeze({})),
        Node("max_pool2d", "mp", ("a3",), ("m",), freeze({"kernel": (2, 2)})),
        Node("relu", "r", ("m",), ("z",), freeze({})),
    )
    out.append((verify(Graph(("x",), ("y", "z"), nodes, values, consts, {})), {"x": xb}))
    return out


def test_every_available_kernel_is_exercised(h, artifact):
    registry = h.native.kernels()
    available = {k["name"] for k in registry if k["available"]}
    assert {k["isa"] for k in registry} >= {"scalar"}
    used: set[str] = set()
    graphs = _coverage_graphs(h)
    for isa in h.isas:
        for graph, feeds in graphs:
            s = Session(artifact(graph), isa=isa)
            s.run(feeds)
            for node in s.nodes:
                used.update(part for part in node["kernel"].split(" + ") if part not in ("alias", "memcpy"))
    # Every variant the CPU runs is selected for some ISA cap (so the op tests cover it).
    assert available <= used, sorted(available - used)
    assert used <= {k["name"] for k in registry}, sorted(used - {k["name"] for k in registry})


@pytest.mark.parametrize(
    "n,ci,co,hw,k,s,p,d,g",
    [
        (1, 3, 10, (13, 11), 3, 2, 1, 1, 1),
        (2, 6, 6, (5, 5), 3, 1, 1, 1, 6),
        (1, 8, 16, (9, 9), 1, 2, 0, 1, 1),
        (1, 4, 8, (7, 8), 5, 1, 2, 1, 2),
        (1, 5, 5, (3, 3), 5, 2, 2, 1, 5),
        (1, 7, 9, (1, 1), 1, 1, 0, 1, 1),
        (1, 12, 40, (7, 7), 1, 1, 0, 1, 1),  # small images: transposed tiles, channel tail
        (1, 16, 33, (7, 7), 3, 1, 1, 1, 1),
        (2, 8, 32, (9, 9), 3, 2, 1, 1, 2),
        # Depthwise planes of many vectors (AVX-512: one flat run of pixels per channel), two
        # images whose 18 channels the executor's runs of channels straddle, 5x5 on 7x7, stride 2.
        (2, 18, 18, (14, 14), 3, 1, 1, 1, 18),
        (1, 16, 16, (7, 7), 5, 1, 2, 1, 16),
        (1, 16, 16, (15, 15), 3, 2, 1, 1, 16),
    ],
)
def test_conv_matches_torch(h, artifact, isa, n, ci, co, hw, k, s, p, d, g):
    torch.manual_seed(ci * co + k)
    x = torch.randn(n, ci, *hw)
    w = torch.randn(co, ci // g, k, k)
    b = torch.randn(co)
    want = F.relu(F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)).numpy()
    graph = h.single_op(
        "conv2d",
        {"x": (tuple(x.shape), "f32")},
        {"w": h.encode(w.numpy(), "dense"), "b": h.encode(b.numpy(), "dense")},
        want.shape,
        {"stride": (s, s), "padding": (p,) * 4, "dilation": (d, d), "groups": g, "act": "relu"},
    )
    got = Session(artifact(graph), isa=isa).run({"x": x.numpy()})["y"]
    assert h.rel_err(got, want) < 2e-5
