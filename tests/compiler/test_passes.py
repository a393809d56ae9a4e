"""Graph passes: each keeps the reference outputs (within 1e-5 of output scale), does its rewrite,
keeps compressed weights encoded, and split_at_bottleneck cuts a model into head and tail."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgefit.compiler import reference
from edgefit.compiler.encodings import BlockSparse, Codebook, Dense, Int8PerChannel
from edgefit.compiler.frontend import capture
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify
from edgefit.compiler.passes import (
    PIPELINE,
    eliminate_dead_nodes,
    fold_batch_norm,
    fold_constants,
    fuse_activations,
    run_passes,
    split_at_bottleneck,
)
from edgefit.errors import UserError

TOL = 1e-5


def _randomize_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(2)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return model.eval()


class ResidualNet(nn.Module):
    """conv-BN-ReLU, depthwise conv-BN-ReLU6, a residual add + ReLU, a linear-BN1d-hardswish head;
    the BN after the max pool (BottleFit's layout) has no conv to fold into."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.pool_bn = nn.BatchNorm2d(8)
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.BatchNorm2d(8), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 12)
        self.fc_bn = nn.BatchNorm1d(12)
        self.out = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.pool_bn(self.pool(self.stem(x))))
        y = F.relu(y + self.pw(self.dw(y)))
        y = F.hardswish(self.fc_bn(self.fc(y.mean((2, 3)))))
        return self.out(y)


class SharedConv(nn.Module):
    """The conv output is read by the BN and by a second branch: folding would change that branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.cat([F.relu(self.bn(y)), y], 1)


@pytest.fixture(scope="module")
def residual() -> tuple[nn.Module, np.ndarray, Graph]:
    torch.manual_seed(0)
    model = _randomize_bn(ResidualNet())
    x = torch.randn(2, 3, 15, 13)
    return model, x.numpy(), capture(model, (x,), name="residual")


def _outputs(graph: Graph, x: np.ndarray) -> list[np.ndarray]:
    got = reference.run(graph, {graph.inputs[0]: x})
    return [got[name] for name in graph.outputs]


def _assert_same(a: list[np.ndarray], b: list[np.ndarray], tol: float = TOL) -> None:
    for u, v in zip(a, b, strict=True):
        assert u.shape == v.shape
        scale = max(float(np.abs(v).max()), 1e-6)
        assert float(np.abs(u - v).max()) <= tol * scale


@pytest.mark.parametrize(("name", "fn"), PIPELINE)
def test_each_pass_keeps_outputs(residual, name, fn) -> None:
    model, x, graph = residual
    out = verify(fn(graph))
    _assert_same(_outputs(out, x), _outputs(graph, x))
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    _assert_same(_outputs(out, x), [want])


def test_pipeline_folds_and_fuses(residual) -> None:
    model, x, graph = residual
    out = run_passes(graph)
    ops = [n.op for n in out.nodes]
    # Only the batch norm after the max pool survives, with its ReLU fused in.
    affines = list(out.iter_op("channel_affine"))
    assert len(affines) == 1 and affines[0].attr("act") == "relu"
    assert "relu" not in ops and "relu6" not in ops and "hardswish" not in ops
    acts = [n.attr("act") for n in out.nodes if n.op in ("conv2d", "linear", "add")]
    assert acts == ["relu", "relu6", "none", "relu", "hardswish", "none"]
    assert len(out.nodes) < len(graph.nodes)
    # Folded-away tensors and the raw scale/shift constants are gone.
    assert not any(name.startswith(("stem.1", "dw.1", "pw.1", "fc_bn")) for name in out.constants)
    assert set(out.values) == set(out.inputs) | set(out.constants) | {o for n in out.nodes for o in n.outputs}
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    _assert_same(_outputs(out, x), [want])


def test_fold_batch_norm_leaves_shared_outputs_alone() -> None:
    model = _randomize_bn(SharedConv())
    x = torch.randn(1, 3, 6, 6)
    graph = capture(model, (x,))
    out = fold_batch_norm(graph)
    assert [n.op for n in out.nodes] == [n.op for n in graph.nodes]
    _assert_same(_outputs(out, x.numpy()), _outputs(graph, x.numpy()))


def _conv_bn_graph(weight) -> tuple[Graph, np.ndarray]:
    """conv2d (no bias) -> channel_affine with the given weight encoding."""
    rng = np.random.default_rng(3)
    co = weight.shape[0]
    scale = rng.standard_normal(co).astype(np.float32)
    values = {
        "x": Value("x", (1, weight.shape[1], 5, 5)),
        "w": Value("w", weight.shape),
        "s": Value("s", (co,)),
        "t": Value("t", (co,)),
        "c": Value("c", (1, co, 5, 5)),
        "y": Value("y", (1, co, 5, 5)),
    }
    nodes = (
        Node("conv2d", "conv", ("x", "w"), ("c",), freeze({"padding": (1, 1, 1, 1), "groups": 1}), "m.py:3"),
        Node("channel_affine", "bn", ("c", "s", "t"), ("y",), freeze({"act": "none"}), "m.py:4"),
    )
    consts = {"w": weight, "s": Dense(scale), "t": Dense(rng.standard_normal(co).astype(np.float32))}
    return verify(Graph(("x",), ("y",), nodes, values, consts)), scale


def _encodings() -> list:
    rng = np.random.default_rng(4)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    w[rng.random(w.shape) < 0.8] = 0.0
    idx = rng.integers(0, 16, size=(8, 36))
    return [
        BlockSparse.from_dense(w, block=1),
        BlockSparse.from_dense(w, block=4),
        Codebook.from_indices(w.shape, 4, idx, rng.standard_normal((2, 16)), np.array([0, 1] * 4)),
        Int8PerChannel.from_dense(w),
        Dense(w),
    ]


@pytest.mark.parametrize("weight", _encodings(), ids=lambda e: f"{e.kind}{getattr(e, 'block', '')}")
def test_compressed_weights_survive_batch_norm_folding(weight) -> None:
    graph, scale = _conv_bn_graph(weight)
    out = fold_batch_norm(graph)
    assert [n.op for n in out.nodes] == ["conv2d"]
    conv = out.nodes[0]
    assert conv.outputs == ("y",) and conv.source == "m.py:3" and len(conv.inputs) == 3
    folded = out.constants[conv.inputs[1]]
    assert folded.kind == weight.kind  # still sparse / palettized / int8
    # Folding a BN scale into a codebook costs one f32 row scale per output channel (stored only
    # once it is no longer all ones); every other encoding keeps its size.
    extra = 4 * weight.shape[0] if weight.kind == "codebook" else 0
    assert folded.nbytes == weight.nbytes + extra
    if weight.kind == "bsr":
        np.testing.assert_array_equal(folded.col_idx, weight.col_idx)
    if weight.kind == "codebook":
        np.testing.assert_array_equal(folded.packed, weight.packed)
        np.testing.assert_array_equal(folded.table, weight.table)
    rescaled = weight.to_dense() * scale[:, None, None, None]
    if weight.kind == "int8":  # q * (scale * s) vs (q * scale) * s: one rounding apart
        np.testing.assert_array_equal(folded.q, weight.q)
        np.testing.assert_allclose(folded.to_dense(), rescaled, rtol=2.5e-7, atol=0)
    else:  # the encoded weight decodes exactly to the rescaled dense weight
        np.testing.assert_array_equal(folded.to_dense(), rescaled)
    x = np.random.default_rng(5).standard_normal((1, 4, 5, 5)).astype(np.float32)
    _assert_same(_outputs(out, x), _outputs(graph, x))


def test_fuse_activations_needs_a_single_consumer() -> None:
    values = {n: Value(n, (1, 4)) for n in ("x", "a", "r", "y")} | {"w": Value("w", (4, 4))}
    w = Dense(np.eye(4, dtype=np.float32) * -1)
    nodes = (
        Node("linear", "lin", ("x", "w"), ("a",)),
        Node("relu", "relu", ("a",), ("r",)),
        Node("add", "add", ("a", "r"), ("y",)),  # reads the pre-activation tensor too
    )
    graph = verify(Graph(("x",), ("y",), nodes, values, {"w": w}))
    assert [n.op for n in fuse_activations(graph).nodes] == ["linear", "relu", "add"]
    # Without the second reader the relu fuses, and the result is unchanged.
    nodes2 = (nodes[0], nodes[1], Node("add", "add", ("r", "r"), ("y",)))
    graph2 = verify(Graph(("x",), ("y",), nodes2, values, {"w": w}))
    fused = verify(fuse_activations(graph2))
    assert [(n.op, n.attr("act")) for n in fused.nodes] == [("linear", "relu"), ("add", None)]
    x = np.array([[1.0, -2.0, 3.0, -4.0]], dtype=np.float32)
    np.testing.assert_array_equal(_outputs(fused, x)[0], _outputs(graph2, x)[0])
    np.testing.assert_array_equal(_outputs(fused, x)[0], [[0.0, 4.0, 0.0, 8.0]])


def test_fold_constants_and_dead_nodes() -> None:
    c1 = Dense(np.arange(6, dtype=np.float32).reshape(1, 6))
    c2 = Dense(np.ones((2, 3), dtype=np.float32))
    values = {
        "x": Value("x", (2, 3)),
        "c1": Value("c1", (1, 6)),
        "c2": Value("c2", (2, 3)),
        "unused_w": Value("unused_w", (3, 3)),
        "r": Value("r", (2, 3)),
        "k": Value("k", (2, 3)),
        "y": Value("y", (2, 3)),
        "dead": Value("dead", (2, 3)),
    }
    nodes = (
        Node("reshape", "r", ("c1",), ("r",), freeze({"shape": (2, 3)})),
        Node("add", "k", ("r", "c2"), ("k",), freeze({"act": "relu"})),
        Node("relu", "dead", ("x",), ("dead",)),
        Node("add", "y", ("x", "k"), ("y",)),
    )
    consts = {"c1": c1, "c2": c2, "unused_w": Dense(np.zeros((3, 3), dtype=np.float32))}
    graph = verify(Graph(("x",), ("y",), nodes, values, consts))
    x = np.random.default_rng(6).standard_normal((2, 3)).astype(np.float32)
    folded = verify(fold_constants(graph))
    assert [n.name for n in folded.nodes] == ["dead", "y"]
    np.testing.assert_array_equal(folded.constants["k"].to_dense(), np.arange(6).reshape(2, 3) + 1.0)
    assert "c1" not in folded.constants  # only read by folded nodes
    cleaned = verify(eliminate_dead_nodes(folded))
    assert [n.name for n in cleaned.nodes] == ["y"]
    assert set(cleaned.constants) == {"k"} and "dead" not in cleaned.values
    np.testing.assert_array_equal(_outputs(cleaned, x)[0], _outputs(graph, x)[0])


def test_run_passes_prints_ir_after_named_passes(residual) -> None:
    _, _, graph = residual
    buf = io.StringIO()
    run_passes(graph, print_ir_after=["fold_batch_norm"], stream=buf)
    text = buf.getvalue()
    assert text.count("// IR after") == 1 and "// IR after fold_batch_norm" in text
    assert "channel_affine" in text and "graph(%x" in text
    buf = io.StringIO()
    run_passes(graph, print_ir_after=["all"], stream=buf)
    assert buf.getvalue().count("// IR after") == len(PIPELINE)
    with pytest.raises(UserError, match="unknown pass 'fold_bn'"):
        run_passes(graph, print_ir_after=["fold_bn"])


class Bottleneck(nn.Module):
    def __init__(self, skip: bool = False) -> None:
        super().__init__()
        self.skip = skip
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 3, 2, 2)
        )
        # The decoder starts with a BN: folding it into the encoder's last conv would erase the split.
        self.decoder = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 5)
        self.side = nn.Conv2d(3, 6, 4, 4)  # used with skip=True: reads the input after the split

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        y = self.decoder(z)
        if self.skip:
            y = y + self.side(x)
        return self.fc(y.mean((2, 3)))


@pytest.fixture(scope="module")
def bottleneck() -> tuple[nn.Module, np.ndarray, Graph]:
    torch.manual_seed(0)
    model = _randomize_bn(Bottleneck())
    x = torch.randn(4, 3, 16, 16)
    graph = run_passes(capture(model, (x,), split_after="encoder", name="bottleneck"))
    return model, x.numpy(), graph


def test_passes_keep_the_split_tensor(bottleneck) -> None:
    _, _, graph = bottleneck
    split = graph.meta["split"]
    assert graph.producers()[split].op == "conv2d"
    assert [n.op for n in graph.consumers()[split]] == ["channel_affine"]


def test_split_head_and_tail_reproduce_the_model(bottleneck) -> None:
    _, x, graph = bottleneck
    split = graph.meta["split"]
    head, tail = split_at_bottleneck(graph, calibration={"x": x})
    assert head.inputs == graph.inputs and head.nodes[-1].op == "quantize"
    assert head.values[head.outputs[0]].dtype == "u8" and head.values[head.outputs[0]].shape == (4, 3, 4, 4)
    assert tail.inputs == head.outputs and tail.nodes[0].op == "dequantize" and tail.outputs == graph.outputs
    for part in (head, tail):
        assert part.meta["split"] == split and part.meta["model"] == "bottleneck"
        assert part.meta["split_scale"] > 0 and 0 <= part.meta["split_zero_point"] <= 255
    assert head.meta["part"] == "head" and tail.meta["part"] == "tail"
    # Each part holds only its own weights.
    assert all(n.startswith("encoder.") for n in head.constants)
    assert not any(n.startswith("encoder.") for n in tail.constants)

    full = reference.run(graph, {"x": x}, keep_all=True)
    q = reference.run(head, {"x": x})
    scale = head.meta["split_scale"]
    back = (q[head.outputs[0]].astype(np.float32) - head.meta["split_zero_point"]) * np.float32(scale)
    # The calibration range covers these inputs: the transmitted tensor is off by at most half a step.
    assert float(np.abs(back - full[split]).max()) <= scale / 2 * 1.001
    got = reference.run(tail, q)[graph.outputs[0]]
    want = full[graph.outputs[0]]
    rel = float(np.abs(got - want).max()) / float(np.abs(want).max())
    assert 0 < rel < 0.05  # quantization noise, not garbage
    # The tail on the exactly dequantized tensor is the model's own tail.
    exact_tail = reference.run(
        Graph((split,), graph.outputs, tail.nodes[1:], tail.values, tail.constants), {split: back}
    )
    np.testing.assert_array_equal(got, exact_tail[graph.outputs[0]])


def test_split_without_quantization_is_exact(bottleneck) -> None:
    _, x, graph = bottleneck
    head, tail = split_at_bottleneck(graph, quantize=False)
    mid = reference.run(head, {"x": x})
    assert head.outputs == tail.inputs == (graph.meta["split"],)
    np.testing.assert_array_equal(reference.run(tail, mid)[graph.outputs[0]], _outputs(graph, x)[0])


def test_split_errors_are_user_errors(bottleneck, residual) -> None:
    _, x, graph = bottleneck
    with pytest.raises(UserError, match="calibration"):
        split_at_bottleneck(graph)
    with pytest.raises(UserError, match="batches of 4"):
        split_at_bottleneck(graph, calibration={"x": x[:3]})
    with pytest.raises(UserError, match="no split point"):
        split_at_bottleneck(residual[2], calibration={"x": residual[1]})


def test_split_refuses_tensors_crossing_the_split() -> None:
    model = _randomize_bn(Bottleneck(skip=True))
    x = torch.randn(1, 3, 16, 16)
    graph = capture(model, (x,), split_after="encoder")
    with pytest.raises(UserError, match=r"reads 'x', the graph input.*not the only tensor crossing"):
        split_at_bottleneck(graph, quantize=False)
