"""Acceptance on the digits data: 4-bit codebooks (with straight-through fine-tuning) lose at most
half an accuracy point against the trained float digits_cnn, at ~8x fewer weight bytes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from edgefit.compiler.compress.codebook import codebook_quantize, finetune_codebooks
from edgefit.compiler.compress.stats import layer_stats, summarize
from edgefit.compiler.compress.training import cosine_lr, cross_entropy_loss, evaluate_accuracy, fit

models = pytest.importorskip("edgefit.models", reason="the zoo (edgefit.models) is not there yet")
datasets = pytest.importorskip("edgefit.models.datasets", reason="the digits data is not there yet")


@pytest.fixture(scope="module")
def digits_4bit() -> dict:
    torch.manual_seed(0)
    base = models.create("digits_cnn")
    train, test = datasets.digits("train"), datasets.digits("test")
    loader = DataLoader(train, batch_size=64, shuffle=True)
    opt = torch.optim.Adam(base.parameters(), lr=3e-3)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(
            base,
            loader,
            cross_entropy_loss,
            opt,
            20,
            progress=False,
            after_step=cosine_lr(opt, 3e-3, 20 * len(loader)),
        )
        model = copy.deepcopy(base)
        plan = codebook_quantize(model, 4)
        one_shot = evaluate_accuracy(model, test)
        torch.manual_seed(1)
        plan = finetune_codebooks(model, plan, train, epochs=3, lr=1e-3, progress=False)
    finally:
        torch.set_num_threads(n)
    return {
        "base_acc": evaluate_accuracy(base, test),
        "one_shot": one_shot,
        "acc": evaluate_accuracy(model, test),
        "model": model,
        "plan": plan,
        "stats": summarize(layer_stats(model, plan)),
    }


def test_4bit_codebooks_lose_at_most_half_a_point(digits_4bit: dict) -> None:
    r = digits_4bit
    s = r["stats"]["compressed"]
    print(
        f"\ndigits_cnn: float {r['base_acc']:.4f}, 4-bit one-shot {r['one_shot']:.4f}, fine-tuned {r['acc']:.4f} "
        f"({100 * (r['acc'] - r['base_acc']):+.2f} points); {s['bytes']} B (indices + tables + group + row_scale) "
        f"vs {s['dense_bytes']} B fp32 = {s['compression']:.2f}x over {s['layers']} layers"
    )
    params = dict(r["model"].named_parameters())
    for name, enc in r["plan"].items():
        assert enc.bits == 4
        assert np.array_equal(enc.to_dense(), params[name].detach().numpy()), name
    assert r["base_acc"] >= 0.97
    assert r["acc"] >= r["base_acc"] - 0.005
    # Every conv/linear weight is a codebook; the index payload alone is 8x smaller than fp32.
    assert s["layers"] == r["stats"]["all"]["layers"] == 4
    packed = sum(e.packed.nbytes for e in r["plan"].values())
    assert s["dense_bytes"] / packed >= 7.5


def test_4bit_codebooks_are_7_5x_smaller_than_fp32(digits_4bit: dict) -> None:
    assert digits_4bit["stats"]["compressed"]["compression"] >= 7.5
