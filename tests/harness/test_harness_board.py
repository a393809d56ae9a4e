"""The harness on an emulated Raspberry Pi 4 (qemu-aarch64 + sshd): the plugin flashes digits_cnn, validates
its accuracy on the board and times it there, with the energy labelled estimated."""

from __future__ import annotations

import json

import pytest

from edgefit.runtime.board.paths import cache_dir
from edgefit.runtime.harness.suite import SOURCE, plugin_args

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.board, pytest.mark.qemu, pytest.mark.slow]
CACHE = cache_dir()


def test_digits_on_the_board(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, board, tmp_path
) -> None:
    monkeypatch.setenv("EDGEFIT_CACHE", str(CACHE))
    # The emulated board's host key is in its own known_hosts (pytester moves HOME, hence the config dir).
    monkeypatch.setenv("EDGEFIT_KNOWN_HOSTS", board.known_hosts)  # type: ignore[attr-defined]
    pytester.makepyfile(test_edgefit_bench=SOURCE)
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess(
        *plugin_args(), "-p", "no:cacheprovider", "--edgefit-target", "rpi4",
        "--edgefit-backends", "board", "--edgefit-board", board.address,  # type: ignore[attr-defined]
        "--edgefit-compressions", "dense", "--edgefit-rounds", "10", "--edgefit-report", str(report),
        timeout=1500,
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*its power sensor is not read over SSH; using the rpi4 power model (estimated)*"]
    )
    data = json.loads((report / "edgefit-bench.json").read_text())
    (record,) = data["edgefit"]["records"]
    assert record["backend"] == "board" and record["target"] == "rpi4"
    assert record["accuracy"]["agreement"] == 100.0 and record["accuracy"]["samples"] == 450
    assert record["latency"]["measured_on"] == "board" and record["latency"]["stats"]["rounds"] == 10
    assert record["energy"]["kind"] == "estimated" and "on " in record["engine"]
    assert data["benchmarks"][0]["stats"]["median"] > 0
