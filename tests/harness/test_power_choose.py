"""`open_meter`: a target's real sensor when its sysfs tree has one, else the estimate with a one-line note."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgefit import targets
from edgefit.errors import UserError
from edgefit.runtime.harness.power import EstimatedPower, open_meter
from edgefit.runtime.harness.power.ina2xx_hwmon import Ina2xxMeter
from edgefit.runtime.harness.power.jetson_ina3221 import Ina3221Meter
from edgefit.runtime.harness.power.rapl import RaplMeter

FIX = Path(__file__).parent / "fixtures"


def test_nano_tree_gives_the_measured_pom_5v_in():
    meter, note = open_meter("jetson-nano", root=FIX / "jetson-nano-jp4")
    assert isinstance(meter, Ina3221Meter) and meter.kind == "measured"
    assert meter.read_watts() == pytest.approx(5.692)
    assert note.startswith("using INA3221 POM_5V_IN at /sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0")


def test_orin_tree_gives_vdd_in():
    meter, note = open_meter("jetson-orin-nano", root=FIX / "orin-nano-jp6")
    assert isinstance(meter, Ina3221Meter)
    assert meter.total.name == "VDD_IN" and "VDD_IN" in note


def test_missing_sensor_falls_back_to_the_estimate_and_says_so(tmp_path):
    meter, note = open_meter("jetson-nano", root=tmp_path)
    source = targets.load("jetson-nano").power.source
    assert isinstance(meter, EstimatedPower) and meter.kind == "estimated"
    assert note == (
        "no INA3221 found under /sys/bus/i2c/drivers/ina3221x or ina3221; "
        f"using the jetson-nano power model (estimated): {source}"
    )
    assert "\n" not in note


def test_ina3221_without_input_rail_falls_back(tmp_path):
    meter, note = open_meter("jetson-orin-nano", root=FIX / "agx-xavier-jp4")
    assert isinstance(meter, EstimatedPower)
    assert "no input rail" in note and "jetson-orin-nano power model (estimated)" in note


def test_pi4_with_ina219_and_x86_with_rapl():
    meter, _ = open_meter("rpi4", root=FIX / "rpi4-ina219")
    assert isinstance(meter, Ina2xxMeter) and meter.read_watts() == pytest.approx(2.72)
    meter, note = open_meter("x86_64", root=FIX / "x86-rapl")
    assert isinstance(meter, RaplMeter) and "package-0" in note


def test_board_without_a_sensor_and_pi5_tree_without_vcgencmd(tmp_path):
    meter, note = open_meter("rpi3", root=tmp_path)
    assert isinstance(meter, EstimatedPower) and note.startswith("rpi3 has no power sensor; using the rpi3")
    meter, note = open_meter("rpi5", root=tmp_path)
    assert isinstance(meter, EstimatedPower) and "rpi5 power model (estimated)" in note


def test_prefer(tmp_path):
    meter, note = open_meter("jetson-nano", root=FIX / "jetson-nano-jp4", prefer="estimate")
    assert isinstance(meter, EstimatedPower) and "forced" in note
    root = tmp_path / "both"
    shutil.copytree(FIX / "jetson-nano-jp4", root)
    shutil.copytree(FIX / "x86-rapl", root, dirs_exist_ok=True)
    meter, _ = open_meter("jetson-nano", root=root, prefer="rapl")
    assert isinstance(meter, RaplMeter)
    with pytest.raises(UserError, match="unknown power source 'bogus'"):
        open_meter("jetson-nano", prefer="bogus")
    with pytest.raises(UserError, match="unknown target"):
        open_meter("jetson-nanoo")


def test_symlinked_sysfs_like_the_real_one(tmp_path):
    """Real /sys/bus/i2c/drivers/<drv>/<dev> and /sys/class/hwmon/hwmonN are symlinks into /sys/devices."""
    root = tmp_path / "orin"
    shutil.copytree(FIX / "orin-nano-jp6", root)
    drv = root / "sys/bus/i2c/drivers/ina3221"
    real = root / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040"
    real.parent.mkdir(parents=True)
    (drv / "1-0040").rename(real)
    (drv / "1-0040").symlink_to(real)
    meter, _ = open_meter("jetson-orin-nano", root=root)
    assert isinstance(meter, Ina3221Meter) and meter.read_watts() == pytest.approx(5.064 * 1.184)

    pi = tmp_path / "pi4"
    shutil.copytree(FIX / "rpi4-ina219", pi)
    hw = pi / "sys/class/hwmon"
    dev = pi / "sys/devices/platform/soc/fe804000.i2c/i2c-1/1-0040/hwmon"
    dev.mkdir(parents=True)
    for d in sorted(hw.iterdir()):
        d.rename(dev / d.name)
        d.symlink_to(dev / d.name)
    meter, _ = open_meter("rpi4", root=pi)
    assert isinstance(meter, Ina2xxMeter) and meter.read_watts() == pytest.approx(2.72)
