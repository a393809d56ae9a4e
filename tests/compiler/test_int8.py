"""Int8 weights (symmetric per output channel) and activation calibration on the reference
interpreter; the compiler front-end accepts the plans of every pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgefit.compiler.compress.codebook import codebook_quantize
from edgefit.compiler.compress.int8 import calibrate_activations, quantize_weights_int8
from edgefit.compiler.compress.pruning import magnitude_prune
from edgefit.compiler.compress.stats import layer_stats, summarize
from edgefit.compiler.encodings import Int8PerChannel
from edgefit.errors import UserError


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    m = Tiny()
    with torch.no_grad():  # non-trivial batch-norm statistics
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_int8_weights_decode_exactly_and_round_to_nearest() -> None:
    model = _tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    plan = quantize_weights_int8(model)
    assert list(plan) == ["conv1.weight", "conv2.weight", "fc.weight"]  # first conv and classifier too
    for name, enc in plan.items():
        assert isinstance(enc, Int8PerChannel)
        w = model.get_parameter(name).detach()
        assert np.array_equal(enc.to_dense(), w.numpy())
        assert enc.q.dtype == np.int8 and np.abs(enc.q.astype(int)).max() == 127  # symmetric, full range
        w0 = before[name].reshape(w.shape[0], -1)
        half_step = torch.from_numpy(enc.scale)[:, None] / 2
        assert ((w.reshape(w.shape[0], -1) - w0).abs() <= half_step * (1 + 1e-5)).all()
    assert torch.equal(model.conv1.bias, before["conv1.bias"])
    s = summarize(layer_stats(model, plan))["all"]
    # one byte per weight plus one f32 scale per output channel
    assert s["bytes"] == sum(
        p.numel() + 4 * p.shape[0] for p in (model.conv1.weight, model.conv2.weight, model.fc.weight)
    )
    assert 3.0 < s["compression"] < 4.0


def _capture(model: nn.Module, plan: dict | None = None):
    frontend = pytest.importorskip(
        "edgefit.compiler.frontend", reason="the compiler front-end is not there yet"
    )
    return frontend.capture(model, (torch.zeros(1, 3, 6, 6),), plan=plan)


def test_calibration_ranges_cover_every_activation() -> None:
    model = _tiny()
    graph = _capture(model)
    rng = np.random.default_rng(0)
    batches = [
        {graph.inputs[0]: rng.normal(size=(1, 3, 6, 6)).astype(np.float32) * s} for s in (0.5, 1.0, 2.0)
    ]
    ranges = calibrate_activations(graph, batches)
    from edgefit.compiler.reference import run

    produced = {o for n in graph.nodes for o in n.outputs}
    assert set(ranges) == produced | set(graph.inputs)
    # per tensor, the range is exactly the min/max over all batches
    for name in [graph.inputs[0], graph.outputs[0]]:
        values = np.concatenate([run(graph, b, keep_all=True)[name].ravel() for b in batches])
        assert ranges[name] == (float(values.min()), float(values.max()))
    with torch.no_grad():
        out = torch.cat([model(torch.from_numpy(b[graph.inputs[0]])) for b in batches])
    assert ranges[graph.outputs[0]][1] == pytest.approx(float(out.max()), rel=1e-4, abs=1e-5)
    first = calibrate_activations(graph, batches[:1])
    for name, (lo, hi) in first.items():  # more data only widens a range
        assert ranges[name][0] <= lo and ranges[name][1] >= hi
    with pytest.raises(UserError, match="at least one batch"):
        calibrate_activations(graph, [])


@pytest.mark.parametrize("compress", ["int8", "prune", "codebook"])
def test_frontend_accepts_the_plans(compress: str) -> None:
    model = _tiny()
    if compress == "int8":
        plan = quantize_weights_int8(model)
    elif compress == "prune":
        plan = magnitude_prune(model, 0.5)
    else:
        plan = codebook_quantize(model, 4, groups=2)
    graph = _capture(model, plan)
    kinds = {enc.kind for enc in graph.constants.values()}
    assert {enc.kind for enc in plan.values()} <= kinds
    from edgefit.compiler.reference import run

    x = np.random.default_rng(1).normal(size=(1, 3, 6, 6)).astype(np.float32)
    got = run(graph, {graph.inputs[0]: x})[graph.outputs[0]]
    want = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
