"""Magnitude pruning: the cubic schedule, one-shot and block patterns, masks through fine-tuning,
plans that decode exactly to the module's weights, and resuming a stopped run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from edgefit.compiler.compress.policy import SPARSE_DEFAULT, LayerPolicy, select_weights
from edgefit.compiler.compress.pruning import (
    GradualPruner,
    magnitude_prune,
    prune_and_finetune,
    sparsity_schedule,
)
from edgefit.compiler.compress.training import cross_entropy_loss, fit
from edgefit.compiler.encodings import BlockSparse
from edgefit.errors import UserError


class Small(nn.Module):
    """conv (first, kept dense) -> conv -> depthwise -> pointwise -> linear -> linear (classifier)."""

    def __init__(self, odd: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.body = nn.Sequential(
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16),
            nn.Conv2d(16, odd, 1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(odd * 16, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(self.body(self.stem(x)).flatten(1))))


def _data(n: int = 128) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 4, 4, generator=g)
    y = (x.flatten(1)[:, :4].argmax(dim=1)).long()
    return TensorDataset(x, y)


def _assert_plan_exact(model: nn.Module, plan: dict) -> None:
    params = dict(model.named_parameters())
    assert plan
    for name, enc in plan.items():
        assert np.array_equal(enc.to_dense(), params[name].detach().numpy()), name


def test_schedule_values() -> None:
    kw = dict(initial=0.0, final=0.9, begin_step=10, n_steps=10, frequency=5)
    assert sparsity_schedule(0, **kw) == 0.0
    assert sparsity_schedule(10, **kw) == 0.0
    assert sparsity_schedule(14, **kw) == 0.0  # no update before t0 + dt
    assert sparsity_schedule(15, **kw) == pytest.approx(0.9 - 0.9 * 0.9**3)
    assert sparsity_schedule(37, **kw) == pytest.approx(0.9 - 0.9 * 0.5**3)  # 5 updates done
    assert sparsity_schedule(60, **kw) == pytest.approx(0.9)
    assert sparsity_schedule(10_000, **kw) == pytest.approx(0.9)
    values = [sparsity_schedule(t, **kw) for t in range(0, 80)]
    assert all(b >= a for a, b in itertools.pairwise(values))  # monotone
    assert sparsity_schedule(3, initial=0.5, final=0.8, begin_step=5, n_steps=2, frequency=1) == 0.5
    with pytest.raises(UserError):
        sparsity_schedule(1, initial=0.0, final=0.5, begin_step=0, n_steps=0, frequency=1)


def test_policy_selects_middle_layers() -> None:
    model = Small()
    assert list(select_weights(model)) == [
        "body.0.weight",
        "body.2.weight",
        "body.3.weight",
        "fc.weight",
    ]
    all_w = select_weights(model, LayerPolicy(skip_first_conv=False, skip_classifier=False))
    assert list(all_w) == [
        "stem.weight",
        "body.0.weight",
        "body.2.weight",
        "body.3.weight",
        "fc.weight",
        "head.weight",
    ]
    assert list(select_weights(model, LayerPolicy(pointwise_only=True))) == ["body.3.weight"]
    assert list(select_weights(model, LayerPolicy(include=("body.*",), exclude=("body.2",)))) == [
        "body.0.weight",
        "body.3.weight",
    ]


def test_one_shot_unstructured() -> None:
    torch.manual_seed(0)
    model = Small()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    plan = magnitude_prune(model, 0.75)
    _assert_plan_exact(model, plan)
    assert set(plan) == set(select_weights(model, SPARSE_DEFAULT))
    for name, enc in plan.items():
        assert isinstance(enc, BlockSparse) and enc.block == 1
        w, w0 = model.get_parameter(name).detach(), before[name]
        assert (w == 0).float().mean().item() == pytest.approx(0.75, abs=0.01)
        # the survivors are the largest magnitudes, unchanged
        kept = w != 0
        assert torch.equal(w[kept], w0[kept])
        assert w0[kept].abs().min() >= w0[~kept].abs().max()
    for name in ("stem.weight", "head.weight", "stem.bias"):
        assert torch.equal(model.get_parameter(name), before[name])


@pytest.mark.parametrize("block", [2, 4])
def test_block_patterns(block: int, caplog) -> None:
    torch.manual_seed(1)
    model = Small(odd=6)  # body.3 has 6 output channels: 1x4 blocks do not fit it
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    plan = magnitude_prune(model, 0.5, block=block)
    _assert_plan_exact(model, plan)
    if block == 4:
        assert plan.skipped == ["body.3.weight"] and "body.3.weight" not in plan
        assert torch.equal(model.body[3].weight, before["body.3.weight"])
        assert "do not divide" in caplog.text
    for name, enc in plan.items():
        assert enc.block == block
        w = model.get_parameter(name).detach()
        blocks = w.reshape(w.shape[0] // block, block, -1)
        zero = (blocks == 0).all(dim=1)
        kept = ~zero
        # every block is all-zero or exactly the original values
        b0 = before[name].reshape(blocks.shape)
        assert torch.equal(blocks.permute(0, 2, 1)[kept], b0.permute(0, 2, 1)[kept])
        assert zero.float().mean().item() == pytest.approx(0.5, abs=0.02)


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(UserError, match="sparsity"):
        magnitude_prune(Small(), 1.0)
    with pytest.raises(UserError, match="block"):
        magnitude_prune(Small(), 0.5, block=3)


def test_gradual_pruner_masks_stay_applied() -> None:
    torch.manual_seed(2)
    model = Small()
    data = _data()
    loader = DataLoader(data, batch_size=16, shuffle=True)  # 8 steps per epoch
    pruner = GradualPruner(model, final_sparsity=0.8, begin_step=0, n_steps=4, frequency=4, block=2)
    seen: list[tuple[int, float]] = []

    def check(step: int) -> None:
        # runs after the pruner's registered hook: every pruned block is zero right now
        for name, w in pruner.weights.items():
            blocks = w.detach().reshape(w.shape[0] // 2, 2, -1)
            assert not blocks.permute(0, 2, 1)[~pruner.masks[name]].any(), (step, name)
        zeros = sum(int((w == 0).sum()) for w in pruner.weights.values())
        seen.append((step, zeros / sum(w.numel() for w in pruner.weights.values())))

    fit(
        model,
        loader,
        cross_entropy_loss,
        torch.optim.Adam(model.parameters(), 1e-2),
        4,
        progress=False,
        after_step=check,
    )
    by_step = dict(seen)
    assert by_step[3] == 0.0
    assert by_step[4] == pytest.approx(0.8 - 0.8 * 0.75**3, abs=0.02)
    assert by_step[16] == pytest.approx(0.8, abs=0.01)
    assert by_step[32] == pytest.approx(0.8, abs=0.01)  # and it stays there while training goes on
    plan = pruner.plan()
    _assert_plan_exact(model, plan)
    pruner.remove()
    assert all(enc.nnz <= 0.21 * np.prod(enc.shape) for enc in plan.values())


def test_prune_and_finetune_resumes_exactly(tmp_path, stop_after) -> None:
    data = _data()
    torch.manual_seed(3)
    straight = Small()
    init = {k: v.clone() for k, v in straight.state_dict().items()}
    torch.manual_seed(10)
    plan_a = prune_and_finetune(
        straight, 0.7, data, epochs=4, block=1, lr=1e-2, progress=False, batch_size=16
    )

    ckpt = tmp_path / "prune.pt"
    stopped = Small()
    stopped.load_state_dict(init)
    torch.manual_seed(10)
    with pytest.raises(KeyboardInterrupt):
        prune_and_finetune(
            stopped,
            0.7,
            stop_after(data, 128 * 2 + 40),
            epochs=4,
            lr=1e-2,
            progress=False,
            checkpoint=ckpt,
            batch_size=16,
        )
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    resumed = Small()
    resumed.load_state_dict(init)
    torch.manual_seed(77)
    plan_b = prune_and_finetune(
        resumed, 0.7, data, epochs=4, lr=1e-2, progress=False, checkpoint=ckpt, batch_size=16
    )
    _assert_plan_exact(resumed, plan_b)
    assert plan_a.keys() == plan_b.keys()
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    for w in select_weights(resumed, SPARSE_DEFAULT).values():
        assert (w == 0).float().mean().item() == pytest.approx(0.7, abs=0.01)


def _random_zoo(name: str) -> nn.Module:
    models = pytest.importorskip("edgefit.models", reason="the zoo (edgefit.models) is not there yet")
    return models.create(name)


@pytest.mark.parametrize("name", ["mobilenet_v2", pytest.param("resnet50", marks=pytest.mark.slow)])
@pytest.mark.parametrize("block", [1, 4])
def test_zoo_plans_decode_exactly(name: str, block: int) -> None:
    model = _random_zoo(name)
    plan = magnitude_prune(model, 0.9, block=block, policy=LayerPolicy(pointwise_only=block == 4))
    _assert_plan_exact(model, plan)
    assert len(plan) > 10


def test_layer_stats_of_a_pruned_model() -> None:
    from edgefit.compiler.compress.stats import layer_stats, summarize

    torch.manual_seed(0)
    model = Small()
    plan = magnitude_prune(model, 0.9, block=2)
    rows = layer_stats(model, plan)
    assert [r.name for r in rows] == [
        "stem.weight",
        "body.0.weight",
        "body.2.weight",
        "body.3.weight",
        "fc.weight",
        "head.weight",
    ]
    by_name = {r.name: r for r in rows}
    for r in rows:
        p = model.get_parameter(r.name)
        assert r.params == p.numel() and r.dense_bytes == 4 * p.numel()
        if r.name in plan:
            assert r.kind == "bsr" and r.bytes == plan[r.name].nbytes and r.nnz == int((p != 0).sum())
            assert r.sparsity == pytest.approx(0.9, abs=0.02)
        else:
            assert r.kind == "dense" and r.bytes == 4 * p.numel() and r.bits_per_weight == 32.0
    s = summarize(rows)
    assert s["compressed"]["layers"] == 3 and s["all"]["layers"] == 6
    assert s["all"]["params"] == sum(r.params for r in rows)
    assert s["all"]["bytes"] == sum(r.bytes for r in rows)
    assert s["compressed"]["sparsity"] == pytest.approx(0.9, abs=0.02)
    assert (
        s["all"]["sparsity"] < s["compressed"]["sparsity"]
    )  # the dense first conv, depthwise conv and classifier count too
    assert by_name["fc.weight"].bits_per_weight < 32 * 0.2  # 1x2 blocks: value + column index per block
