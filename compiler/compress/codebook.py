"""Codebook (palettized) weights: n-bit indices into one 2**n-entry table per group of similarly
distributed output channels (JLCM), by k-means, then jointly fine-tuned with a straight-through estimator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader, Dataset

from edgefit.compiler.compress.policy import ALL_LAYERS, LayerPolicy, select_weights
from edgefit.compiler.compress.training import cosine_lr, cross_entropy_loss, fit
from edgefit.compiler.encodings import Codebook
from edgefit.errors import UserError


def kmeans_1d(values: np.ndarray, k: int, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars, initialised at the k quantiles (deterministic).

    Returns sorted centroids f32 [k] and each value's nearest centroid (int64, same shape as values)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or k < 1:
        raise ValueError(f"kmeans_1d needs values and k >= 1 (got {v.size} values, k={k})")
    # In 1-D every cluster is a contiguous run of the sorted values, so an iteration costs
    # O(k log n) on prefix sums instead of a pass over all n values.
    s = np.sort(v)
    csum = np.concatenate([[0.0], np.cumsum(s)])
    c = s[np.minimum(((np.arange(k) + 0.5) / k * s.size).astype(np.int64), s.size - 1)]
    for _ in range(iters):
        ends = np.concatenate([np.searchsorted(s, (c[1:] + c[:-1]) / 2, side="right"), [s.size]])
        starts = np.concatenate([[0], ends[:-1]])
        counts = ends - starts
        means = (csum[ends] - csum[starts]) / np.maximum(counts, 1)
        new = np.sort(np.where(counts > 0, means, c))  # an empty cluster keeps its centre
        if np.array_equal(new, c):
            break
        c = new
    centroids = c.astype(np.float32)
    return centroids, _nearest_sorted(v, centroids.astype(np.float64)).reshape(np.shape(values))


def _nearest_sorted(v: np.ndarray, sorted_c: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of an ascending array (ties to the lower entry)."""
    mids = (sorted_c[1:] + sorted_c[:-1]) / 2
    return np.searchsorted(mids, v, side="left").astype(np.int64)


def _channel_features(w2d: np.ndarray) -> np.ndarray:
    """What makes two channels' value distributions alike: their quantiles, scaled by the layer's spread."""
    q = np.quantile(w2d, [0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98], axis=1).T
    return q / max(float(np.abs(w2d).max()), 1e-12)


def group_channels(weight: np.ndarray, n_groups: int) -> np.ndarray:
    """JLCM grouping: cluster output channels by their per-channel weight quantiles so one table
    fits every channel of a group. Returns int32 [O] labels 0..G-1, G = min(n_groups, O),
    numbered by the group's spread (group 0 the narrowest)."""
    if n_groups < 1:
        raise UserError(f"codebook groups must be >= 1, got {n_groups}")
    w2d = np.asarray(weight, dtype=np.float64).reshape(weight.shape[0], -1)
    o = w2d.shape[0]
    g = min(n_groups, o)
    if g == 1:
        return np.zeros(o, dtype=np.int32)
    from sklearn.cluster import KMeans

    feats = _channel_features(w2d)
    labels = KMeans(n_clusters=g, n_init=4, random_state=0).fit_predict(feats)
    # Renumber by spread so labels do not depend on the clustering's arbitrary order, and drop
    # any label left empty (duplicate rows can collapse clusters).
    used = np.unique(labels)
    spread = np.array([np.ptp(feats[labels == lab, 1:-1]) + feats[labels == lab, -2].mean() for lab in used])
    rank = {lab: i for i, lab in enumerate(used[np.argsort(spread, kind="stable")])}
    return np.array([rank[lab] for lab in labels], dtype=np.int32)


def _quantize_group(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Table and codes for one group; exact zeros (pruned weights) keep a zero entry of their own."""
    zero = values == 0
    if zero.any() and not zero.all() and k > 1:
        table_nz, idx_nz = kmeans_1d(values[~zero], k - 1)
        table = np.concatenate([[np.float32(0.0)], table_nz]).astype(np.float32)
        idx = np.zeros(values.shape, dtype=np.int64)
        idx[~zero] = idx_nz + 1
        return table, idx
    return kmeans_1d(values, k)


def _encode(w: np.ndarray, bits: int, group: np.ndarray) -> Codebook:
    o = w.shape[0]
    w2d = w.reshape(o, -1)
    k = 2**bits
    table = np.zeros((int(group.max()) + 1, k), dtype=np.float32)
    idx = np.zeros(w2d.shape, dtype=np.int64)
    for g in range(table.shape[0]):
        rows = group == g
        t, i = _quantize_group(w2d[rows], k)
        table[g, : len(t)] = t
        idx[rows] = i
    return Codebook.from_indices(tuple(w.shape), bits, idx, table, group)


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise UserError(f"codebook bits must be an integer in 2..8, got {bits!r}")


@torch.no_grad()
def codebook_quantize(
    model: nn.Module, bits: int, *, groups: int = 1, policy: LayerPolicy = ALL_LAYERS
) -> dict[str, Codebook]:
    """Replace each selected weight by its `bits`-bit codebook (k-means per channel group) in place."""
    _check_bits(bits)
    if groups < 1:
        raise UserError(f"codebook groups must be >= 1, got {groups}")
    plan: dict[str, Codebook] = {}
    for name, p in select_weights(model, policy).items():
        w = p.detach().cpu().float().numpy()
        enc = _encode(w, bits, group_channels(w, groups))
        p.copy_(torch.from_numpy(enc.to_dense()))
        plan[name] = enc
    return plan


class _Decode(torch.autograd.Function):
    """weight = table[group, idx]; the gradient goes straight through to the latent weight and,
    summed over each entry's members, to the table."""

    @staticmethod
    def forward(ctx, latent: Tensor, table: Tensor, idx: Tensor, group: Tensor) -> Tensor:
        ctx.save_for_backward(idx, group)
        ctx.table_shape = table.shape
        return table[group[:, None], idx].reshape(latent.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        idx, group = ctx.saved_tensors
        g2d = grad.reshape(idx.shape)
        flat = (group[:, None] * ctx.table_shape[1] + idx).flatten()
        g_table = torch.zeros(ctx.table_shape.numel(), dtype=grad.dtype, device=grad.device)
        g_table.index_add_(0, flat, g2d.flatten())
        return grad, g_table.reshape(ctx.table_shape), None, None


class CodebookSTE(nn.Module):
    """Parametrization: the latent float weight in, its decoded codebook weight out."""

    def __init__(self, enc: Codebook, device: torch.device) -> None:
        super().__init__()
        idx = torch.from_numpy(enc.indices().astype(np.int64)).to(device)
        group = torch.from_numpy(enc.group.astype(np.int64)).to(device)
        table = torch.from_numpy(enc.table.copy()).to(device)
        # Weights decoded to exactly 0 come from a pruned layer's reserved zero entry: they stay
        # pruned (their code is frozen) and that entry stays 0 (pinned).
        decoded = torch.from_numpy(enc.to_dense().reshape(idx.shape)).to(device)
        self.register_buffer("frozen", decoded == 0)
        self.table = nn.Parameter(table)
        self.register_buffer("idx", idx)
        self.register_buffer("group", group)
        self.register_buffer("pinned", table == 0)
        self.bits = enc.bits

    def forward(self, latent: Tensor) -> Tensor:
        return _Decode.apply(latent, self.table, self.idx, self.group)

    @torch.no_grad()
    def reassign(self, latent: Tensor, prox: float) -> None:
        """Pin zero entries, pull latents toward their entry (proximal step), recode to the nearest entry."""
        self.table.masked_fill_(self.pinned, 0.0)
        lat2d = latent.reshape(self.idx.shape)
        decoded = self.table[self.group[:, None], self.idx]
        if prox > 0:
            lat2d.add_(decoded - lat2d, alpha=prox)
        lat2d.masked_fill_(self.frozen, 0.0)
        for g in range(self.table.shape[0]):
            rows = self.group == g
            order = torch.argsort(self.table[g])
            movable = order[~self.pinned[g][order]]  # non-zero-pinned entries, ascending
            if movable.numel() == 0:
                continue
            mids = (self.table[g][movable][1:] + self.table[g][movable][:-1]) / 2
            new = movable[torch.bucketize(lat2d[rows], mids)]
            keep = self.frozen[rows]
            self.idx[rows] = torch.where(keep, self.idx[rows], new)

    def encoding(self, shape: tuple[int, ...]) -> Codebook:
        return Codebook.from_indices(
            shape,
            self.bits,
            self.idx.cpu().numpy(),
            self.table.detach().cpu().float().numpy(),
            self.group.cpu().numpy(),
        )


def _owner(model: nn.Module, fqn: str) -> tuple[nn.Module, str]:
    path, _, attr = fqn.rpartition(".")
    return (model.get_submodule(path) if path else model), attr


def finetune_codebooks(
    model: nn.Module,
    plan: dict[str, Codebook],
    train_set: Dataset,
    *,
    epochs: int,
    lr: float = 1e-3,
    progress: bool = True,
    checkpoint: Path | None = None,
    batch_size: int = 64,
    prox: float = 0.0,
) -> dict[str, Codebook]:
    """Jointly learn tables and assignments (JLCM-style): the forward pass uses the decoded weights,
    the straight-through gradient trains a latent float weight per layer and each table entry
    (from its members' gradients); after every step each weight is recoded to the nearest entry
    of its group's table. Other parameters (biases, batch norm) train too. Returns the final plan,
    which decodes exactly to the module's parameters."""
    if epochs <= 0 or not plan:
        return dict(plan)
    params = dict(model.named_parameters())
    for name, enc in plan.items():
        if name not in params or not isinstance(enc, Codebook):
            raise UserError(
                f"finetune_codebooks: plan entry {name!r} is not a codebook of a parameter of this model"
            )
        if not np.all(enc.row_scale == 1.0):
            raise UserError(f"finetune_codebooks: {name} has row scales; fine-tune before folding batch norm")
    device = next(iter(params.values())).device
    stes: dict[str, CodebookSTE] = {}
    shapes = {name: tuple(enc.shape) for name, enc in plan.items()}

    def after_step(step: int) -> None:
        schedule(step)
        for name, ste in stes.items():
            owner, attr = _owner(model, name)
            ste.reassign(owner.parametrizations[attr].original, prox)

    try:
        for name, enc in plan.items():
            owner, attr = _owner(model, name)
            ste = CodebookSTE(enc, device)
            with torch.no_grad():
                getattr(owner, attr).copy_(torch.from_numpy(enc.to_dense()))
            parametrize.register_parametrization(owner, attr, ste)
            stes[name] = ste
        loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = cosine_lr(optimizer, lr, epochs * len(loader))
        fit(
            model,
            loader,
            cross_entropy_loss,
            optimizer,
            epochs,
            progress=progress,
            checkpoint=checkpoint,
            desc=f"codebook {next(iter(plan.values())).bits}-bit",
            after_step=after_step,
        )
        out = {name: ste.encoding(shapes[name]) for name, ste in stes.items()}
    finally:
        for name in stes:
            owner, attr = _owner(model, name)
            parametrize.remove_parametrizations(owner, attr, leave_parametrized=False)
    with torch.no_grad():
        for name, enc in out.items():
            model.get_parameter(name).copy_(torch.from_numpy(enc.to_dense()))
    return out
