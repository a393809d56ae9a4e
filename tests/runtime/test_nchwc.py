"""The channel-blocked (NCHW16c) layout plan through whole graphs: where the runtime blocks a region
(dense convolutions with whole 16-channel blocks, adds, a global average pool reading blocked
input, reorders at the borders) and where it keeps NCHW, against the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from edgefit.compiler import reference
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify
from edgefit.runtime import Session


def _conv(name, x, y, w, b, stride=1, pad=0, act="none"):
    attrs = {"stride": (stride, stride), "padding": (pad,) * 4, "dilation": (1, 1), "groups": 1, "act": act}
    return Node("conv2d", name, (x, w, b), (y,), freeze(attrs), "test.py:1")


def _verified_graph(shapes, consts, nodes, outputs=("g",)) -> Graph:
    """The graph of `nodes` from input "x", f32 activations of `shapes` and the constants."""
    values = {v: Value(v, s, "f32") for v, s in shapes.items()}
    values |= {v: Value(v, tuple(c.shape), "f32") for v, c in consts.items()}
    return verify(Graph(("x",), tuple(outputs), tuple(nodes), values, consts, {"model": "test"}))


def _graph(h, n: int, hw: int, encoding: str = "dense") -> tuple[Graph, dict[str, np.ndarray]]:
    """x -> 3x3 (16->32) -> 1x1 (32->80) -> 3x3/2 (80->80) + 1x1 (80->80) -> add+relu -> global pool,
    and the add's output also max-pooled (an op that reads NCHW: a reorder back)."""
    rng = np.random.default_rng(hw)
    half = (hw - 1) // 2 + 1
    shapes = {"x": (n, 16, hw, hw), "a": (n, 32, hw, hw), "b": (n, 80, hw, hw), "c": (n, 80, half, half)}
    shapes |= {"d": (n, 80, half, half), "s": (n, 80, half, half), "g": (n, 80, 1, 1)}
    shapes |= {"m": (n, 80, half // 2, half // 2)}
    consts = {}
    nodes = []
    for name, x, y, ci, co, k, stride, act in [
        ("c1", "x", "a", 16, 32, 3, 1, "relu"),
        ("c2", "a", "b", 32, 80, 1, 1, "none"),
        ("c3", "b", "c", 80, 80, 3, 2, "relu"),
        ("c4", "c", "d", 80, 80, 1, 1, "none"),
    ]:
        consts[f"{name}.w"] = h.encode(rng.standard_normal((co, ci, k, k)).astype(np.float32) / k, encoding)
        consts[f"{name}.b"] = h.encode(rng.standard_normal(co).astype(np.float32), "dense")
        nodes.append(_conv(name, x, y, f"{name}.w", f"{name}.b", stride, k // 2, act))
    nodes.append(Node("add", "add", ("c", "d"), ("s",), freeze({"act": "relu"}), "test.py:1"))
    nodes.append(Node("global_avg_pool", "gap", ("s",), ("g",), freeze({}), "test.py:1"))
    pool = {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0, 0, 0)}
    nodes.append(Node("max_pool2d", "mp", ("s",), ("m",), freeze(pool), "test.py:1"))
    graph = _verified_graph(shapes, consts, nodes, ("g", "m"))
    return graph, {"x": rng.standard_normal(shapes["x"]).astype(np.float32)}


def _cpu_has_avx512() -> bool:
    from edgefit.runtime import _native

    return bool(_native.cpu()["avx512f"])


@pytest.mark.parametrize("n,hw", [(1, 9), (2, 12)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("encoding", ["dense", "int8", "cb4", "cb3g2"])
def test_blocked_region_matches_reference(h, artifact, isa, n, hw, threads, encoding):
    """Codebook weights are decoded pass by pass inside the region (4 bits: the permute decode)."""
    graph, feeds = _graph(h, n, hw, encoding)
    s = Session(artifact(graph), threads=threads, isa=isa)
    got, want = s.run(feeds), reference.run(graph, feeds)
    for name in want:
        assert h.rel_err(got[name], want[name]) <= 2e-5, name
    kernels = {node["name"]: node["kernel"] for node in s.nodes}
    if isa == "avx512":
        assert all("nchwc" in kernels[c] for c in ("c1", "c2", "c3", "c4")), kernels
        assert ("decode_cb" in kernels["c2"]) == encoding.startswith("cb")
        # c1 (3x3, stride 1, padding 1) runs Winograd F(2x2, 3x3) on even images only.
        assert ("wino" in kernels["c1"]) == (hw % 2 == 0), kernels["c1"]
        assert kernels["x:to_nchwc"].startswith("f32_nchw_to_nchwc")
        assert kernels["s:from_nchwc"].startswith("f32_nchwc_to_nchw")  # max pool reads NCHW
        assert "nchwc" in kernels["gap"]  # reads the blocked tensor directly
        assert "add" not in kernels  # fused into c4's store (c4 has no activation of its own)
    else:
        assert not any("nchwc" in k for k in kernels.values()), kernels


def _winograd_graph(h, n, hw, ci, co, encoding, act):
    """x -> 1x1 (ci->ci) -> 3x3 (ci->co, the Winograd candidate) -> three 1x1 (co->co): a blocked
    region whose 3x3 reads and writes blocked tensors."""
    rng = np.random.default_rng(hw * co + n)
    consts, nodes = {}, []
    chain = [("p", "x", "a", ci, ci, 1, "relu"), ("w3", "a", "b", ci, co, 3, act)]
    chain += [("q", "b", "c", co, co, 1, "none"), ("r", "c", "e", co, co, 1, "relu")]
    chain += [("s", "e", "d", co, co, 1, "none")]  # the graph output: NCHW, so r ends the region
    for name, x, y, i, o, k, a in chain:
        w = rng.standard_normal((o, i, k, k)).astype(np.float32) / np.sqrt(i * k * k)
        consts[f"{name}.w"] = h.encode(w, encoding if name == "w3" else "dense")
        consts[f"{name}.b"] = h.encode(rng.standard_normal(o).astype(np.float32), "dense")
        nodes.append(_conv(name, x, y, f"{name}.w", f"{name}.b", 1, k // 2, a))
    shapes = {
        v: (n, c, hw, hw) for v, c in (("x", ci), ("a", ci), ("b", co), ("c", co), ("e", co), ("d", co))
    }
    graph = _verified_graph(shapes, consts, nodes, ("d",))
    return graph, {"x": rng.standard_normal((n, ci, hw, hw)).astype(np.float32)}


@pytest.mark.parametrize(
    "n,hw,ci,co",
    [
        (1, 2, 16, 16),
        (2, 12, 32, 80),
        (1, 14, 64, 48),
        (1, 8, 128, 64),
        (1, 8, 144, 64),
        (1, 7, 16, 16),
        (1, 10, 16, 16),
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("encoding", ["dense", "int8", "cb4", "cb3g2"])
def test_winograd_3x3_matches_reference(h, artifact, isa, n, hw, ci, co, threads, encoding):
    """Winograd F(2x2, 3x3) on the blocked path: even images (tile runs shorter than a 6-pixel
    tile, output groups of 16 and 48 channels, a batch of 2; codebook weights decoded and
    transformed one 64-channel group at a time, 9 input blocks), an odd one (7: the direct
    tiles), relu6 after the transform."""
    graph, feeds = _winograd_graph(h, n, hw, ci, co, encoding, "relu6")
    s = Session(artifact(graph), threads=threads, isa=isa)
    got, want = s.run(feeds), reference.run(graph, feeds)
    assert h.rel_err(got["d"], want["d"]) <= 2e-5
    kernel = s.kernel_of("w3")
    if isa == "avx512":
        wino = hw % 2 == 0
        assert ("f32_nchwc_wino_in__avx512f" in kernel) == wino, kernel
        # Codebook weights decoded and transformed a 64-channel group at a time.
        assert ("f32_nchwc_wino_pack_group" in kernel) == (wino and encoding.startswith("cb")), kernel
    else:
        assert "wino" not in kernel


@pytest.mark.parametrize("act", ["none", "relu", "hardswish"])
def test_winograd_activations(h, artifact, isa, act):
    """The output transform's clamp (none, relu) and hardswish as the pass after it."""
    graph, feeds = _winograd_graph(h, 1, 6, 16, 32, "dense", act)
    s = Session(artifact(graph), threads=2, isa=isa)
    assert h.rel_err(s.run(feeds)["d"], reference.run(graph, feeds)["d"]) <= 2e-5
    assert ("wino" in s.kernel_of("w3")) == (isa == "avx512")


def test_default_isa_blocks_where_avx512_runs(h, artifact):
    graph, _ = _graph(h, 1, 9)
    s = Session(artifact(graph))
    blocked = any("nchwc" in node["kernel"] for node in s.nodes)
    assert blocked == _cpu_has_avx512()


def test_isa_names_every_level_that_runs(h, artifact):
    """The blocked convolutions run AVX-512 by default above an AVX2 base: the reported ISA says so,
    and an explicit cap reports (and runs) only its own level."""
    graph, _ = _graph(h, 1, 9)
    path = artifact(graph)
    default = Session(path).isa
    assert ("avx512" in default) == _cpu_has_avx512(), default
    capped = Session(path, isa="avx2")
    assert "avx512" not in capped.isa and not any("avx512" in node["kernel"] for node in capped.nodes)


def test_lone_convolution_stays_nchw(h, artifact):
    """One convolution between two NCHW ops (max pools) would pay two reorders for one conv."""
    if not _cpu_has_avx512():
        pytest.skip("the blocked convolutions need AVX-512F, which this CPU lacks")
    rng = np.random.default_rng(3)
    pool = freeze({"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0, 0, 0)})
    consts = {"w": h.encode(rng.standard_normal((32, 16, 1, 1)).astype(np.float32), "dense")}
    consts["b"] = h.encode(rng.standard_normal(32).astype(np.float32), "dense")
    nodes = (
        Node("max_pool2d", "p1", ("x",), ("a",), pool, "test.py:1"),
        _conv("c", "a", "b2", "w", "b"),
        Node("max_pool2d", "p2", ("b2",), ("y",), pool, "test.py:1"),
    )
    shapes = {"x": (1, 16, 16, 16), "a": (1, 16, 8, 8), "b2": (1, 32, 8, 8), "y": (1, 32, 4, 4)}
    graph = _verified_graph(shapes, consts, nodes, ("y",))
    feeds = {"x": rng.standard_normal(shapes["x"]).astype(np.float32)}
    s = Session(artifact(graph), isa="avx512")
    assert "nchwc" not in s.kernel_of("c")
    assert h.rel_err(s.run(feeds)["y"], reference.run(graph, feeds)["y"]) <= 2e-5


def _dw(name, x, y, w, b, stride, k, channels=32):
    attrs = {
        "stride": (stride, stride),
        "padding": (k // 2,) * 4,
        "dilation": (1, 1),
        "groups": channels,
        "act": "relu6",
    }
    return Node("conv2d", name, (x, w, b), (y,), freeze(attrs), "test.py:1")


@pytest.mark.parametrize("k,stride,hw", [(3, 1, 11), (3, 2, 14), (5, 2, 9), (5, 1, 2)])
def test_blocked_depthwise_block_matches_reference(h, artifact, isa, k, stride, hw):
    """An inverted-residual block (1x1 expand, depthwise, 1x1 project, add) runs blocked throughout."""
    rng = np.random.default_rng(k * 10 + stride)
    ho = (hw + 2 * (k // 2) - k) // stride + 1
    shapes = {"x": (1, 16, hw, hw), "e": (1, 32, hw, hw), "d": (1, 32, ho, ho), "p": (1, 16, ho, ho)}
    shapes |= {"q": (1, 16, ho, ho), "s": (1, 16, ho, ho), "g": (1, 16, 1, 1)}
    rand = lambda *s: h.encode(rng.standard_normal(s).astype(np.float32) / 4, "dense")  # noqa: E731
    consts = {
        "we": rand(32, 16, 1, 1),
        "wd": rand(32, 1, k, k),
        "wp": rand(16, 32, 1, 1),
        "wq": rand(16, 16, 1, 1),
    }
    consts |= {"be": rand(32), "bd": rand(32), "bp": rand(16), "bq": rand(16)}
    nodes = (
        _conv("e", "x", "e", "we", "be", act="relu6"),
        _dw("dw", "e", "d", "wd", "bd", stride, k),
        _conv("p", "d", "p", "wp", "bp"),
        _conv("q", "p", "q", "wq", "bq"),
        Node("add", "add", ("p", "q"), ("s",), freeze({"act": "none"}), "test.py:1"),
        Node("global_avg_pool", "gap", ("s",), ("g",), freeze({}), "test.py:1"),
    )
    graph = _verified_graph(shapes, consts, nodes)
    feeds = {"x": rng.standard_normal(shapes["x"]).astype(np.float32)}
    s = Session(artifact(graph), isa=isa)
    assert h.rel_err(s.run(feeds)["g"], reference.run(graph, feeds)["g"]) <= 2e-5
    if isa == "avx512":
        assert s.kernel_of("dw") == "f32_nchwc_dwconv__avx512f"
        assert "add" not in {node["name"] for node in s.nodes}  # fused into q's store
    else:
        assert "add" in {node["name"] for node in s.nodes}


@pytest.mark.parametrize("k,stride,hw,ceil_mode", [(7, 2, 17, 0), (3, 2, 16, 1), (3, 1, 9, 0)])
@pytest.mark.parametrize("encoding", ["dense", "cb4"])
@pytest.mark.parametrize("threads", [1, 2])
def test_stem_and_max_pool_run_blocked(h, artifact, isa, k, stride, hw, ceil_mode, encoding, threads):
    """A stem (3 input channels) writes blocks straight from the plain image, and the max pool after
    it pools blocks: ResNet-50's conv1 + maxpool + layer1 without a reorder."""
    rng = np.random.default_rng(k + hw + ceil_mode)
    ho = (hw + 2 * (k // 2) - k) // stride + 1
    span = ho + 2 - 3
    hp = (span + (1 if ceil_mode else 0)) // 2 + 1
    if ceil_mode and (hp - 1) * 2 >= ho + 1:
        hp -= 1
    shapes = {"x": (1, 3, hw, hw), "a": (1, 32, ho, ho), "m": (1, 32, hp, hp)}
    shapes |= {"b": (1, 32, hp, hp), "c": (1, 48, hp, hp), "g": (1, 48, 1, 1)}
    rand = lambda *s: rng.standard_normal(s).astype(np.float32) / 4  # noqa: E731
    consts = {"ws": h.encode(rand(32, 3, k, k), encoding), "bs": h.encode(rand(32), "dense")}
    consts |= {"w1": h.encode(rand(32, 32, 3, 3), "dense"), "b1": h.encode(rand(32), "dense")}
    consts |= {"w2": h.encode(rand(48, 32, 1, 1), "dense"), "b2": h.encode(rand(48), "dense")}
    pool = {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1, 1, 1), "ceil_mode": ceil_mode}
    nodes = (
        _conv("stem", "x", "a", "ws", "bs", stride, k // 2, "relu"),
        Node("max_pool2d", "mp", ("a",), ("m",), freeze(pool), "test.py:1"),
        _conv("c1", "m", "b", "w1", "b1", 1, 1, "relu"),
        _conv("c2", "b", "c", "w2", "b2"),
        Node("global_avg_pool", "gap", ("c",), ("g",), freeze({}), "test.py:1"),
    )
    graph = _verified_graph(shapes, consts, nodes)
    feeds = {"x": rng.standard_normal(shapes["x"]).astype(np.float32)}
    s = Session(artifact(graph), threads=threads, isa=isa)
    assert h.rel_err(s.run(feeds)["g"], reference.run(graph, feeds)["g"]) <= 2e-5
    kernels = {node["name"]: node["kernel"] for node in s.nodes}
    if isa == "avx512":
        assert kernels["stem"] == "f32_nchwc_conv__avx512f", kernels
        assert kernels["mp"] == "f32_nchwc_maxpool__avx512f"
        assert not any(node["op"] == "to_nchwc" for node in s.nodes), kernels
    else:
        assert not any("nchwc" in kernel for kernel in kernels.values()), kernels


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("k,stride", [(3, 2), (3, 1), (5, 2), (5, 1)])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shared", [False, True])
def test_conv_then_depthwise_run_in_row_bands(h, artifact, n, k, stride, threads, shared):
    """A blocked convolution whose large output (>= 512 KB an image) only a depthwise layer reads
    runs with it band by band (the stem with its padded plain input, then a 1x1 expand); an output
    with a second reader is stored as usual."""
    if not _cpu_has_avx512():
        pytest.skip("channel-blocked layers run on AVX-512 CPUs only")
    rng = np.random.default_rng(k * 10 + stride)
    hw, ho = 150, 75  # the stem's output: 32 x 75 x 75 floats, 720 KB; the expand's 1.1 MB
    hd = (ho + 2 * (k // 2) - k) // stride + 1
    shapes = {"x": (n, 3, hw, hw), "a": (n, 32, ho, ho), "b": (n, 32, ho, ho), "c": (n, 16, ho, ho)}
    shapes |= {"d": (n, 48, ho, ho), "e": (n, 48, hd, hd), "f": (n, 16, hd, hd), "g": (n, 16, 1, 1)}
    shapes |= {"g2": (n, 48, 1, 1)}
    rand = lambda *s: h.encode(rng.standard_normal(s).astype(np.float32) / 4, "dense")  # noqa: E731
    consts = {"ws": rand(32, 3, 3, 3), "w1": rand(32, 1, k, k), "w2": rand(16, 32, 1, 1)}
    consts |= {"w3": rand(48, 16, 1, 1), "w4": rand(48, 1, k, k), "w5": rand(16, 48, 1, 1)}
    consts |= {f"b{i}": rand(c) for i, c in enumerate([32, 32, 16, 48, 48, 16])}
    nodes = [
        _conv("stem", "x", "a", "ws", "b0", 2, 1, "relu6"),
        _dw("dw1", "a", "b", "w1", "b1", 1, k),
        _conv("project", "b", "c", "w2", "b2"),
        _conv("expand", "c", "d", "w3", "b3", act="relu6"),
        _dw("dw2", "d", "e", "w4", "b4", stride, k, channels=48),
        _conv("project2", "e", "f", "w5", "b5"),
        Node("global_avg_pool", "gap", ("f",), ("g",), freeze({}), "test.py:1"),
    ]
    outputs = ("g",)
    if shared:  # the expand's output read twice: that pair must not run in bands
        nodes.append(Node("global_avg_pool", "gap2", ("d",), ("g2",), freeze({}), "test.py:1"))
        outputs = ("g", "g2")
    graph = _verified_graph(shapes, consts, nodes, outputs)
    feeds = {"x": rng.standard_normal(shapes["x"]).astype(np.float32)}
    s = Session(artifact(graph), threads=threads)
    want = reference.run(graph, feeds)
    got = s.run(feeds)
    for name in outputs:
        assert h.rel_err(got[name], want[name]) <= 2e-5, name
    kernels = {node["name"]: node["kernel"] for node in s.nodes}
    assert kernels["stem"].endswith("(row bands)") and kernels["dw1"] == "fused into stem", kernels
    if shared:
        assert kernels["expand"] == "f32_nchwc_conv__avx512f", kernels
        assert kernels["dw2"] == "f32_nchwc_dwconv__avx512f", kernels
    else:
        assert kernels["expand"].endswith("(row bands)") and kernels["dw2"] == "fused into expand"


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("hw", [7, 9])
def test_odd_group_counts_split_evenly_over_threads(h, artifact, threads, hw):
    """320 output channels are 5 groups of 64: with 2 or 3 threads each group's pixels are split too
    (an even share per thread); every pixel of every group is still computed once."""
    if not _cpu_has_avx512():
        pytest.skip("channel-blocked layers run on AVX-512 CPUs only")
    rng = np.random.default_rng(hw + threads)
    shapes = {"x": (1, 32, hw, hw), "a": (1, 320, hw, hw), "b": (1, 32, hw, hw), "c": (1, 320, hw, hw)}
    shapes |= {"d": (1, 32, hw, hw), "g": (1, 32, 1, 1)}
    rand = lambda *s: h.encode(rng.standard_normal(s).astype(np.float32) / 8, "dense")  # noqa: E731
    consts = {"w1": rand(320, 32, 1, 1), "w2": rand(32, 320, 1, 1), "w3": rand(320, 32, 1, 1)}
    consts |= {"w4": rand(32, 320, 1, 1)} | {f"b{i}": rand(c) for i, c in enumerate([320, 32, 320, 32])}
    nodes = (
        _conv("c1", "x", "a", "w1", "b0", act="relu6"),
        _conv("c2", "a", "b", "w2", "b1"),
        _conv("c3", "b", "c", "w3", "b2", act="relu6"),
        _conv("c4", "c", "d", "w4", "b3"),
        Node("global_avg_pool", "gap", ("d",), ("g",), freeze({}), "test.py:1"),
    )
    graph = _verified_graph(shapes, consts, nodes)
    feeds = {"x": rng.standard_normal(shapes["x"]).astype(np.float32)}
    s = Session(artifact(graph), threads=threads)
    assert h.rel_err(s.run(feeds)["g"], reference.run(graph, feeds)["g"]) <= 2e-5
    assert s.kernel_of("c1") == "f32_nchwc_conv__avx512f"


def _padded_region_graph(h, consumer: str) -> tuple[Graph, dict[str, np.ndarray]]:
    """x (16) -> 1x1 -> 24-channel p; q = relu(3x3 p); s = p + q (24 channels) -> `consumer`:
    "conv" a 1x1 to 32 channels (then a global pool), or "max_pool" (an op padding cannot see
    through). MobileNetV2's blocks 3-4 have the same 24-channel tensors."""
    rng = np.random.default_rng(24)
    shapes = {"x": (1, 16, 10, 10), "p": (1, 24, 10, 10), "q": (1, 24, 10, 10), "s": (1, 24, 10, 10)}
    rand = lambda *s: h.encode(rng.standard_normal(s).astype(np.float32) / 4, "dense")  # noqa: E731
    consts = {"wp": rand(24, 16, 1, 1), "bp": rand(24), "wq": rand(24, 24, 3, 3), "bq": rand(24)}
    nodes = [
        _conv("p", "x", "p", "wp", "bp"),
        _conv("q", "p", "q", "wq", "bq", pad=1, act="relu"),
        Node("add", "add", ("p", "q"), ("s",), freeze({"act": "none"}), "test.py:1"),
    ]
    if consumer == "conv":
        shapes |= {"e": (1, 32, 10, 10), "g": (1, 32, 1, 1)}
        consts |= {"we": rand(32, 24, 1, 1), "be": rand(32)}
        nodes += [
            _conv("e", "s", "e", "we", "be", act="relu6"),
            Node("global_avg_pool", "gap", ("e",), ("g",), freeze({}), "test.py:1"),
        ]
    else:
        shapes |= {"g": (1, 24, 5, 5)}
        pool = {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0, 0, 0)}
        nodes.append(Node("max_pool2d", "mp", ("s",), ("g",), freeze(pool), "test.py:1"))
    graph = _verified_graph(shapes, consts, nodes)
    return graph, {"x": rng.standard_normal(shapes["x"]).astype(np.float32)}


@pytest.mark.parametrize("consumer", ["conv", "max_pool"])
@pytest.mark.parametrize("threads", [1, 2])
def test_24_channel_region_padded_to_blocks(h, artifact, isa, consumer, threads):
    """A region of 24-channel tensors between convolutions is stored as 32 channels (zero filters
    write the extra 8, zero weights read them, the last block's 8 are skipped), so it runs blocked
    without reorders, at any thread count; where another op reads it, it stays NCHW. Results
    equal the reference either way."""
    graph, feeds = _padded_region_graph(h, consumer)
    s = Session(artifact(graph), threads=threads, isa=isa)
    assert h.rel_err(s.run(feeds)["g"], reference.run(graph, feeds)["g"]) <= 2e-5
    if isa != "avx512":
        return
    padded = consumer == "conv"
    assert ("nchwc" in s.kernel_of("q")) == padded
    if padded:  # the whole graph blocked: one reorder, of the input
        assert all("nchwc" in s.kernel_of(name) for name in ("p", "q", "e"))
        assert [node["name"] for node in s.nodes if "nchw" in node["name"]] == ["x:to_nchwc"]


@pytest.mark.parametrize("threads", [1, 2])
def test_mobilenet_v2_whole_model_matches_pytorch(h, isa, threads, tmp_path):
    """The zoo's MobileNetV2 end to end through the native runtime, against PyTorch: on AVX-512
    its 24-channel tensors are padded and the whole network runs blocked, at 1 and 2 threads."""
    import torch

    from edgefit import models
    from edgefit.compiler.artifact import write_artifact
    from edgefit.compiler.frontend.capture import capture
    from edgefit.compiler.passes import run_passes

    torch.manual_seed(0)
    net = models.create("mobilenet_v2").eval()
    x = models.example_input("mobilenet_v2")
    write_artifact(run_passes(capture(net, (x,), name="mobilenet_v2")), tmp_path / "m.efm")
    s = Session(tmp_path / "m.efm", threads=threads, isa=isa)
    got = s.run({s.inputs[0]["name"]: x.numpy()})[s.outputs[0]["name"]]
    with torch.no_grad():
        want = net(x).numpy()
    assert h.rel_err(got, want) <= 1e-4
    assert got.argmax() == want.argmax()
    if isa == "avx512":
        assert "nchwc" in s.kernel_of("features.3.conv.2")
