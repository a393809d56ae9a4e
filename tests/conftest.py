"""Shared pytest set-up: marker-based skips with reasons, and the repository root."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
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


def _missing_tools() -> list[str]:
    return [
        t
        for t in ("qemu-aarch64", "ssh", "ssh-keygen", "ssh-keyscan", "apt-get", "dpkg-deb")
        if not shutil.which(t)
    ] + [t for t in ("/usr/sbin/sshd",) if not os.access(t, os.X_OK)]


@pytest.fixture(scope="session")
def board() -> Iterator[object]:
    """A running emulated rpi4 shared by the board and split tests with its own name; stopped (by PID) at the end of the session."""
    missing = _missing_tools()
    if missing:
        pytest.skip(f"emulated boards need {', '.join(missing)} (scripts/setup.sh installs them)")
    from edgefit.runtime.board import lifecycle

    name = f"pytest-rpi4-{os.getpid()}"
    info = lifecycle.up("rpi4", name=name, log=False)
    try:
        yield info
    finally:
        lifecycle.down(name)
        shutil.rmtree(lifecycle.state_dir(name), ignore_errors=True)
