"""Targets are data files; a typo lists the valid names."""

import pytest

from edgefit import targets
from edgefit.cli.main import main
from edgefit.errors import UserError

REQUIRED = {"rpi3", "rpi4", "rpi5", "jetson-nano", "jetson-orin-nano", "x86_64"}


def test_all_boards_are_described() -> None:
    assert REQUIRED <= set(targets.names())
    for t in targets.all_targets():
        assert t.triple.endswith("linux-gnu")
        assert t.power.idle_w < t.power.active_w and t.power.source


def test_pi4_is_a_cortex_a72_with_neon() -> None:
    t = targets.load("rpi4")
    assert (t.mcpu, t.is_arm, "neon" in t.isa) == ("cortex-a72", True, True)
    assert targets.load("jetson-orin-nano").cuda_arch == "sm_87"


def test_typo_names_the_valid_targets(capsys) -> None:
    with pytest.raises(UserError, match="did you mean 'rpi4'"):
        targets.load("rpi44")
    assert main(["targets", "rpi44"]) == 2
    err = capsys.readouterr().err
    assert "valid targets" in err and "Traceback" not in err and err.count("\n") == 1
