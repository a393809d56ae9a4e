"""Discrete NVIDIA GPU board power through NVML (`nvidia-ml-py`, imported lazily; not on Jetson/Tegra).

nvmlDeviceGetPowerUsage gives board power in mW; on recent GPUs (Ampere/Hopper data-centre parts) it
is a ~1 s moving average, so for short windows the cumulative counter nvmlDeviceGetTotalEnergyConsumption
(mJ, Volta and newer) is the better figure: the meter exposes it as `read_energy_j` and the sampler
reports the counter's delta beside the integral of the sampled power.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from edgefit.runtime.harness.power.meter import PowerMeter


def _import_nvml() -> ModuleType | None:
    try:
        import pynvml  # provided by the nvidia-ml-py distribution
    except ImportError:
        return None
    return pynvml


class NvmlMeter(PowerMeter):
    kind = "measured"

    def __init__(self, nvml: ModuleType, index: int = 0) -> None:
        self.nvml = nvml
        self.index = index
        self.handle: Any = nvml.nvmlDeviceGetHandleByIndex(index)
        gpu = nvml.nvmlDeviceGetName(self.handle)
        self.gpu = gpu.decode() if isinstance(gpu, bytes) else str(gpu)
        self.name = f"nvml:{index}:{self.gpu}"
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self.has_energy_counter = True
        except nvml.NVMLError:  # pre-Volta or not supported on this board
            self.has_energy_counter = False

    def read_watts(self) -> float:
        try:
            return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1e3
        except self.nvml.NVMLError as e:
            raise OSError(f"nvmlDeviceGetPowerUsage failed: {e}") from e

    def read_energy_j(self) -> float:
        """Cumulative GPU energy since the driver loaded, joules (only where has_energy_counter)."""
        try:
            return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1e3
        except self.nvml.NVMLError as e:
            raise OSError(f"nvmlDeviceGetTotalEnergyConsumption failed: {e}") from e

    def describe(self) -> str:
        counter = "with energy counter" if self.has_energy_counter else "no energy counter"
        return f"NVML board power of GPU {self.index} ({self.gpu}; {counter}; measured)"


def probe(root: Path = Path("/"), index: int = 0) -> tuple[NvmlMeter | None, str]:
    """NVML reads the live driver, so it is only probed on the real machine (root "/")."""
    if root != Path("/"):
        return None, f"NVML reads the live driver, not a file tree ({root})"
    nvml = _import_nvml()
    if nvml is None:
        return None, "nvidia-ml-py (pynvml) is not installed"
    try:
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
    except nvml.NVMLError as e:
        return None, f"no NVIDIA GPU/NVML here ({e})"
    if index >= count:
        return None, f"no NVIDIA GPU {index} (NVML sees {count})"
    try:
        meter = NvmlMeter(nvml, index)
        meter.read_watts()
    except (nvml.NVMLError, OSError) as e:
        return None, f"NVML power reading is not supported on GPU {index} ({e})"
    return meter, ""


def detect(root: Path = Path("/"), index: int = 0) -> NvmlMeter | None:
    return probe(root, index)[0]
