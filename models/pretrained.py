"""Locally trained weights for the digits CNN: the zoo's one model with built-in data.

Nothing is downloaded: the first call trains digits_cnn on the scikit-learn digits (seeded,
single-threaded so the result is repeatable) and caches the state dict under the edgefit cache;
later calls load it. This is the "uncompressed teacher" every digits accuracy figure refers to.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from edgefit import models

DIGITS_EPOCHS = 15


def _cache_file(seed: int, epochs: int) -> Path:
    from edgefit.runtime.board.paths import cache_dir

    return cache_dir() / "weights" / f"digits_cnn-seed{seed}-epochs{epochs}.pt"


def digits_baseline(seed: int = 0, epochs: int = DIGITS_EPOCHS, progress: bool = False) -> nn.Module:
    """digits_cnn trained on the digits training split (cached after the first call)."""
    from edgefit.compiler.artifact import atomic_write_bytes
    from edgefit.compiler.compress.training import cross_entropy_loss, fit
    from edgefit.models.datasets import digits

    model = models.create("digits_cnn", seed=seed)
    path = _cache_file(seed, epochs)
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    threads = torch.get_num_threads()
    rng = torch.get_rng_state()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        loader = DataLoader(digits("train", seed=seed), batch_size=64, shuffle=True)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        fit(model, loader, cross_entropy_loss, optimizer, epochs, progress=progress, desc="digits baseline")
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(rng)
    import io

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return model.eval()
