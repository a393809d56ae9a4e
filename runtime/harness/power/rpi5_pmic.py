"""Raspberry Pi 5 board power from the PMIC's ADC, read with `vcgencmd pmic_read_adc`.

The firmware prints one line per ADC channel, current channels first, then voltages, e.g.
    "  VDD_CORE_A current(7)=0.74960000A"  and  "  VDD_CORE_V volt(15)=0.72578800V"
(channel numbers in parentheses; rail names end in _A / _V). Power = sum over rails of V x A, pairing
`<rail>_V` with `<rail>_A` by name (never by line order or channel number, which differ).

EXT5V: `EXT5V_V` is the 5 V input from the USB-C supply and has only a voltage channel (no EXT5V_A),
so it cannot give power; it is kept as `ext5v_v` (a low value means an under-powered board) and left
out of the sum, as is `BATT_V` (the RTC battery). Consequence, stated in the meter's name: the total
is the power delivered by the PMIC's rails (SoC core, DRAM, 3V3/1V8/1V1/0V8 system rails, HDMI), not
the wall power: 5 V taken straight from the input (USB ports, fan, HATs) and the PMIC's conversion
losses are not in it. We do not apply a fitted correction (some tools multiply by ~1.15 and add
~0.6 W): such a fit depends on the supply and peripherals, and a harness figure must be traceable.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgefit.runtime.harness.power.meter import PowerMeter

Runner = Callable[[list[str]], str]
COMMAND = ["vcgencmd", "pmic_read_adc"]

# "<rail>_A current(<ch>)=<value>A" or "<rail>_V volt(<ch>)=<value>V", surrounded by spaces.
_LINE = re.compile(
    r"^\s*(?P<rail>[A-Za-z0-9_]+)_(?P<unit>[AV])\s+(?:current|volt)\(\d+\)=(?P<value>[-0-9.eE+]+)[AV]\s*$"
)


@dataclass(frozen=True)
class PmicReading:
    rails_w: dict[str, float]  # rail -> watts, only rails with both a voltage and a current channel
    volts: dict[str, float]  # every voltage channel, EXT5V and BATT included
    amps: dict[str, float]

    @property
    def total_w(self) -> float:
        return sum(self.rails_w.values())

    @property
    def ext5v_v(self) -> float | None:
        return self.volts.get("EXT5V")


def parse_pmic_adc(text: str) -> PmicReading:
    """Parse `vcgencmd pmic_read_adc` output; raises ValueError on output that is not the PMIC's."""
    volts: dict[str, float] = {}
    amps: dict[str, float] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            continue  # tolerate firmware adding other lines; an empty result is caught below
        (amps if m["unit"] == "A" else volts)[m["rail"]] = float(m["value"])
    rails_w = {rail: volts[rail] * amps[rail] for rail in amps if rail in volts}
    if not rails_w:
        raise ValueError(f"no <rail>_V/<rail>_A pairs in pmic_read_adc output: {text.strip()[:200]!r}")
    return PmicReading(rails_w, volts, amps)


def run_vcgencmd(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=5).stdout


class Rpi5PmicMeter(PowerMeter):
    kind = "measured"
    name = "rpi5-pmic (sum of PMIC rails; excludes 5 V loads and PMIC losses)"
    # Each read forks vcgencmd (tens of ms of CPU on a Pi 5): 10 Hz keeps the benchmark undisturbed.
    min_period_s = 0.1

    def __init__(self, runner: Runner = run_vcgencmd) -> None:
        self.runner = runner
        self.last: PmicReading | None = None

    def read(self) -> PmicReading:
        try:
            self.last = parse_pmic_adc(self.runner(COMMAND))
        except (subprocess.SubprocessError, ValueError) as e:
            raise OSError(f"vcgencmd pmic_read_adc failed: {e}") from e
        return self.last

    def read_watts(self) -> float:
        return self.read().total_w

    def rails(self) -> dict[str, float]:
        return dict(self.read().rails_w)

    def describe(self) -> str:
        return "Raspberry Pi 5 PMIC rails via vcgencmd pmic_read_adc (measured; excludes 5 V loads and PMIC losses)"


def probe(root: Path = Path("/"), runner: Runner | None = None) -> tuple[Rpi5PmicMeter | None, str]:
    """A working meter, or None and why. Only looks at the real machine when root is "/" or a runner is given."""
    if runner is None:
        if root != Path("/"):
            return None, f"vcgencmd cannot be run against {root} (pass a runner)"
        if shutil.which("vcgencmd") is None:
            return None, "vcgencmd not found on PATH (Raspberry Pi OS firmware tools)"
        runner = run_vcgencmd
    meter = Rpi5PmicMeter(runner)
    try:
        meter.read()
    except (OSError, FileNotFoundError) as e:
        return None, f"vcgencmd pmic_read_adc gave no PMIC readings (not a Pi 5, or old firmware): {e}"
    return meter, ""


def detect(root: Path = Path("/"), runner: Runner | None = None) -> Rpi5PmicMeter | None:
    return probe(root, runner)[0]
