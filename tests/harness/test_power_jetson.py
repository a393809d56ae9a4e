"""Jetson INA3221 readers on sysfs trees laid out like JetPack 4 (iio) and JetPack 6 (hwmon) boards."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgefit.runtime.harness.power import jetson_ina3221

FIX = Path(__file__).parent / "fixtures"
ORIN_HWMON = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"


def test_nano_total_is_pom_5v_in_not_the_sum_of_rails():
    meter = jetson_ina3221.detect(FIX / "jetson-nano-jp4")
    assert meter is not None
    rails = meter.rails()
    assert rails == pytest.approx({"POM_5V_IN": 5.692, "POM_5V_GPU": 1.192, "POM_5V_CPU": 2.901})
    # GPU and CPU are branches of the 5 V input: adding them to it would report 9.785 W.
    assert meter.read_watts() == pytest.approx(5.692)
    assert sum(rails.values()) == pytest.approx(9.785)
    assert meter.name == "ina3221:POM_5V_IN"
    assert meter.kind == "measured"
    assert "/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0" in meter.describe()
    assert "JetPack 4" in meter.describe()


def test_nano_reads_the_file_every_time(tmp_path):
    root = tmp_path / "nano"
    shutil.copytree(FIX / "jetson-nano-jp4", root)
    meter = jetson_ina3221.detect(root)
    assert meter is not None and meter.read_watts() == pytest.approx(5.692)
    power = root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input"
    power.write_text("9876\n")
    assert meter.read_watts() == pytest.approx(9.876)


def test_xavier_nx_jetpack4_iio_on_bus_7_uses_vdd_in():
    meter = jetson_ina3221.detect(FIX / "xavier-nx-jp4")
    assert meter is not None
    assert meter.read_watts() == pytest.approx(6.820)
    assert set(meter.rails()) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}


def test_board_without_an_input_rail_is_not_summed():
    meter, why = jetson_ina3221.probe(FIX / "agx-xavier-jp4")
    assert meter is None
    assert "no input rail" in why
    for rail in ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"):  # both chips, 1-0040 and 1-0041, were read
        assert rail in why


def test_orin_nano_jetpack6_hwmon_power_is_volts_times_amps():
    meter = jetson_ina3221.detect(FIX / "orin-nano-jp6")
    assert meter is not None
    assert meter.read_watts() == pytest.approx(5.064 * 1.184)
    rails = meter.rails()
    # in7 ("sum of shunt voltages") is not a rail; the three labelled channels are.
    assert rails == pytest.approx(
        {"VDD_IN": 5.064 * 1.184, "VDD_CPU_GPU_CV": 5.056 * 0.360, "VDD_SOC": 5.056 * 0.584}
    )
    assert meter.read_watts() < sum(rails.values())
    assert f"/{ORIN_HWMON}" in meter.describe()
    assert "hwmon" in meter.layout


def test_orin_hwmon_index_is_not_hard_coded(tmp_path):
    root = tmp_path / "orin"
    shutil.copytree(FIX / "orin-nano-jp6", root)
    (root / ORIN_HWMON).rename(root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon7")
    meter = jetson_ina3221.detect(root)
    assert meter is not None
    assert meter.read_watts() == pytest.approx(5.064 * 1.184)
    assert "hwmon7" in meter.describe()


def test_orin_skips_unconnected_and_disabled_channels(tmp_path):
    root = tmp_path / "orin"
    shutil.copytree(FIX / "orin-nano-jp6", root)
    (root / ORIN_HWMON / "in2_label").write_text("NC\n")
    (root / ORIN_HWMON / "in3_enable").write_text("0\n")
    meter = jetson_ina3221.detect(root)
    assert meter is not None
    assert set(meter.rails()) == {"VDD_IN"}


def test_orin_input_rail_with_missing_current_file_is_not_used(tmp_path):
    root = tmp_path / "orin"
    shutil.copytree(FIX / "orin-nano-jp6", root)
    (root / ORIN_HWMON / "curr1_input").unlink()
    meter, why = jetson_ina3221.probe(root)
    assert meter is None
    assert "no input rail" in why and "VDD_SOC" in why


def test_no_ina3221_anywhere(tmp_path):
    meter, why = jetson_ina3221.probe(tmp_path)
    assert meter is None
    assert why.startswith("no INA3221 found under /sys/bus/i2c/drivers")


def test_sensor_vanishing_mid_run_raises(tmp_path):
    root = tmp_path / "nano"
    shutil.copytree(FIX / "jetson-nano-jp4", root)
    meter = jetson_ina3221.detect(root)
    assert meter is not None
    (root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input").unlink()
    with pytest.raises(OSError):
        meter.read_watts()
