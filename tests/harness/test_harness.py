"""Harness units: compression names, accuracy metrics and threshold messages, statistics, the report,
plots, bounded board retries and the power fallback note."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import tempfile

import numpy as np
import pytest

from edgefit.errors import UserError
from edgefit.runtime.harness import accuracy, compressions, plots, report, results
from edgefit.runtime.harness.build import compiled_bundle
from edgefit.runtime.harness.options import HarnessOptions
from edgefit.runtime.harness.runners import (
    NativeRunner,
    ONNXRuntimeRunner,
    load_reference_module,
    parse_backends,
)


def test_compression_names_map_to_configs() -> None:
    assert compressions.parse_names("dense, sparse90,cb4,int8,dense") == ["dense", "sparse90", "cb4", "int8"]
    assert compressions.config("sparse90", 3).sparsity == pytest.approx(0.9)
    assert compressions.config("cb4").codebook_bits == 4
    assert compressions.config("int8").int8 and compressions.config("dense").is_identity
    with pytest.raises(UserError, match="unknown compression setting 'sparse'"):
        compressions.parse_names("dense,sparse")
    with pytest.raises(UserError, match="unknown backend"):
        parse_backends("native,cuda")


def _samples(labels: list[int] | None) -> accuracy.Samples:
    n = 4
    return accuracy.Samples("toy", [np.zeros((1, 3))] * n, None if labels is None else np.asarray(labels))


def test_compare_metrics() -> None:
    ref = np.array([[3.0, 1, 0], [0, 2, 1], [1, 0, 2], [2, 1, 0]])
    out = ref.copy()
    out[3] = [0.0, 1, 2]  # the last sample now picks class 2
    rep = accuracy.compare(out, ref, _samples([0, 1, 2, 0]))
    assert rep.reference_accuracy == 100.0 and rep.accuracy == 75.0 and rep.drop == 25.0
    assert rep.agreement == 75.0
    assert rep.max_abs_error == 2.0 and rep.mean_abs_error == pytest.approx(4 / 12)
    assert rep.cosine_min == pytest.approx(1 / 5) and rep.cosine_mean == pytest.approx((3 + 0.2) / 4)
    unlabelled = accuracy.compare(out, ref, _samples(None))
    assert unlabelled.accuracy is None and unlabelled.drop is None and unlabelled.agreement == 75.0


def test_threshold_failure_says_by_how_much() -> None:
    ref = np.eye(4)
    out = np.eye(4)[[0, 1, 2, 0]]
    rep = accuracy.compare(out, ref, _samples([0, 1, 2, 3]))
    msgs = accuracy.threshold_failures(rep, "native sparse90", max_drop=0.6, min_agreement=80.0)
    assert len(msgs) == 2
    assert "accuracy drop 25.00 points exceeds the limit of 0.60 by 24.40 points" in msgs[0]
    assert "reference 100.00 %, compiled 75.00 %" in msgs[0]
    assert "agreement with the reference 75.00 % is below the limit of 80.00 % by 5.00 points" in msgs[1]
    assert accuracy.threshold_failures(rep, "x", max_drop=30.0, min_agreement=None) == []


def test_stats_match_pytest_benchmark() -> None:
    s = results.stats_dict([0.004, 0.001, 0.002, 0.003, 0.010])
    assert s["median"] == 0.003 and s["min"] == 0.001 and s["rounds"] == 5
    # pytest-benchmark's quartiles (its own Stats class): the medians of the lower and upper halves.
    assert (
        s["q1"] == pytest.approx(0.00175)
        and s["q3"] == pytest.approx(0.0055)
        and s["iqr"] == pytest.approx(0.00375)
    )
    assert s["data"] == [0.004, 0.001, 0.002, 0.003, 0.010]


def _record(backend: str, comp: str, acc: float, median_s: float, size: int, energy_j: float) -> dict:
    return {
        "model": "m", "target": "x86_64", "backend": backend, "compression": comp, "engine": backend,
        "size_bytes": size, "passed": True, "failures": [],
        "accuracy": {"dataset": "toy (n=4)", "accuracy": acc, "drop": 90.0 - acc, "agreement": 100.0},
        "latency": {"stats": results.stats_dict([median_s] * 3), "measured_on": "host"},
        "energy": {"energy_per_inference_j": energy_j, "kind": "estimated"},
    }  # fmt: skip


RECORDS = [
    _record("torch", "dense", 90.0, 0.004, 4000, 0.2),
    _record("native", "dense", 90.0, 0.002, 4000, 0.1),
    _record("native", "sparse90", 89.5, 0.001, 1000, 0.05),
]


def test_markdown_table_with_ratios_vs_reference() -> None:
    md = report.markdown(RECORDS, notes=["power: estimated"], incidents=["pi@b:22: attempt 1/3 failed"])
    lines = md.splitlines()
    row = next(ln for ln in lines if ln.startswith("| native | sparse90 |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[2:6] == ["89.50", "+0.50", "100.0", "1.000 (0.000)"]
    assert cells[6] == "50.000 (est.)" and cells[7] == "1000 B"
    assert cells[8] == "4.00x" and cells[9] == "4.00x"  # vs torch dense: 4000 B / 1000 B, 4 ms / 1 ms
    assert lines.index(row) > lines.index(next(ln for ln in lines if ln.startswith("| torch | dense |")))
    assert "- power: estimated" in md and "attempt 1/3 failed" in md


def test_plots_write_png(tmp_path) -> None:
    written = plots.write_plots(RECORDS, tmp_path)
    assert [p.name for p in written] == ["m-x86_64.png"]
    data = written[0].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert plots.write_plots([{**RECORDS[0], "latency": None}], tmp_path / "none") == []


def test_results_json_is_pytest_benchmark_shaped_and_merges(tmp_path) -> None:
    first = results.Results()
    first.update(
        "m", "x86_64", "native", "dense", latency={"stats": results.stats_dict([0.5, 1.0])}, old=True
    )
    path = tmp_path / results.JSON_NAME
    path.write_text(json.dumps(results.to_json(first)))
    second = results.Results()
    second.update("m", "x86_64", "native", "dense", latency={"stats": results.stats_dict([2.0])})
    second.update("m", "x86_64", "tvm", "dense")
    second.merge_file(path)
    data = results.to_json(second)
    assert [b["name"] for b in data["benchmarks"]] == ["latency[native-dense]"]  # tvm has no latency
    bench = data["benchmarks"][0]
    assert bench["stats"]["median"] == 2.0 and "old" not in bench["extra_info"]  # re-measured record wins
    assert bench["stats"]["iterations"] == 1  # `pytest-benchmark compare` needs it
    assert {"machine_info", "commit_info", "datetime", "version"} <= set(data)
    assert len(data["edgefit"]["records"]) == 2


class _FlakyConnection:
    """Stands in for the SSH transport only: fails `failures` times with the error ssh gives, then answers."""

    address = "pi@board:2222"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def run(self, command: str, input: bytes | None = None, timeout_s: float = 0, check: bool = True):
        from edgefit.runtime.deploy.ssh import SSHError

        self.calls += 1
        if self.calls <= self.failures:
            raise SSHError(f"{self.address}: Connection reset by peer")
        return subprocess.CompletedProcess([], 0, b"ok", b"")


def test_board_retries_are_bounded_and_reported() -> None:
    from edgefit.runtime.harness.board import BoardSession

    flaky = BoardSession("pi@board:2222", attempts=3, backoff_s=0.0, connection=_FlakyConnection(2))
    assert flaky.retry("probe", lambda: flaky.conn.run("true")).stdout == b"ok"
    assert (
        len(flaky.incidents) == 2
        and "attempt 1/3 failed: pi@board:2222: Connection reset" in flaky.incidents[0]
    )
    dead = BoardSession("pi@board:2222", attempts=3, backoff_s=0.0, connection=_FlakyConnection(99))
    with pytest.raises(UserError, match=r"probe failed 3 times in a row; last error: .*Connection reset"):
        dead.retry("probe", lambda: dead.conn.run("true"))
    assert dead.conn.calls == 3 and len(dead.incidents) == 3


def test_missing_sensor_falls_back_to_the_estimate_and_says_so() -> None:
    from edgefit.runtime.harness.state import HarnessState

    state = HarnessState(HarnessOptions(target="rpi4", power_source="ina2xx-hwmon"))
    power = state.power("native")
    assert power.kind == "estimated" and power.idle_w == power.meter.idle_w
    assert "using the rpi4 power model (estimated)" in power.note
    assert any("power (rpi4)" in n for n in state.results.notes)
    board = state.power("board")
    assert board.kind == "estimated" and "not read over SSH" in board.note
    state.close()


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime (extra 'backends') not installed"
)
def test_onnx_runner_leaves_no_file_behind(tmp_path, monkeypatch) -> None:
    # Each benchmark peer builds one of these; an export left per run once filled /tmp with gigabytes.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    bundle = compiled_bundle("digits_cnn", "x86_64", "native", "dense")
    module = load_reference_module("digits_cnn")
    runner = ONNXRuntimeRunner(module, bundle)
    assert list(tmp_path.iterdir()) == [] and runner.size_bytes > 10_000
    feeds = bundle.reference_inputs()
    np.testing.assert_allclose(
        runner.run(feeds)[runner.outputs[0]], bundle.reference_outputs()[runner.outputs[0]], atol=1e-4
    )


def test_native_staged_run_is_the_model_run() -> None:
    bundle = compiled_bundle("digits_cnn", "x86_64", "native", "dense")
    runner = NativeRunner(bundle)
    feeds = bundle.reference_inputs()
    want = runner.run(feeds)
    runner.run({k: np.zeros_like(v) for k, v in feeds.items()})  # the staged call must not reuse these
    once = runner.staged(feeds)
    once()
    once()
    assert runner.calls == 4
    for k, v in want.items():  # the staged call's own output arrays, filled by its runs on `feeds`
        np.testing.assert_array_equal(runner.bound.outputs[k], v)
