"""Magnitude pruning: one-shot per layer, or gradual (Zhu & Gupta's cubic schedule) during
fine-tuning; unstructured or 1x2/1x4 blocks of output channels. Plans are `BlockSparse` encodings.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from edgefit.compiler.compress.policy import SPARSE_DEFAULT, LayerPolicy, select_weights
from edgefit.compiler.compress.training import cosine_lr, cross_entropy_loss, fit, register_after_step
from edgefit.compiler.encodings import BlockSparse
from edgefit.errors import UserError

log = logging.getLogger(__name__)

BLOCKS = (1, 2, 4)


class PruningPlan(dict[str, BlockSparse]):
    """A plan (FQN -> BlockSparse) that also names the selected layers left dense because their
    output channels do not divide into blocks."""

    def __init__(self, *args, skipped: list[str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.skipped: list[str] = list(skipped or [])


def sparsity_schedule(
    step: int, *, initial: float, final: float, begin_step: int, n_steps: int, frequency: int
) -> float:
    """Zhu & Gupta: s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 with t0 = begin_step,
    n = n_steps pruning updates dt = frequency steps apart; the value changes only at those
    updates and stays s_i before t0 and s_f after t0 + n dt."""
    if frequency < 1 or n_steps < 1:
        raise UserError(f"pruning schedule needs frequency >= 1 and n_steps >= 1, got {frequency}, {n_steps}")
    if step < begin_step:
        return initial
    updates = min((step - begin_step) // frequency, n_steps)
    return final + (initial - final) * (1.0 - updates / n_steps) ** 3


def _check(sparsity: float, block: int) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise UserError(f"sparsity must be in [0, 1), got {sparsity}")
    if block not in BLOCKS:
        raise UserError(f"block must be 1, 2 or 4 (1x1, 1x2, 1x4), got {block}")


def _block_view(w: torch.Tensor, block: int) -> torch.Tensor:
    """[O, ...] -> [O/block, block, K]."""
    return w.reshape(w.shape[0] // block, block, -1)


def block_mask(w: torch.Tensor, sparsity: float, block: int) -> torch.Tensor:
    """Keep-mask [O/block, K] that removes the `sparsity` fraction of blocks with the smallest L2 norm."""
    scores = _block_view(w.detach(), block).float().norm(dim=1).flatten()
    n_prune = round(sparsity * scores.numel())
    keep = torch.ones_like(scores, dtype=torch.bool)
    if n_prune > 0:
        # Stable sort: equal norms (e.g. already-zero blocks) are pruned in a fixed order.
        keep[torch.argsort(scores, stable=True)[:n_prune]] = False
    return keep.reshape(w.shape[0] // block, -1)


@torch.no_grad()
def _apply(w: torch.Tensor, keep: torch.Tensor, block: int) -> None:
    full = keep[:, None, :].expand(-1, block, -1).reshape(w.shape)
    w.masked_fill_(~full, 0.0)  # +0.0 exactly, as the decoded BlockSparse has it


def _encode(w: torch.Tensor, block: int) -> BlockSparse:
    return BlockSparse.from_dense(w.detach().cpu().float().numpy(), block)


def _split_by_block(
    weights: dict[str, nn.Parameter], block: int
) -> tuple[dict[str, nn.Parameter], list[str]]:
    ok = {n: p for n, p in weights.items() if p.shape[0] % block == 0}
    skipped = [n for n in weights if n not in ok]
    for n in skipped:
        log.warning(
            "%s: %d output channels do not divide into 1x%d blocks; left dense", n, weights[n].shape[0], block
        )
    return ok, skipped


def magnitude_prune(
    model: nn.Module,
    sparsity: float,
    *,
    block: int = 1,
    policy: LayerPolicy = SPARSE_DEFAULT,
) -> PruningPlan:
    """One-shot: zero the `sparsity` fraction of each selected layer's blocks, smallest L2 norm first."""
    _check(sparsity, block)
    weights, skipped = _split_by_block(select_weights(model, policy), block)
    plan = PruningPlan(skipped=skipped)
    for name, w in weights.items():
        _apply(w, block_mask(w, sparsity, block), block)
        plan[name] = _encode(w, block)
    return plan


class GradualPruner:
    """Gradual magnitude pruning of the selected layers (To prune or not to prune).

    `step(t)` recomputes the masks at the schedule's updates, `apply_masks()` keeps pruned weights
    at zero; both run after every optimizer step of any `fit(model, ...)` through a registered
    hook until `remove()`."""

    def __init__(
        self,
        model: nn.Module,
        *,
        final_sparsity: float,
        initial_sparsity: float = 0.0,
        begin_step: int = 0,
        n_steps: int,
        frequency: int = 100,
        block: int = 1,
        policy: LayerPolicy = SPARSE_DEFAULT,
    ) -> None:
        _check(final_sparsity, block)
        _check(initial_sparsity, block)
        if frequency < 1 or n_steps < 1:
            raise UserError(
                f"GradualPruner needs frequency >= 1 and n_steps >= 1, got {frequency}, {n_steps}"
            )
        self.model = model
        self.final_sparsity = final_sparsity
        self.initial_sparsity = initial_sparsity
        self.begin_step = begin_step
        self.n_steps = n_steps
        self.frequency = frequency
        self.block = block
        self.weights, self.skipped = _split_by_block(select_weights(model, policy), block)
        self.masks: dict[str, torch.Tensor] | None = None
        self.sparsity: float | None = None  # the sparsity the current masks were computed at
        self._handle = register_after_step(model, self._after_step)

    def schedule(self, step: int) -> float:
        return sparsity_schedule(
            step,
            initial=self.initial_sparsity,
            final=self.final_sparsity,
            begin_step=self.begin_step,
            n_steps=self.n_steps,
            frequency=self.frequency,
        )

    def _is_update(self, step: int) -> bool:
        t = step - self.begin_step
        return 0 <= t <= self.n_steps * self.frequency and t % self.frequency == 0

    def update_masks(self, sparsity: float) -> None:
        """Recompute every mask at `sparsity` from the current magnitudes and apply them."""
        self.masks = {n: block_mask(w, sparsity, self.block) for n, w in self.weights.items()}
        self.sparsity = sparsity
        self.apply_masks()

    def masks_from_weights(self) -> None:
        """Adopt the zero pattern the weights already have (e.g. after loading a checkpoint)."""
        self.masks = {
            n: _block_view(w.detach(), self.block).ne(0).any(dim=1) for n, w in self.weights.items()
        }

    def step(self, step: int) -> None:
        """Recompute the masks if `step` is one of the schedule's updates (or none exist yet)."""
        if self._is_update(step) or (self.masks is None and step >= self.begin_step):
            self.update_masks(self.schedule(step))

    def apply_masks(self) -> None:
        if self.masks is None:
            return
        for name, w in self.weights.items():
            _apply(w, self.masks[name], self.block)

    def _after_step(self, step: int) -> None:
        self.step(step)
        self.apply_masks()

    def finalize(self) -> None:
        """Bring the masks to the final sparsity (if the run ended before the schedule did)."""
        if self.sparsity != self.final_sparsity:
            self.update_masks(self.final_sparsity)
        self.apply_masks()

    def plan(self) -> PruningPlan:
        return PruningPlan({n: _encode(w, self.block) for n, w in self.weights.items()}, skipped=self.skipped)

    def remove(self) -> None:
        """Stop re-applying masks in later training."""
        self._handle.remove()


def prune_and_finetune(
    model: nn.Module,
    sparsity: float,
    train_set: Dataset,
    *,
    epochs: int,
    block: int = 1,
    policy: LayerPolicy = SPARSE_DEFAULT,
    lr: float = 1e-3,
    progress: bool = True,
    checkpoint: Path | None = None,
    batch_size: int = 64,
    prune_fraction: float = 0.6,
) -> PruningPlan:
    """Fine-tune with gradual magnitude pruning to `sparsity` (Adam with a cosine learning rate,
    cross-entropy on (x, y) pairs).

    The schedule ramps from 0 over the first `prune_fraction` of the steps (at most ~40 mask
    updates) and the rest of the run recovers at the final sparsity."""
    _check(sparsity, block)
    if epochs <= 0:
        return magnitude_prune(model, sparsity, block=block, policy=policy)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    total = epochs * len(loader)
    window = max(1, int(total * prune_fraction))
    frequency = max(1, window // 40)
    pruner = GradualPruner(
        model,
        final_sparsity=sparsity,
        begin_step=0,
        n_steps=max(1, window // frequency),
        frequency=frequency,
        block=block,
        policy=policy,
    )
    try:
        if checkpoint is not None and Path(checkpoint).exists():
            # fit loads the same state; the masks must exist before its first step moves the zeros.
            # A checkpoint that does not fit is left for fit to report as a UserError.
            with contextlib.suppress(RuntimeError, KeyError, ValueError, EOFError):
                state = torch.load(checkpoint, map_location="cpu", weights_only=True)
                model.load_state_dict(state["model"])
                pruner.masks_from_weights()
                pruner.sparsity = pruner.schedule(int(state["step"]))
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        fit(
            model,
            loader,
            cross_entropy_loss,
            optimizer,
            epochs,
            progress=progress,
            checkpoint=checkpoint,
            desc=f"prune {sparsity:.0%}",
            after_step=cosine_lr(optimizer, lr, total),
        )
        pruner.finalize()
        return pruner.plan()
    finally:
        pruner.remove()
