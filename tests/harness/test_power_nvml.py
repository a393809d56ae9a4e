"""NVML (discrete NVIDIA GPUs): real reading where a GPU and nvidia-ml-py exist; unit conversions on a fake module."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from edgefit.runtime.harness.power import nvml


@pytest.mark.cuda
def test_nvml_reads_real_board_power():
    meter, why = nvml.probe()
    if meter is None:
        pytest.skip(f"no NVIDIA GPU/NVML here: {why}")
    watts = meter.read_watts()
    assert 1.0 < watts < 2000.0
    if meter.has_energy_counter:
        assert meter.read_energy_j() > 0.0


def test_nvml_is_not_probed_against_a_file_tree(tmp_path):
    meter, why = nvml.probe(tmp_path)
    assert meter is None and "live driver" in why


class _NVMLError(Exception):
    pass


def _fake_pynvml(power_mw: int, energy_mj: int | None) -> types.ModuleType:
    """Stands in for the pynvml module only to check our unit conversions and error mapping."""
    m = types.ModuleType("pynvml")
    m.NVMLError = _NVMLError  # type: ignore[attr-defined]
    m.nvmlDeviceGetHandleByIndex = lambda i: ("gpu", i)  # type: ignore[attr-defined]
    m.nvmlDeviceGetName = lambda h: b"NVIDIA H200"  # type: ignore[attr-defined]
    m.nvmlDeviceGetPowerUsage = lambda h: power_mw  # type: ignore[attr-defined]

    def energy(h: object) -> int:
        if energy_mj is None:
            raise _NVMLError("Not Supported")
        return energy_mj

    m.nvmlDeviceGetTotalEnergyConsumption = energy  # type: ignore[attr-defined]
    return m


def test_nvml_units_milliwatts_and_millijoules():
    meter = nvml.NvmlMeter(_fake_pynvml(power_mw=123_456, energy_mj=7_000_500), index=0)
    assert meter.read_watts() == pytest.approx(123.456)
    assert meter.has_energy_counter and meter.read_energy_j() == pytest.approx(7000.5)
    assert meter.name == "nvml:0:NVIDIA H200"


def test_nvml_without_energy_counter():
    meter = nvml.NvmlMeter(_fake_pynvml(power_mw=50_000, energy_mj=None), index=0)
    assert not meter.has_energy_counter
    with pytest.raises(OSError):
        meter.read_energy_j()
    assert "no energy counter" in meter.describe()


def test_nvml_absent_library_is_reported(monkeypatch):
    monkeypatch.setattr(nvml, "_import_nvml", lambda: None)
    meter, why = nvml.probe(Path("/"))
    assert meter is None and "nvidia-ml-py" in why
