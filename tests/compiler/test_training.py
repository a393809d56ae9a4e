"""The shared training loop: it learns, calls the step hooks, checkpoints and resumes exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from edgefit.compiler.compress.training import (
    cross_entropy_loss,
    evaluate_accuracy,
    fit,
    register_after_step,
)


def _toy_data(n: int = 256, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return TensorDataset(x, y)


def _toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))


def test_fit_learns_and_calls_hooks() -> None:
    data = _toy_data()
    model = _toy_model()
    before = evaluate_accuracy(model, data)
    seen: list[int] = []
    registered: list[int] = []
    handle = register_after_step(model, registered.append)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    loader = DataLoader(data, batch_size=32, shuffle=True)
    fit(model, loader, cross_entropy_loss, opt, 3, progress=False, after_step=seen.append)
    assert seen == list(range(1, 3 * 8 + 1))
    assert registered == seen
    after = evaluate_accuracy(model, data)
    assert after > 0.85 and after > before + 0.1
    handle.remove()
    fit(model, loader, cross_entropy_loss, opt, 1, progress=False)
    assert len(registered) == 24  # a removed hook is not called again


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path) -> None:
    data = _toy_data()

    def run(epochs: int, model: nn.Module, ckpt=None) -> nn.Module:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        loader = DataLoader(data, batch_size=32, shuffle=True)
        fit(model, loader, cross_entropy_loss, opt, epochs, progress=False, checkpoint=ckpt)
        return model

    torch.manual_seed(123)
    straight = run(4, _toy_model())

    ckpt = tmp_path / "ck" / "fit.pt"
    torch.manual_seed(123)
    run(2, _toy_model(), ckpt)  # "stopped" after two epochs
    assert ckpt.exists()
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    torch.manual_seed(999)  # a new process would not share the old RNG state: the checkpoint has it
    steps: list[int] = []
    resumed = _toy_model(seed=5)  # fresh weights: everything must come from the checkpoint
    opt = torch.optim.Adam(resumed.parameters(), lr=1e-2)
    fit(
        resumed,
        DataLoader(data, batch_size=32, shuffle=True),
        cross_entropy_loss,
        opt,
        4,
        progress=False,
        checkpoint=ckpt,
        after_step=steps.append,
    )
    assert steps == list(range(17, 33))  # global steps continue from epoch 2
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob("ck/.*"))  # no temp files left behind


def test_mismatched_checkpoint_is_a_user_error(tmp_path) -> None:
    from edgefit.errors import UserError

    ckpt = tmp_path / "fit.pt"
    data = _toy_data(64)
    model = _toy_model()
    fit(
        model,
        DataLoader(data, batch_size=32),
        cross_entropy_loss,
        torch.optim.SGD(model.parameters(), lr=0.1),
        1,
        progress=False,
        checkpoint=ckpt,
    )
    other = nn.Sequential(nn.Linear(6, 3))
    with pytest.raises(UserError, match="does not match"):
        fit(
            other,
            DataLoader(data, batch_size=32),
            cross_entropy_loss,
            torch.optim.SGD(other.parameters(), lr=0.1),
            2,
            progress=False,
            checkpoint=ckpt,
        )
