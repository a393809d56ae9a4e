"""The `PowerMeter` interface every power source implements, and the sysfs helpers they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Literal

Kind = Literal["measured", "estimated"]


class PowerMeter(ABC):
    """One source of board power. `read_watts` is the instantaneous total board power in watts."""

    name: str = "meter"
    kind: Kind = "measured"
    # Shortest useful sampling period: reading faster only perturbs the benchmark (a process per read
    # for vcgencmd) or repeats the same value.
    min_period_s: float = 0.0

    @abstractmethod
    def read_watts(self) -> float: ...

    def rails(self) -> dict[str, float]:
        """Per-rail watts where the sensor has rails (informational: never add them to the total)."""
        return {}

    def describe(self) -> str:
        """One line saying what is read and from where (goes into benchmark reports)."""
        return f"{self.name} ({self.kind})"


def read_number(path: Path) -> float:
    """A sysfs value: first token of the file ("716\\n", "32760 ma\\n") as a float.

    Raises OSError when the file is gone or unreadable (a sensor that disappears mid-run must be loud).
    """
    text = path.read_text()
    token = text.split()[0] if text.split() else ""
    try:
        return float(token)
    except ValueError:
        raise OSError(f"{path}: expected a number, got {text.strip()!r}") from None


def read_text(path: Path) -> str | None:
    """A sysfs string (label, name) without its trailing newline, or None if absent/unreadable."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def sys_path(root: Path, path: Path) -> str:
    """How to name `path` in notes: as the board would see it, i.e. relative to `root`."""
    try:
        return "/" + str(path.relative_to(root))
    except ValueError:
        return str(path)
