"""Raspberry Pi sources: the Pi 5 PMIC (`vcgencmd pmic_read_adc`) parser and an INA219 on a Pi 4 via hwmon."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgefit.runtime.harness.power import ina2xx_hwmon, rpi5_pmic

FIX = Path(__file__).parent / "fixtures"
RECORDED = (FIX / "rpi5-pmic_read_adc.txt").read_text()

# (volts, amps) per rail, transcribed by hand from the recorded output.
RAILS = {
    "3V7_WL_SW": (3.70915200, 0.08712345),
    "3V3_SYS": (3.31274000, 0.06402156),
    "1V8_SYS": (1.80146300, 0.16287400),
    "DDR_VDD2": (1.10634800, 0.01952300),
    "DDR_VDDQ": (0.60512450, 0.00000000),
    "1V1_SYS": (1.10512100, 0.19876540),
    "0V8_SW": (0.80036630, 0.32104560),
    "VDD_CORE": (0.72041940, 0.81234000),
    "3V3_DAC": (3.31312800, 0.00012210),
    "3V3_ADC": (3.31532600, 0.00024420),
    "0V8_AON": (0.79926740, 0.00317460),
    "HDMI": (5.09652000, 0.01843740),
}


def test_pmic_parser_pairs_volts_and_amps_by_rail_name():
    reading = rpi5_pmic.parse_pmic_adc(RECORDED)
    assert reading.rails_w == pytest.approx({r: v * a for r, (v, a) in RAILS.items()})
    assert reading.total_w == pytest.approx(sum(v * a for v, a in RAILS.values()))
    assert reading.total_w == pytest.approx(2.00981, abs=1e-5)


def test_pmic_ext5v_and_battery_are_voltages_only_and_not_summed():
    reading = rpi5_pmic.parse_pmic_adc(RECORDED)
    assert "EXT5V" not in reading.rails_w and "BATT" not in reading.rails_w
    assert reading.ext5v_v == pytest.approx(5.10384)
    assert reading.volts["BATT"] == 0.0


def test_pmic_parser_does_not_depend_on_line_order():
    shuffled = "\n".join(reversed(RECORDED.splitlines())) + "\n"
    assert rpi5_pmic.parse_pmic_adc(shuffled).total_w == pytest.approx(
        rpi5_pmic.parse_pmic_adc(RECORDED).total_w
    )


def test_pmic_parser_rejects_output_that_is_not_the_pmics():
    with pytest.raises(ValueError):
        rpi5_pmic.parse_pmic_adc('error=2 error_msg="Invalid arguments"\n')


def test_pmic_meter_runs_the_command_through_the_runner():
    calls: list[list[str]] = []

    def runner(cmd: list[str]) -> str:
        calls.append(cmd)
        return RECORDED

    meter, why = rpi5_pmic.probe(runner=runner)
    assert meter is not None, why
    assert meter.read_watts() == pytest.approx(2.00981, abs=1e-5)
    assert meter.rails()["VDD_CORE"] == pytest.approx(0.72041940 * 0.81234)
    assert calls and all(c == ["vcgencmd", "pmic_read_adc"] for c in calls)
    assert meter.kind == "measured" and "excludes 5 V" in meter.name


def test_pmic_on_a_board_without_the_pmic_is_not_detected():
    meter, why = rpi5_pmic.probe(runner=lambda cmd: 'error=2 error_msg="Invalid arguments"\n')
    assert meter is None and "no PMIC readings" in why


def test_pmic_command_failing_mid_run_raises_oserror():
    outputs = iter([RECORDED])

    def runner(cmd: list[str]) -> str:
        try:
            return next(outputs)
        except StopIteration:
            raise subprocess.CalledProcessError(255, cmd) from None

    meter = rpi5_pmic.detect(runner=runner)
    assert meter is not None
    with pytest.raises(OSError):
        meter.read_watts()


def test_pmic_is_never_run_against_a_fixture_root(tmp_path):
    meter, why = rpi5_pmic.probe(tmp_path)
    assert meter is None and "runner" in why


def test_ina219_found_by_hwmon_name_and_power_in_microwatts():
    meter = ina2xx_hwmon.detect(FIX / "rpi4-ina219")
    assert meter is not None
    assert meter.read_watts() == pytest.approx(2.72)
    assert meter.chip == "ina219" and meter.kind == "measured"
    assert "/sys/class/hwmon/hwmon2" in meter.describe()  # hwmon0/1 are cpu_thermal and rpi_volt


def test_ina2xx_without_power_file_uses_bus_volts_times_current(tmp_path):
    root = tmp_path / "pi4"
    shutil.copytree(FIX / "rpi4-ina219", root)
    (root / "sys/class/hwmon/hwmon2/power1_input").unlink()
    meter = ina2xx_hwmon.detect(root)
    assert meter is not None
    assert meter.read_watts() == pytest.approx(5.112 * 0.532)


def test_hwmon_without_an_ina_chip(tmp_path):
    root = tmp_path / "pi4"
    shutil.copytree(FIX / "rpi4-ina219", root)
    shutil.rmtree(root / "sys/class/hwmon/hwmon2")
    meter, why = ina2xx_hwmon.probe(root)
    assert meter is None and "/sys/class/hwmon" in why
