"""External INA219/INA226 (e.g. on a Raspberry Pi 4's 5 V input) through the Linux hwmon `ina2xx` driver.

Source: the kernel's Documentation/hwmon/ina2xx.rst. The chip is bound by a device-tree overlay
(`dtoverlay=i2c-sensor,ina219` on Raspberry Pi OS) and appears as
    /sys/class/hwmon/hwmon<k>/name          "ina219" | "ina220" | "ina226" | "ina230" | "ina231"
    /sys/class/hwmon/hwmon<k>/power1_input  microwatts (computed by the chip from its calibration)
    /sys/class/hwmon/hwmon<k>/in1_input     bus voltage, mV   (in0_input is the shunt drop, mV)
    /sys/class/hwmon/hwmon<k>/curr1_input   mA
hwmon<k> numbering changes between boots, so devices are found by their `name` file. The sensor sits
on the board's supply, so power1_input is the total; with several chips, the first is used and the
others are reported as rails (the harness cannot know which one is the input).
"""

from __future__ import annotations

from pathlib import Path

from edgefit.runtime.harness.power.meter import PowerMeter, read_number, read_text, sys_path

CHIPS = ("ina219", "ina220", "ina226", "ina230", "ina231")
HWMON = Path("sys/class/hwmon")


class Ina2xxMeter(PowerMeter):
    kind = "measured"

    def __init__(self, dev: Path, chip: str, where: str, others: list[tuple[str, Path]]) -> None:
        self.dev = dev
        self.chip = chip
        self.where = where
        self.others = others
        self.name = f"{chip}:{dev.name}"

    def _watts(self, dev: Path) -> float:
        power = dev / "power1_input"
        if power.is_file():
            return read_number(power) / 1e6
        # Drivers that do not expose power (none in mainline today) still give V and I.
        return read_number(dev / "in1_input") * read_number(dev / "curr1_input") / 1e6

    def read_watts(self) -> float:
        return self._watts(self.dev)

    def rails(self) -> dict[str, float]:
        out = {self.name: self.read_watts()}
        out.update({name: self._watts(d) for name, d in self.others})
        return out

    def describe(self) -> str:
        return f"{self.chip.upper()} power1_input at {self.where} (measured)"


def probe(root: Path = Path("/")) -> tuple[Ina2xxMeter | None, str]:
    base = root / HWMON
    found = []
    if base.is_dir():
        for dev in sorted(base.glob("hwmon*"), key=lambda p: (len(p.name), p.name)):
            chip = read_text(dev / "name")
            if chip in CHIPS and ((dev / "power1_input").is_file() or (dev / "curr1_input").is_file()):
                found.append((chip, dev))
    if not found:
        return None, f"no INA219/INA226 (hwmon name {'/'.join(CHIPS)}) under {sys_path(root, base)}"
    chip, dev = found[0]
    meter = Ina2xxMeter(dev, chip, sys_path(root, dev), [(f"{c}:{d.name}", d) for c, d in found[1:]])
    try:
        meter.read_watts()
    except OSError as e:
        return None, f"{chip} at {sys_path(root, dev)} is unreadable ({e})"
    return meter, ""


def detect(root: Path = Path("/")) -> Ina2xxMeter | None:
    return probe(root)[0]
