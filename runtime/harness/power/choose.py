"""Pick a target's power meter: the first real sensor that answers, else its data-sheet estimate, with a note."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgefit import targets
from edgefit.errors import UserError
from edgefit.runtime.harness.power import ina2xx_hwmon, jetson_ina3221, nvml, rapl, rpi5_pmic
from edgefit.runtime.harness.power.estimate import EstimatedPower
from edgefit.runtime.harness.power.meter import PowerMeter

Probe = Callable[[Path], tuple[PowerMeter | None, str]]

# Source name -> probe (meter or None and why). Names match `power_sensor` in targets/*.toml, plus nvml.
SOURCES: dict[str, Probe] = {
    "ina3221": jetson_ina3221.probe,
    "vcgencmd-pmic": rpi5_pmic.probe,
    "ina2xx-hwmon": ina2xx_hwmon.probe,
    "rapl": rapl.probe,
    "nvml": nvml.probe,
}
ESTIMATE = "estimate"


def open_meter(target_name: str, root: Path = Path("/"), prefer: str | None = None) -> tuple[PowerMeter, str]:
    """(meter, one-line note). `prefer` names a source to use instead of the target's own
    (one of SOURCES, or "estimate" to force the model); a missing sensor falls back to the estimate.
    """
    target = targets.load(target_name)
    if prefer is not None and prefer != ESTIMATE and prefer not in SOURCES:
        raise UserError(f"unknown power source {prefer!r}; choose one of: {', '.join([*SOURCES, ESTIMATE])}")
    kind = prefer or target.power_sensor
    estimate = EstimatedPower(target)
    if kind == ESTIMATE:
        return estimate, f"power source forced to the estimate: using {estimate.describe()}"
    if kind not in SOURCES:  # "none": the board has no sensor at all (Pi 3)
        return estimate, f"{target.name} has no power sensor; using {estimate.describe()}"
    meter, why = SOURCES[kind](root)
    if meter is not None:
        return meter, f"using {meter.describe()}"
    return estimate, f"{why}; using {estimate.describe()}"
