"""Codebook weights: deterministic 1-D k-means, JLCM channel grouping, plans that decode exactly,
the 4-bit size, pruned zeros kept, and straight-through fine-tuning (learns, resumes exactly)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from edgefit.compiler.compress.codebook import (
    codebook_quantize,
    finetune_codebooks,
    group_channels,
    kmeans_1d,
)
from edgefit.compiler.compress.policy import LayerPolicy
from edgefit.compiler.compress.pruning import magnitude_prune
from edgefit.compiler.compress.stats import layer_stats, summarize
from edgefit.compiler.compress.training import evaluate_accuracy
from edgefit.errors import UserError


def _assert_plan_exact(model: nn.Module, plan: dict) -> None:
    params = dict(model.named_parameters())
    assert plan
    for name, enc in plan.items():
        assert np.array_equal(enc.to_dense(), params[name].detach().numpy()), name


class Net(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width * 16, 64)
        self.out = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return self.out(torch.relu(self.fc(x.flatten(1))))


def _data(n: int = 256, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 4, generator=g)
    y = x.flatten(1)[:, [0, 5, 10, 15]].argmax(dim=1)
    return TensorDataset(x, y)


def test_kmeans_1d_is_deterministic_and_nearest() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(37, 11)).astype(np.float32)
    c1, a1 = kmeans_1d(v, 8)
    c2, a2 = kmeans_1d(v.copy(), 8)
    assert np.array_equal(c1, c2) and np.array_equal(a1, a2)
    assert c1.dtype == np.float32 and a1.shape == v.shape
    assert np.all(np.diff(c1) > 0)
    dist = np.abs(v[..., None] - c1)
    assert np.allclose(dist[np.arange(37)[:, None], np.arange(11), a1], dist.min(axis=-1))
    # values that are already k levels are recovered exactly
    levels = np.array([-3.0, -1.0, 0.5, 2.0], np.float32)
    c, a = kmeans_1d(levels[rng.integers(0, 4, 500)], 4)
    assert np.array_equal(c, levels) and np.array_equal(c[a], levels[levels.searchsorted(c[a])])


def test_group_channels_separates_distributions() -> None:
    rng = np.random.default_rng(1)
    o = 24
    scales = np.where(np.arange(o) % 3 == 0, 1.0, 0.02)
    w = rng.normal(size=(o, 8, 3, 3)) * scales[:, None, None, None]
    g = group_channels(w.astype(np.float32), 2)
    assert g.dtype == np.int32 and g.shape == (o,)
    assert set(g.tolist()) == {0, 1}
    assert np.array_equal(g, np.where(scales > 0.5, 1, 0))  # numbered by spread: narrow first
    assert np.array_equal(g, group_channels(w.astype(np.float32), 2))
    assert np.array_equal(group_channels(w, 1), np.zeros(o, np.int32))
    assert len(set(group_channels(w[:3], 8).tolist())) == 3  # never more groups than channels
    with pytest.raises(UserError):
        group_channels(w, 0)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_codebook_plan_decodes_exactly(bits: int) -> None:
    torch.manual_seed(0)
    model = Net()
    bias_before = model.conv1.bias.detach().clone()
    plan = codebook_quantize(model, bits, groups=3)
    _assert_plan_exact(model, plan)
    assert list(plan) == ["conv1.weight", "conv2.weight", "fc.weight", "out.weight"]
    for name, enc in plan.items():
        assert enc.bits == bits and enc.table.shape == (3, 2**bits)
        w = model.get_parameter(name).detach().numpy().reshape(enc.shape[0], -1)
        for g in range(3):
            assert len(np.unique(w[enc.group == g])) <= 2**bits
    assert torch.equal(model.conv1.bias, bias_before)  # only weights change


def test_groups_lower_the_error_on_mixed_channels() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    with torch.no_grad():
        lin.weight.mul_(torch.where(torch.arange(32) % 2 == 0, 1.0, 0.01)[:, None])
    ref = lin.weight.detach().clone()
    errs = []
    for groups in (1, 2):
        m = nn.Sequential(copy.deepcopy(lin))
        codebook_quantize(m, 3, groups=groups)
        # error on the narrow channels, which one shared table serves badly
        errs.append(float((m[0].weight.detach() - ref)[1::2].abs().mean()))
    assert errs[1] < 0.2 * errs[0]


def test_bad_bits_are_user_errors() -> None:
    for bits in (1, 9):
        with pytest.raises(UserError, match="bits"):
            codebook_quantize(Net(), bits)
    with pytest.raises(UserError, match="groups"):
        codebook_quantize(Net(), 4, groups=0)
    model = Net()
    plan = codebook_quantize(model, 4)
    with pytest.raises(UserError, match="not a codebook"):
        finetune_codebooks(model, {"nope.weight": plan["fc.weight"]}, _data(), epochs=1, progress=False)
    scaled = {"fc.weight": plan["fc.weight"].scale_rows(np.full(64, 2.0, np.float32))}
    with pytest.raises(UserError, match="row scales"):
        finetune_codebooks(model, scaled, _data(), epochs=1, progress=False)


def test_four_bits_is_at_least_7_5x_smaller() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Conv2d(128, 128, 1), nn.Flatten(), nn.Linear(512, 100)
    )
    plan = codebook_quantize(model, 4)
    _assert_plan_exact(model, plan)
    s = summarize(layer_stats(model, plan))["compressed"]
    # As stored (format 1.1): u8 group map, no row scales while every scale is 1.
    expected = sum(e.packed.nbytes + e.table.nbytes + e.group.size for e in plan.values())
    assert s["bytes"] == expected
    assert s["dense_bytes"] == 4 * sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))
    assert s["compression"] >= 7.5, s


def test_pruned_zeros_survive_quantization_and_finetuning() -> None:
    torch.manual_seed(0)
    model = Net()
    magnitude_prune(model, 0.8)
    zeros = {n: (p == 0).clone() for n, p in model.named_parameters() if n.endswith("weight")}
    plan = codebook_quantize(model, 3)
    for name in plan:
        w = model.get_parameter(name)
        assert torch.equal(w == 0, zeros[name]), name  # exactly the pruned weights are zero
    torch.manual_seed(1)
    plan = finetune_codebooks(model, plan, _data(), epochs=2, lr=1e-2, progress=False, batch_size=32)
    _assert_plan_exact(model, plan)
    for name in plan:
        assert torch.equal(model.get_parameter(name) == 0, zeros[name]), name


def test_finetuning_learns_tables_and_assignments() -> None:
    data = _data(512)
    torch.manual_seed(0)
    model = Net()
    from torch.utils.data import DataLoader

    from edgefit.compiler.compress.training import cosine_lr, cross_entropy_loss, fit

    opt = torch.optim.Adam(model.parameters(), 3e-3)
    loader = DataLoader(data, batch_size=32, shuffle=True)
    fit(
        model,
        loader,
        cross_entropy_loss,
        opt,
        8,
        progress=False,
        after_step=cosine_lr(opt, 3e-3, 8 * len(loader)),
    )
    trained = evaluate_accuracy(model, data)
    plan0 = codebook_quantize(model, 2)
    one_shot = evaluate_accuracy(model, data)
    torch.manual_seed(1)
    plan = finetune_codebooks(model, plan0, data, epochs=6, lr=3e-3, progress=False, batch_size=32)
    tuned = evaluate_accuracy(model, data)
    _assert_plan_exact(model, plan)
    print(
        f"2-bit codebook on the toy task: float {trained:.3f}, one-shot {one_shot:.3f}, fine-tuned {tuned:.3f}"
    )
    assert tuned > one_shot + 0.02
    assert not model.parametrizations if hasattr(model, "parametrizations") else True
    assert set(dict(model.named_parameters())) == set(dict(Net().named_parameters()))  # no latent left behind
    for name in plan:
        assert not np.array_equal(plan[name].table, plan0[name].table), name
    assert any(not np.array_equal(plan[n].indices(), plan0[n].indices()) for n in plan)


def test_finetune_resumes_exactly(tmp_path, stop_after) -> None:
    data = _data(128)
    torch.manual_seed(0)
    base = Net()
    plan = codebook_quantize(base, 3, groups=2)

    straight = copy.deepcopy(base)
    torch.manual_seed(5)
    plan_a = finetune_codebooks(straight, plan, data, epochs=3, lr=1e-2, progress=False, batch_size=32)

    ckpt = tmp_path / "cb.pt"
    stopped = copy.deepcopy(base)
    torch.manual_seed(5)
    with pytest.raises(KeyboardInterrupt):
        finetune_codebooks(
            stopped,
            plan,
            stop_after(data, 128 + 50),
            epochs=3,
            lr=1e-2,
            progress=False,
            checkpoint=ckpt,
            batch_size=32,
        )
    assert set(dict(stopped.named_parameters())) == set(dict(base.named_parameters()))  # cleaned up
    resumed = copy.deepcopy(base)
    torch.manual_seed(99)
    plan_b = finetune_codebooks(
        resumed, plan, data, epochs=3, lr=1e-2, progress=False, checkpoint=ckpt, batch_size=32
    )
    _assert_plan_exact(resumed, plan_b)
    for name in plan_a:
        assert np.array_equal(plan_a[name].to_dense(), plan_b[name].to_dense()), name
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def _zoo(name: str) -> nn.Module:
    models = pytest.importorskip("edgefit.models", reason="the zoo (edgefit.models) is not there yet")
    return models.create(name)


@pytest.mark.parametrize("name", ["mobilenet_v2", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_zoo_codebooks_decode_exactly(name: str) -> None:
    model = _zoo(name)
    plan = codebook_quantize(model, 4, groups=4, policy=LayerPolicy())
    _assert_plan_exact(model, plan)
    s = summarize(layer_stats(model, plan))
    assert s["compressed"]["compression"] > 7.0, s["compressed"]
