"""Fixtures shared by the compression tests."""

from __future__ import annotations

import pytest
from torch.utils.data import Dataset


class StopAfter(Dataset):
    """Raises after `limit` items have been read: a run killed in the middle of an epoch."""

    def __init__(self, base: Dataset, limit: int) -> None:
        self.base, self.limit, self.read = base, limit, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        self.read += 1
        if self.read > self.limit:
            raise KeyboardInterrupt
        return self.base[i]


@pytest.fixture
def stop_after() -> type[StopAfter]:
    """The dataset wrapper that interrupts training, for the resume-from-checkpoint tests."""
    return StopAfter
