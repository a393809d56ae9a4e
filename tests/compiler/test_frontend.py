"""torch.export capture -> IR: small models reproduce PyTorch in the reference interpreter; weights
keep their compressed encoding; unsupported ops and export failures are one-line user errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgefit.compiler import reference
from edgefit.compiler.encodings import BlockSparse, Codebook, Int8PerChannel
from edgefit.compiler.frontend import UnsupportedOpError, capture
from edgefit.compiler.ir import Graph
from edgefit.compiler.passes import run_passes, split_at_bottleneck
from edgefit.errors import UserError

TOL = 1e-5  # of the output's scale


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Non-trivial batch-norm statistics, so that a wrong fold or affine cannot pass unnoticed."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.randn(m.num_features, generator=g))
                m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return model.eval()


class ConvBNStack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 12, 3, padding=1),
            nn.BatchNorm2d(12),
            nn.ReLU6(),
            nn.Conv2d(12, 12, 1),
            nn.BatchNorm2d(12),
            nn.Hardswish(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 project, residual add."""

    def __init__(self, c: int = 8, expand: int = 4) -> None:
        super().__init__()
        h = c * expand
        self.conv = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU6(inplace=True),
            nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU6(inplace=True),
            nn.Conv2d(h, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class BasicBlock(nn.Module):
    """ResNet's basic block with a strided 1x1 downsample on the shortcut."""

    def __init__(self, cin: int = 8, cout: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.downsample(x)
        return self.relu(out)


class LinearHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.3)
        self.fc1 = nn.Linear(16, 32)
        self.bn = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.flatten(self.pool(F.relu(self.conv(x))), 1)
        y = F.relu(self.bn(self.fc1(self.drop(y))))
        return F.softmax(self.fc2(y), dim=-1)


class ConcatBranches(nn.Module):
    """Inception-like: three branches joined along channels."""

    def __init__(self) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(4, 6, 1)
        self.b3 = nn.Sequential(nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU())
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.pool(x)], dim=1)


class Pooling(nn.Module):
    """max pool with ceil_mode, average pools with and without counted padding, spatial means."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.maxpool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.avgpool = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.maxpool(F.relu(self.conv(x)))
        z = self.avgpool(y) + F.avg_pool2d(y, 3, 2, 1, ceil_mode=True)
        return z.mean(dim=(2, 3)), F.adaptive_avg_pool2d(y, (2, 1)).view(1, -1)


SMALL = {
    "conv_bn_stack": (ConvBNStack, (1, 3, 17, 15)),
    "inverted_residual": (InvertedResidual, (1, 8, 9, 9)),
    "basic_block": (BasicBlock, (2, 8, 11, 10)),
    "linear_head": (LinearHead, (3, 3, 8, 8)),
    "concat_branches": (ConcatBranches, (1, 4, 7, 6)),
    "pooling": (Pooling, (1, 3, 23, 20)),
}


def _torch_outputs(model: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(x)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def assert_matches_torch(graph: Graph, model: nn.Module, x: torch.Tensor, tol: float = TOL) -> None:
    got = reference.run(graph, {graph.inputs[0]: x.numpy()})
    want = _torch_outputs(model, x)
    assert len(graph.outputs) == len(want)
    for name, w in zip(graph.outputs, want, strict=True):
        assert got[name].shape == w.shape
        scale = max(float(np.abs(w).max()), 1e-6)
        err = float(np.abs(got[name] - w).max()) / scale
        assert err <= tol, f"{name}: {err:.2e} of output scale"


@pytest.fixture(scope="module")
def captured() -> dict[str, tuple[nn.Module, torch.Tensor, Graph]]:
    """Each small model captured once for the whole module (torch.export is the slow part)."""
    out = {}
    for name, (cls, shape) in SMALL.items():
        torch.manual_seed(0)
        model = _randomize_bn(cls())
        x = torch.randn(shape)
        out[name] = (model, x, capture(model, (x,), name=name))
    return out


@pytest.mark.parametrize("name", list(SMALL))
def test_small_models_match_torch(captured, name) -> None:
    model, x, graph = captured[name]
    assert graph.meta["model"] == name
    assert_matches_torch(graph, model, x)
    assert_matches_torch(run_passes(graph), model, x)  # and after folding and fusing
    # Every node points at a line of this file (the model code), not into torch.
    assert all(node.source.startswith("test_frontend.py:") for node in graph.nodes), [
        (n.name, n.source) for n in graph.nodes
    ]


def test_ops_are_mapped_to_the_op_set(captured) -> None:
    ops = {name: [n.op for n in graph.nodes] for name, (_, _, graph) in captured.items()}
    assert ops["conv_bn_stack"] == [
        "conv2d", "channel_affine", "relu", "conv2d", "channel_affine", "relu6", "conv2d", "channel_affine", "hardswish"
    ]  # fmt: skip
    depthwise = [
        n for n in captured["inverted_residual"][2].nodes if n.op == "conv2d" and n.attr("groups") == 32
    ]
    assert len(depthwise) == 1 and depthwise[0].attr("padding") == (1, 1, 1, 1)
    assert ops["inverted_residual"][-1] == "add"
    assert ops["basic_block"].count("add") == 1 and ops["basic_block"][-1] == "relu"
    assert ops["linear_head"] == [
        "conv2d", "relu", "global_avg_pool", "reshape", "linear", "channel_affine", "relu", "linear", "softmax"
    ]  # fmt: skip
    assert ops["concat_branches"][-1] == "concat"
    pools = {n.op: n for n in captured["pooling"][2].nodes if "pool" in n.op}
    assert pools["max_pool2d"].attr("ceil_mode") == 1
    assert {n.attr("count_include_pad") for n in captured["pooling"][2].iter_op("avg_pool2d")} == {0, 1}


def test_constants_keep_state_dict_names(captured) -> None:
    graph = captured["basic_block"][2]
    assert {"conv1.weight", "conv2.weight", "downsample.0.weight"} <= set(graph.constants)
    assert {"bn1.scale", "bn1.shift", "downsample.1.scale"} <= set(graph.constants)
    # Raw batch-norm statistics never reach the graph: they are folded into scale/shift.
    assert not any("running" in name for name in graph.constants)
    bn = captured["basic_block"][0].bn1
    want = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    np.testing.assert_allclose(graph.constants["bn1.scale"].to_dense(), want, rtol=1e-6)
    # Activation names follow the module tree; a module run twice gets a suffix.
    names = [n.outputs[0] for n in graph.nodes]
    assert names == ["conv1", "bn1", "relu", "conv2", "bn2", "downsample.0", "downsample.1", "add", "relu_1"]


def test_plan_weights_stay_encoded() -> None:
    torch.manual_seed(0)
    model = _randomize_bn(InvertedResidual())
    x = torch.randn(1, 8, 9, 9)
    expand = model.conv[0].weight
    with torch.no_grad():
        expand[torch.rand(expand.shape) < 0.75] = 0.0  # a pruned 1x1 conv
        # A 4-bit codebook for the projection: two groups of channels, 16 values each.
        proj = model.conv[6].weight
        idx = torch.randint(0, 16, (proj.shape[0], proj.shape[1]))
        table = torch.randn(2, 16)
        group = torch.arange(proj.shape[0]) % 2
        proj.copy_(table[group[:, None], idx].reshape(proj.shape))
    plan = {
        "conv.0.weight": BlockSparse.from_dense(expand.detach().numpy(), block=4),
        "conv.6.weight": Codebook.from_indices(
            tuple(proj.shape), 4, idx.numpy(), table.numpy(), group.numpy()
        ),
        "conv.3.weight": Int8PerChannel.from_dense(model.conv[3].weight.detach().numpy()),
    }
    with torch.no_grad():  # the int8 weights are what the model now holds
        model.conv[3].weight.copy_(torch.from_numpy(plan["conv.3.weight"].to_dense()))
    graph = capture(model, (x,), plan)
    kinds = {name: graph.constants[name].kind for name in plan}
    assert kinds == {"conv.0.weight": "bsr", "conv.6.weight": "codebook", "conv.3.weight": "int8"}
    assert_matches_torch(graph, model, x)


def test_stale_or_unknown_plan_is_a_user_error() -> None:
    model = _randomize_bn(ConvBNStack())
    x = torch.randn(1, 3, 9, 9)
    w = model.features[0].weight.detach().numpy()
    stale = BlockSparse.from_dense(w * 2)
    with pytest.raises(UserError, match=r"features\.0\.weight.*stale"):
        capture(model, (x,), {"features.0.weight": stale})
    with pytest.raises(UserError, match=r"not a parameter.*did you mean 'features\.0\.weight'"):
        capture(model, (x,), {"features.0.weights": BlockSparse.from_dense(w)})


class Sigmoid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.sigmoid(y)  # the unsupported line


def test_unsupported_op_names_op_and_source_line() -> None:
    with pytest.raises(UnsupportedOpError) as info:
        capture(Sigmoid(), (torch.randn(1, 3, 8, 8),))
    err = info.value
    line = next(
        i
        for i, text in enumerate(Path(__file__).read_text().splitlines(), 1)
        if "# the unsupported line" in text
    )
    msg = str(err)
    assert isinstance(err, UserError) and "\n" not in msg
    assert msg.startswith("unsupported op aten.sigmoid.default at ")
    assert f"test_frontend.py:{line} (`return torch.sigmoid(y)" in msg
    assert err.op == "aten.sigmoid.default"


class BroadcastAdd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.offset = nn.Parameter(torch.ones(1, 4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.offset


class Clamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardtanh(x, -1.0, 1.0)


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        (BroadcastAdd(), r"aten\.add\.Tensor \(broadcasting \[1, 4, 8, 8\] \+ \[1, 4, 1, 1\]"),
        (Clamp(), r"aten\.hardtanh\.default \(clamp to \[-1, 1\]"),
    ],
)
def test_unsupported_variants_say_why(model, pattern) -> None:
    with pytest.raises(UnsupportedOpError, match=pattern):
        capture(model, (torch.randn(1, 3, 8, 8),))


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x


def test_export_failure_is_a_one_line_user_error() -> None:
    with pytest.raises(UserError, match=r"^torch\.export failed: ") as info:
        capture(DataDependent(), (torch.randn(1, 3, 4, 4),))
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="float32"):
        capture(ConvBNStack(), (torch.randn(1, 3, 8, 8, dtype=torch.float64),))


class EncoderDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 2, 1)
        )
        self.decoder = nn.Sequential(nn.BatchNorm2d(2), nn.ReLU(), nn.Conv2d(2, 8, 3, padding=1))
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.decoder(self.encoder(x))
        return self.head(y.mean(dim=(2, 3)))


def test_split_after_records_the_bottleneck_tensor() -> None:
    model = _randomize_bn(EncoderDecoder())
    x = torch.randn(1, 3, 16, 16)
    graph = capture(model, (x,), split_after="encoder")
    split = graph.meta["split"]
    producer = graph.producers()[split]
    assert producer.op == "conv2d" and graph.values[split].shape == (1, 2, 8, 8)
    assert graph.constants[producer.inputs[1]].shape == (2, 8, 1, 1)
    assert_matches_torch(graph, model, x)
    with pytest.raises(UserError, match=r"no submodule 'encoderr'.*'encoder'"):
        capture(model, (x,), split_after="encoderr")


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch's pytree deprecation inside export
def test_takes_an_exported_program_in_core_aten_form() -> None:
    """An already-decomposed program (convolution, addmm with a transposed weight) still maps, and
    an encoded linear weight reached through weight.t() keeps its encoding."""
    torch.manual_seed(0)
    model = _randomize_bn(LinearHead())
    x = torch.randn(3, 3, 8, 8)
    ep = torch.export.export(model, (x,), strict=False).run_decompositions()
    targets = {str(n.target) for n in ep.graph.nodes}
    assert {"aten.addmm.default", "aten.convolution.default"} <= targets
    w = model.fc2.weight.detach().numpy().copy()
    plan = {"fc2.weight": Int8PerChannel.from_dense(w)}
    with torch.no_grad():
        model.fc2.weight.copy_(torch.from_numpy(plan["fc2.weight"].to_dense()))
    ep = torch.export.export(model, (x,), strict=False).run_decompositions()
    graph = capture(ep, (x,), plan)
    assert graph.constants["fc2.weight"].kind == "int8"
    assert [n.op for n in graph.nodes].count("linear") == 2
    assert_matches_torch(graph, model, x)


def test_capture_restores_training_mode() -> None:
    model = ConvBNStack().train()
    capture(model, (torch.randn(1, 3, 8, 8),))
    assert model.training


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_zoo_models_match_torch(name) -> None:
    from edgefit import models

    model = models.create(name)
    x = models.example_input(name)
    graph = capture(model, (x,), name=name)
    assert_matches_torch(graph, model, x, tol=1e-4)
    assert_matches_torch(run_passes(graph), model, x, tol=1e-4)


class TFSamePadding(nn.Module):
    """TF-style "same" for a stride-2 conv: the extra row/column goes at the bottom/right."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(4, 2, 4, padding="same")  # even kernel: torch pads 1 before, 2 after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pad(x))
        return self.conv3(self.conv2(F.pad(F.pad(y, (1, 0)), (0, 0, 2, 0))))


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch notes the padded copy it makes
def test_zero_padding_folds_into_the_convolution() -> None:
    model = TFSamePadding().eval()
    x = torch.randn(1, 3, 10, 9)
    graph = capture(model, (x,))
    assert [(n.op, n.attr("padding")) for n in graph.nodes] == [
        ("conv2d", (0, 0, 1, 1)),
        ("conv2d", (3, 2, 1, 1)),
        ("conv2d", (1, 1, 2, 2)),
    ]
    assert_matches_torch(graph, model, x)


class PadThenRelu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.pad(x, (1, 1)))


def test_padding_elsewhere_is_unsupported() -> None:
    with pytest.raises(UnsupportedOpError, match=r"aten\.relu\.default \(the input is zero-padded"):
        capture(PadThenRelu(), (torch.randn(1, 3, 4, 4),))


@pytest.mark.slow
def test_bottlefit_head_and_tail_match_torch() -> None:
    """The zoo's BottleFit ResNet-50 split after its encoder: head (u8 out) + tail ~ the whole model."""
    from edgefit import models

    model = models.create("bottlefit_resnet50")
    x = models.example_input("bottlefit_resnet50")
    graph = run_passes(capture(model, (x,), split_after=model.split_after, name="bottlefit_resnet50"))
    assert_matches_torch(graph, model, x, tol=1e-4)
    head, tail = split_at_bottleneck(graph, calibration={graph.inputs[0]: x.numpy()})
    sent = reference.run(head, {graph.inputs[0]: x.numpy()})
    assert sent[head.outputs[0]].dtype == np.uint8
    got = reference.run(tail, sent)[tail.outputs[0]]
    with torch.no_grad():
        want = model(x).numpy()
    assert float(np.abs(got - want).max()) <= 0.02 * float(np.abs(want).max())
    # The head is the small part: BottleFit's point.
    head_bytes = sum(c.nbytes for c in head.constants.values())
    assert head_bytes * 20 < sum(c.nbytes for c in tail.constants.values())
