"""x86 package power from RAPL energy counters in the Linux powercap sysfs (Intel, and AMD Zen too).

Source: the kernel's Documentation/power/powercap/powercap.rst. AMD's RAPL driver registers under the
same "intel-rapl" control type, so one reader serves both:
    /sys/class/powercap/intel-rapl:<p>/name                 "package-<p>" (or "psys" on some Intel laptops)
    /sys/class/powercap/intel-rapl:<p>/energy_uj            cumulative energy, microjoules
    /sys/class/powercap/intel-rapl:<p>/max_energy_range_uj  the counter wraps to 0 after this value
    /sys/class/powercap/intel-rapl:<p>:<s>/...              subzones: core, uncore, dram (inside the package)
The total is the sum of the package-<p> zones (one per socket; they do not overlap). Subzones are parts
of their package and psys contains the packages, so neither is added. Power comes from energy deltas
between reads; since Linux 5.10 energy_uj is readable by root only (CVE-2020-8694).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgefit.runtime.harness.power.meter import PowerMeter, read_number, read_text, sys_path

POWERCAP = Path("sys/class/powercap")
_PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")
_SUB_ZONE = re.compile(r"^intel-rapl:\d+:\d+$")


@dataclass
class Zone:
    """One energy counter, unwrapped: `total_uj` only grows, across counter wraparounds."""

    name: str
    energy: Path
    max_range_uj: float
    last_raw: float = field(default=-1.0)
    total_uj: float = 0.0

    def update(self) -> float:
        raw = read_number(self.energy)
        if self.last_raw >= 0:
            delta = raw - self.last_raw
            if delta < 0:  # wrapped past max_energy_range_uj back to 0
                delta += self.max_range_uj
            self.total_uj += delta
        self.last_raw = raw
        return self.total_uj


class RaplMeter(PowerMeter):
    kind = "measured"

    def __init__(
        self, packages: list[Zone], parts: list[Zone], where: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.packages = packages
        self.parts = parts
        self.where = where
        self.clock = clock
        self.name = "rapl:" + "+".join(z.name for z in packages)
        self._last_t = clock()
        self._last_j = self.read_energy_j()
        self._last_w = 0.0
        self._parts_t = self._last_t
        self._parts_uj = [z.update() for z in parts]

    def read_energy_j(self) -> float:
        """Cumulative package energy since this meter was made, wraparound-corrected, in joules."""
        return sum(z.update() for z in self.packages) / 1e6

    def read_watts(self) -> float:
        # Mean power since the previous read: RAPL has no instantaneous power, only energy. Two reads
        # closer than the counter's update interval (~1 ms) repeat the last figure instead of 0 W.
        t, j = self.clock(), self.read_energy_j()
        dt = t - self._last_t
        if dt > 0 and j > self._last_j:
            self._last_w = (j - self._last_j) / dt
            self._last_t, self._last_j = t, j
        return self._last_w

    def rails(self) -> dict[str, float]:
        """Mean watts of each subzone (core, uncore, dram) since the previous rails() call."""
        t, uj = self.clock(), [z.update() for z in self.parts]
        dt = t - self._parts_t
        out = {
            z.name: (u - u0) / 1e6 / dt if dt > 0 else 0.0
            for z, u, u0 in zip(self.parts, uj, self._parts_uj, strict=True)
        }
        self._parts_t, self._parts_uj = t, uj
        return out

    def describe(self) -> str:
        return f"RAPL {'+'.join(z.name for z in self.packages)} energy at {self.where} (measured)"


def _zone(dir_: Path) -> Zone | None:
    name = read_text(dir_ / "name")
    if name is None or not (dir_ / "energy_uj").is_file():
        return None
    try:
        max_range = read_number(dir_ / "max_energy_range_uj")
    except OSError:
        return None
    return Zone(name, dir_ / "energy_uj", max_range)


def probe(
    root: Path = Path("/"), clock: Callable[[], float] = time.monotonic
) -> tuple[RaplMeter | None, str]:
    base = root / POWERCAP
    if not base.is_dir():
        return None, f"no powercap under {sys_path(root, base)} (RAPL needs the intel_rapl/amd rapl driver)"
    packages, parts = [], []
    for d in sorted(base.iterdir()):
        zone = _zone(d) if (_PACKAGE_ZONE.match(d.name) or _SUB_ZONE.match(d.name)) else None
        if zone is None:
            continue
        if _PACKAGE_ZONE.match(d.name) and zone.name.startswith("package"):
            packages.append(zone)
        elif _SUB_ZONE.match(d.name):
            parts.append(zone)
    if not packages:
        return None, f"no RAPL package zone (intel-rapl:N with name package-N) under {sys_path(root, base)}"
    try:
        meter = RaplMeter(packages, parts, sys_path(root, base), clock)
    except PermissionError:
        return None, f"RAPL energy_uj under {sys_path(root, base)} is root-only (Linux >= 5.10); run as root"
    except OSError as e:
        return None, f"RAPL energy_uj under {sys_path(root, base)} is unreadable ({e})"
    return meter, ""


def detect(root: Path = Path("/"), clock: Callable[[], float] = time.monotonic) -> RaplMeter | None:
    return probe(root, clock)[0]
