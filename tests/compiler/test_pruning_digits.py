"""Acceptance on the digits data: gradual magnitude pruning to 90 % sparsity loses at most one
accuracy point against the trained float digits_cnn."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from edgefit.compiler.compress.policy import select_weights
from edgefit.compiler.compress.pruning import prune_and_finetune
from edgefit.compiler.compress.stats import layer_stats, summarize
from edgefit.compiler.compress.training import cosine_lr, cross_entropy_loss, evaluate_accuracy, fit

models = pytest.importorskip("edgefit.models", reason="the zoo (edgefit.models) is not there yet")
datasets = pytest.importorskip("edgefit.models.datasets", reason="the digits data is not there yet")


def train_baseline(epochs: int = 20, lr: float = 3e-3) -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.create("digits_cnn")
    loader = DataLoader(datasets.digits("train"), batch_size=64, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    fit(
        model,
        loader,
        cross_entropy_loss,
        opt,
        epochs,
        progress=False,
        after_step=cosine_lr(opt, lr, epochs * len(loader)),
    )
    return model.eval()


def test_gmp_90_percent_loses_at_most_one_point() -> None:
    train, test = datasets.digits("train"), datasets.digits("test")
    base = train_baseline()
    base_acc = evaluate_accuracy(base, test)
    model = copy.deepcopy(base)
    torch.manual_seed(1)
    plan = prune_and_finetune(model, 0.9, train, epochs=15, lr=1e-3, progress=False)
    acc = evaluate_accuracy(model, test)
    params = dict(model.named_parameters())
    for name, enc in plan.items():
        assert np.array_equal(enc.to_dense(), params[name].detach().numpy()), name
    s = summarize(layer_stats(model, plan))
    prunable = s["compressed"]["sparsity"]
    whole = s["all"]["sparsity"]
    print(
        f"\ndigits_cnn: float {base_acc:.4f}, 90% GMP {acc:.4f} ({100 * (acc - base_acc):+.2f} points); "
        f"sparsity {prunable:.4f} over the pruned layers {sorted(plan)}, {whole:.4f} over all conv/linear "
        f"weights; {s['all']['bytes']} B as BSR vs {s['all']['dense_bytes']} B fp32"
    )
    assert set(plan) == set(select_weights(model)) == {"features.1.0.weight", "features.3.0.weight"}
    assert prunable == pytest.approx(0.9, abs=0.002)
    assert base_acc >= 0.97  # the baseline really learned the task
    assert acc >= base_acc - 0.010
