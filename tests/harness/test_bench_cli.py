"""`edgefit bench`: user mistakes are one line and exit 2; a real run writes the report and prints its table."""

from __future__ import annotations

import json

import pytest

from edgefit.cli.main import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target", "nope"], "unknown target"),
        (["--target", "x86_64", "--backends", "native,gpu"], "unknown backend(s) gpu"),
        (["--target", "x86_64", "--compressions", "dense,sparse"], "unknown compression setting 'sparse'"),
        (["--target", "x86_64", "--backends", "board"], "the board backend needs --board"),
        (["--target", "x86_64", "--board", "pi@"], "bad board address"),
        (["--target", "x86_64", "--rounds", "0"], "--rounds must be >= 1"),
    ],
)
def test_user_mistakes_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "digits_cnn", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgefit bench: error: ") and message in err and err.count("\n") == 1


def test_bench_runs_the_plugin_and_prints_the_table(tmp_path, capfd: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report"
    (report).mkdir()
    (report / "edgefit-bench.json").write_text(json.dumps({"edgefit": {"records": [
        {"model": "stale", "target": "x86_64", "backend": "native", "compression": "dense"}]}}))  # fmt: skip
    argv = ["bench", "digits_cnn", "--target", "x86_64", "--backends", "native,torch", "--compressions", "dense",
            "--rounds", "5", "--report", str(report)]  # fmt: skip
    assert main(argv) == 0
    out = capfd.readouterr().out
    assert "| native | dense | 97.78 | +0.00 | 100.0 |" in out and "| torch | dense |" in out
    records = json.loads((report / "edgefit-bench.json").read_text())["edgefit"]["records"]
    # One process per backend, merged; the stale record of an earlier bench is gone.
    assert sorted(r["backend"] for r in records) == ["native", "torch"]
    assert (report / "digits_cnn-x86_64.png").is_file()
