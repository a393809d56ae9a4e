"""Board targets as data: one TOML file per board beside this module (see `edgefit targets`)."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefit.errors import UserError

_DIR = Path(__file__).parent


@dataclass(frozen=True)
class PowerModel:
    idle_w: float
    active_w: float
    source: str


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    triple: str
    mcpu: str
    qemu_cpu: str
    isa: tuple[str, ...]
    cores: int
    memory_mb: int
    cuda_arch: str
    os: str
    python: str
    glibc: str
    power_sensor: str
    power: PowerModel
    board_match: dict[str, str] = field(default_factory=dict)
    cuda_toolkit: str = ""
    jetpack: str = ""

    @property
    def arch(self) -> str:
        return self.triple.split("-", 1)[0]

    @property
    def is_arm(self) -> bool:
        return self.arch == "aarch64"

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def names() -> list[str]:
    return sorted(p.stem for p in _DIR.glob("*.toml"))


def load(name: str) -> Target:
    """The target called `name`; a typo gets a UserError listing the valid names."""
    path = _DIR / f"{name}.toml"
    if not path.is_file():
        valid = names()
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown target {name!r}{hint}; valid targets: {', '.join(valid)}")
    raw = tomllib.loads(path.read_text())
    raw["isa"] = tuple(raw["isa"])
    raw["power"] = PowerModel(**raw["power"])
    return Target(**raw)


def all_targets() -> list[Target]:
    return [load(n) for n in names()]
