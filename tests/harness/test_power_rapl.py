"""RAPL through powercap sysfs: power from energy deltas, counter wraparound, package-only totals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgefit.runtime.harness.power import rapl

FIX = Path(__file__).parent / "fixtures"
PC = "sys/class/powercap"
MAX_RANGE = 262143328850


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "x86"
    shutil.copytree(FIX / "x86-rapl", root)
    return root


def write_uj(root: Path, zone: str, uj: int) -> None:
    (root / PC / zone / "energy_uj").write_text(f"{uj}\n")


def read_uj(root: Path, zone: str) -> int:
    return int((root / PC / zone / "energy_uj").read_text())


def test_power_from_energy_delta_over_time(tree):
    clock = Clock()
    meter = rapl.detect(tree, clock=clock)
    assert meter is not None
    assert meter.name == "rapl:package-0"
    write_uj(tree, "intel-rapl:0", read_uj(tree, "intel-rapl:0") + 3_000_000)  # 3 J ...
    write_uj(tree, "intel-rapl:1", read_uj(tree, "intel-rapl:1") + 50_000_000)  # psys: not added
    clock.t += 0.5  # ... in 0.5 s
    assert meter.read_watts() == pytest.approx(6.0)
    assert meter.read_energy_j() == pytest.approx(3.0)


def test_counter_wraparound(tree):
    write_uj(tree, "intel-rapl:0", MAX_RANGE - 1_000_000)
    clock = Clock()
    meter = rapl.detect(tree, clock=clock)
    assert meter is not None
    write_uj(tree, "intel-rapl:0", 2_000_000)  # wrapped: 1 J to the top, 2 J after zero
    clock.t += 1.0
    assert meter.read_watts() == pytest.approx(3.0)
    assert meter.read_energy_j() == pytest.approx(3.0)


def test_reads_without_a_counter_update_repeat_the_last_power(tree):
    clock = Clock()
    meter = rapl.detect(tree, clock=clock)
    assert meter is not None
    write_uj(tree, "intel-rapl:0", read_uj(tree, "intel-rapl:0") + 2_000_000)
    clock.t += 0.25
    assert meter.read_watts() == pytest.approx(8.0)
    clock.t += 0.0005  # sooner than the counter updates: no new energy
    assert meter.read_watts() == pytest.approx(8.0)


def test_subzones_are_rails_not_part_of_the_total(tree):
    clock = Clock()
    meter = rapl.detect(tree, clock=clock)
    assert meter is not None
    write_uj(tree, "intel-rapl:0:0", read_uj(tree, "intel-rapl:0:0") + 1_000_000)
    clock.t += 0.5
    rails = meter.rails()
    assert rails == pytest.approx({"core": 2.0, "uncore": 0.0})
    assert meter.read_energy_j() == 0.0


def test_two_sockets_are_added(tree):
    pkg1 = tree / PC / "intel-rapl:2"
    shutil.copytree(tree / PC / "intel-rapl:0", pkg1)
    (pkg1 / "name").write_text("package-1\n")
    clock = Clock()
    meter = rapl.detect(tree, clock=clock)
    assert meter is not None and meter.name == "rapl:package-0+package-1"
    write_uj(tree, "intel-rapl:0", read_uj(tree, "intel-rapl:0") + 1_000_000)
    write_uj(tree, "intel-rapl:2", read_uj(tree, "intel-rapl:2") + 3_000_000)
    clock.t += 1.0
    assert meter.read_watts() == pytest.approx(4.0)


def test_no_powercap(tmp_path):
    meter, why = rapl.probe(tmp_path)
    assert meter is None and why.startswith("no powercap under /sys/class/powercap")


def test_powercap_without_a_package_zone(tree):
    shutil.rmtree(tree / PC / "intel-rapl:0")
    meter, why = rapl.probe(tree)
    assert meter is None and "no RAPL package zone" in why
