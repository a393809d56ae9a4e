"""Shared pytest set-up: marker-based skips with reasons, and the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests run on a shared 2-core machine: torch's own thread pool only adds contention there
    (a tiny training step measured 3-4 ms with 1 thread vs 85-244 ms with 2 under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
