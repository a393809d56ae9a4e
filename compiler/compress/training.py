"""The shared training loop of the compression passes: epochs with tqdm bars, per-step hooks
(e.g. re-applying pruning masks) and an atomic per-epoch checkpoint that a stopped run resumes from.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from edgefit.errors import UserError

LossFn = Callable[[nn.Module, tuple[Tensor, ...]], Tensor]
StepHook = Callable[[int], None]

# Hooks that must run after every optimizer step of a given model, whoever trains it (a pruner
# registers its mask re-application here so any `fit` of that model keeps pruned weights at zero).
# Weak keys: registering never keeps a model alive.
_HOOKS: weakref.WeakKeyDictionary[nn.Module, dict[int, StepHook]] = weakref.WeakKeyDictionary()
_NEXT_ID = [0]


class HookHandle:
    """Removes a hook registered with `register_after_step`."""

    def __init__(self, model: nn.Module, key: int) -> None:
        self._model = weakref.ref(model)
        self._key = key

    def remove(self) -> None:
        model = self._model()
        if model is not None and model in _HOOKS:
            _HOOKS[model].pop(self._key, None)


def register_after_step(model: nn.Module, hook: StepHook) -> HookHandle:
    """Make every `fit(model, ...)` call `hook(global_step)` after each optimizer step."""
    _NEXT_ID[0] += 1
    _HOOKS.setdefault(model, {})[_NEXT_ID[0]] = hook
    return HookHandle(model, _NEXT_ID[0])


def registered_hooks(model: nn.Module) -> list[StepHook]:
    return list(_HOOKS.get(model, {}).values())


def cross_entropy_loss(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    """The plain classification loss: batch = (inputs, int64 labels)."""
    x, y = batch[0], batch[1]
    return nn.functional.cross_entropy(model(x), y)


def cosine_lr(optimizer: torch.optim.Optimizer, base_lr: float, total_steps: int) -> StepHook:
    """An `after_step` hook that sets the learning rate for the next step on a cosine from `base_lr`
    to 0 over `total_steps`. A pure function of the global step, so a resumed run gets the same rates."""
    import math

    def hook(step: int) -> None:
        frac = min(step, total_steps) / max(1, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = base_lr * 0.5 * (1.0 + math.cos(math.pi * frac))

    return hook


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _save_atomic(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, int]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, ValueError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"checkpoint {path} does not match this model/optimizer ({first}); delete it to start over"
        ) from e
    # The RNG state makes a resumed run draw the same shuffles as one that never stopped.
    if "rng" in state:
        torch.set_rng_state(state["rng"])
    return int(state["epoch"]), int(state["step"])


def fit(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, ...]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    *,
    progress: bool = True,
    checkpoint: Path | None = None,
    desc: str = "train",
    after_step: StepHook | None = None,
) -> None:
    """Train `model` for `epochs` epochs over `loader`, minimizing `loss_fn(model, batch)`.

    After every optimizer step the hooks registered for the model (`register_after_step`) and then
    `after_step(global_step)` run, global_step counting from 1. With `checkpoint`, model, optimizer,
    epoch, step and RNG state are saved there atomically after each epoch, and an existing
    checkpoint is loaded first so the run continues after its last finished epoch.
    """
    if epochs < 0:
        raise UserError(f"epochs must be >= 0, got {epochs}")
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    start_epoch, step = 0, 0
    if checkpoint is not None and checkpoint.exists():
        start_epoch, step = _load_checkpoint(checkpoint, model, optimizer)
    device = _device_of(model)
    was_training = model.training
    model.train()
    try:
        for epoch in range(start_epoch, epochs):
            bar = tqdm(loader, desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False)
            total = 0.0
            for count, batch in enumerate(bar, start=1):
                batch = tuple(t.to(device) for t in batch)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model, batch)
                loss.backward()
                optimizer.step()
                step += 1
                for hook in registered_hooks(model):
                    hook(step)
                if after_step is not None:
                    after_step(step)
                total += float(loss.detach())
                bar.set_postfix(loss=f"{total / count:.4f}")
            bar.close()
            if checkpoint is not None:
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1,
                    "step": step,
                    "rng": torch.get_rng_state(),
                }
                _save_atomic(state, checkpoint)
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, dataset: Dataset, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of `model` over a dataset of (input, label) pairs, in eval mode."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    correct, total = 0, 0
    try:
        for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            pred = model(x.to(device)).argmax(dim=1)
            correct += int((pred == y.to(device)).sum())
            total += int(y.numel())
    finally:
        model.train(was_training)
    if total == 0:
        raise UserError("evaluate_accuracy: the dataset is empty")
    return correct / total
