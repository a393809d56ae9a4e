"""Jetson board power from the on-module INA3221: total = the module input rail (POM_5V_IN / VDD_IN).

Two sysfs layouts exist, told apart by the driver directory (sources: NVIDIA Jetson Linux Developer
Guide, "Software-Based Power Consumption Modeling" for L4T R32 (Nano) and R35/R36 (Xavier, Orin);
the kernel's Documentation/hwmon/ina3221.rst; jetson_stats' jtop/core/power.py, which reads both):

* JetPack 4 (L4T R32, kernel 4.9), NVIDIA's IIO driver `ina3221x`:
  /sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<k>/
      rail_name_<n>        e.g. POM_5V_IN, POM_5V_GPU, POM_5V_CPU (Nano, 6-0040);
                           VDD_IN, VDD_CPU_GPU_CV, VDD_SOC (Xavier NX, 7-0040);
                           GPU, CPU, SOC / CV, VDDRQ, SYS5V (AGX Xavier, 1-0040 and 1-0041)
      in_power<n>_input    mW
      in_current<n>_input  mA
      in_voltage<n>_input  mV
* JetPack 5 and 6 (L4T R35/R36, kernel 5.10/5.15), the upstream hwmon driver `ina3221`:
  /sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<k>/
      in<n>_label          n = 1..3, e.g. VDD_IN, VDD_CPU_GPU_CV, VDD_SOC (Orin Nano/NX, 1-0040);
                           "NC" for unconnected channels; in7_label "sum of shunt voltages"
      in<n>_input          bus voltage, mV
      curr<n>_input        mA (no power file: power = V x I, computed here)
  The hwmon<k> index changes between boots, so it is globbed, never hard-coded.

The input rail already includes every other rail on the module (they are branches of it), so the
total is that one rail; summing rails double counts (DESIGN.md). Boards with no input rail on the
INA3221 (AGX Xavier, AGX Orin) are not detected rather than summed: the estimate is used instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgefit.runtime.harness.power.meter import PowerMeter, read_number, read_text, sys_path

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")  # Orin/Xavier NX/TX2, Nano
DRIVERS = Path("sys/bus/i2c/drivers")
_I2C_DEVICE = re.compile(r"^\d+-[0-9a-f]{4}$")  # "6-0040"; the driver dir also has bind/unbind/uevent


@dataclass(frozen=True)
class Rail:
    """How to read one channel: either a power file (mW) or voltage (mV) and current (mA) files."""

    name: str
    power_mw: Path | None = None
    volt_mv: Path | None = None
    curr_ma: Path | None = None

    def watts(self) -> float:
        if self.power_mw is not None:
            return read_number(self.power_mw) / 1e3
        assert self.volt_mv is not None and self.curr_ma is not None
        return read_number(self.volt_mv) * read_number(self.curr_ma) / 1e6


class Ina3221Meter(PowerMeter):
    kind = "measured"

    def __init__(self, total: Rail, rails: list[Rail], where: str, layout: str) -> None:
        self.total = total
        self._rails = rails
        self.where = where
        self.layout = layout
        self.name = f"ina3221:{total.name}"

    def read_watts(self) -> float:
        return self.total.watts()

    def rails(self) -> dict[str, float]:
        return {r.name: r.watts() for r in self._rails}

    def describe(self) -> str:
        return f"INA3221 {self.total.name} at {self.where} ({self.layout}; measured)"


def _iio_rails(dev: Path) -> list[Rail]:
    rails = []
    for label in sorted(dev.glob("rail_name_*")):
        n = label.name.removeprefix("rail_name_")
        name = read_text(label)
        if not name or not n.isdigit():
            continue
        power = dev / f"in_power{n}_input"
        if power.is_file():
            rails.append(Rail(name, power_mw=power))
        else:
            rails.append(
                Rail(name, volt_mv=dev / f"in_voltage{n}_input", curr_ma=dev / f"in_current{n}_input")
            )
    return rails


def _hwmon_rails(dev: Path) -> list[Rail]:
    rails = []
    for label in sorted(dev.glob("in*_label")):
        n = label.name.removeprefix("in").removesuffix("_label")
        name = read_text(label)
        # in7 is the "sum of shunt voltages" channel (no current file of its own); NC = not connected.
        if not name or not n.isdigit() or name == "NC" or "sum of shunt" in name.lower():
            continue
        enable = dev / f"in{n}_enable"
        if enable.is_file() and read_text(enable) == "0":
            continue
        volt, curr = dev / f"in{n}_input", dev / f"curr{n}_input"
        if volt.is_file() and curr.is_file():
            rails.append(Rail(name, volt_mv=volt, curr_ma=curr))
    return rails


def _scan(root: Path) -> list[tuple[Path, str, list[Rail]]]:
    """Every INA3221 device directory under root, with its layout and rails."""
    found = []
    for driver in ("ina3221x", "ina3221"):
        base = root / DRIVERS / driver
        if not base.is_dir():
            continue
        for dev in sorted(p for p in base.iterdir() if _I2C_DEVICE.match(p.name)):
            for iio in sorted(dev.glob("iio:device*")):
                found.append((iio, "JetPack 4 iio layout", _iio_rails(iio)))
            for hw in sorted(dev.glob("hwmon/hwmon*")):
                found.append((hw, "JetPack 5+ hwmon layout", _hwmon_rails(hw)))
    return found


def probe(root: Path = Path("/")) -> tuple[Ina3221Meter | None, str]:
    """The meter, or None and one line saying why not."""
    found = _scan(root)
    if not found:
        return None, f"no INA3221 found under {sys_path(root, root / DRIVERS)}/ina3221x or ina3221"
    all_rails = [r for _, _, rails in found for r in rails]
    for where, layout, rails in found:
        for rail in rails:
            if rail.name in INPUT_RAILS:
                try:
                    rail.watts()
                except OSError as e:
                    return None, f"INA3221 {rail.name} at {sys_path(root, where)} is unreadable ({e})"
                return Ina3221Meter(rail, all_rails, sys_path(root, where), layout), ""
    names = ", ".join(r.name for r in all_rails) or "none"
    return None, (
        f"INA3221 found but no input rail ({'/'.join(INPUT_RAILS)}) among its rails ({names}); "
        "summing them would not give the board total"
    )


def detect(root: Path = Path("/")) -> Ina3221Meter | None:
    return probe(root)[0]
