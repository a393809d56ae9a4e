"""Board power and energy per inference: sensor readers (INA3221, Pi 5 PMIC, INA2xx, RAPL, NVML), an
estimate from the target's power model, a background sampler and the energy accounting."""

from edgefit.runtime.harness.power.choose import SOURCES, open_meter
from edgefit.runtime.harness.power.energy import EnergyReport, Sample, energy_per_inference
from edgefit.runtime.harness.power.estimate import EstimatedPower
from edgefit.runtime.harness.power.meter import PowerMeter
from edgefit.runtime.harness.power.sampler import PowerSampler, measure_idle

__all__ = [
    "SOURCES",
    "EnergyReport",
    "EstimatedPower",
    "PowerMeter",
    "PowerSampler",
    "Sample",
    "energy_per_inference",
    "measure_idle",
    "open_meter",
]
