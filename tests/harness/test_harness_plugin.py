"""The pytest plugin end to end through pytester: it loads, rejects bad options in one line, compares
digits_cnn dense / 90 %-sparse / 4-bit codebook on x86_64 through every backend installed here and
writes the JSON, the table and the plots; a violated threshold fails with a message saying by how much."""

from __future__ import annotations

import importlib.util
import json

import pytest

from edgefit.runtime.board.paths import cache_dir
from edgefit.runtime.harness.suite import SOURCE, plugin_args

pytest_plugins = ("pytester",)

# Backends whose runtime is installed (tvm, litert, onnxruntime are optional extras).
_MODULES = {"tvm": "tvm", "tflite": "ai_edge_litert", "onnxruntime": "onnxruntime"}
BACKENDS = ["native", *(b for b, m in _MODULES.items() if importlib.util.find_spec(m)), "torch"]
# pytester points HOME at its temporary directory: keep the real cache (trained digits teacher, bundles).
CACHE = cache_dir()
FAST = [
    "--edgefit-rounds",
    "5",
    "--edgefit-warmup",
    "1",
    "--edgefit-energy-s",
    "0.02",
    # Deterministic on any machine: a host with RAPL would measure instead.
    "--edgefit-power-source",
    "estimate",
    "-p",
    "no:cacheprovider",
]


@pytest.fixture(autouse=True)
def _real_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFIT_CACHE", str(CACHE))


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # A subprocess: an in-process run unloads the C extensions it imported (numpy.fft, torch) afterwards,
    # and they cannot be loaded twice in one process.
    pytester.makepyfile(test_edgefit_bench=SOURCE)
    return pytester.runpytest_subprocess(*plugin_args(), *FAST, *args, timeout=600)


def test_plugin_loads_and_adds_its_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(*plugin_args(), "--help", timeout=120)
    result.stdout.fnmatch_lines(
        ["*edgefit validation and benchmarks*", "*--edgefit-target*", "*--edgefit-max-drop*"]
    )
    assert result.ret == 0


def test_bad_option_is_a_one_line_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--edgefit-backends", "native,cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*unknown backend(s) cuda; choose from native, tvm, tflite, onnxruntime, torch, board*"]
    )
    result = _run(pytester, "--edgefit-compressions", "dense,cb9")
    result.stderr.fnmatch_lines(["*unknown compression setting 'cb9'*"])


def test_digits_dense_sparse_codebook_through_every_backend(pytester: pytest.Pytester, tmp_path) -> None:
    report = tmp_path / "report"
    result = _run(
        pytester,
        "--edgefit-backends", ",".join(BACKENDS),
        "--edgefit-compressions", "dense,sparse90,cb4",
        "--edgefit-max-drop", "5",
        "--edgefit-report", str(report),
    )  # fmt: skip
    compiled = [b for b in BACKENDS if b not in ("torch", "onnxruntime")]
    pairs = 3 * len(compiled) + len(BACKENDS) - len(compiled)  # torch/onnxruntime only run dense
    result.assert_outcomes(passed=2 * pairs)
    result.stdout.fnmatch_lines(["*note: power (x86_64):*estimated*", f"*wrote {report}/edgefit-bench.md*"])

    data = json.loads((report / "edgefit-bench.json").read_text())
    assert len(data["benchmarks"]) == pairs
    for bench in data["benchmarks"]:
        stats = bench["stats"]
        assert stats["rounds"] == 5 and 0 < stats["min"] <= stats["median"] <= stats["max"] < 1.0
        assert bench["extra_info"]["energy"]["energy_per_inference_j"] > 0
    records = {(r["backend"], r["compression"]): r for r in data["edgefit"]["records"]}
    assert len(records) == pairs
    for (backend, comp), r in records.items():
        acc = r["accuracy"]
        assert acc["samples"] == 450 and acc["reference_accuracy"] > 95
        if comp == "dense":  # the same weights: the backends must match the reference exactly in top-1
            assert acc["agreement"] == 100.0 and acc["cosine_min"] > 0.9999, (backend, acc)
        else:
            assert 90 < acc["agreement"] < 100 and abs(acc["drop"]) < 5, (backend, comp, acc)
    # Codebook and sparse weights are really smaller in the native artifact.
    assert records[("native", "cb4")]["size_bytes"] < records[("native", "dense")]["size_bytes"] / 4
    assert records[("native", "sparse90")]["size_bytes"] < records[("native", "dense")]["size_bytes"] / 3

    md = (report / "edgefit-bench.md").read_text()
    for backend, comp in records:
        assert f"| {backend} | {comp} |" in md
    png = report / "digits_cnn-x86_64.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 30_000


def test_threshold_failure_fails_the_test_and_says_by_how_much(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester, "-k", "accuracy",
        "--edgefit-backends", "native", "--edgefit-compressions", "sparse90",
        "--edgefit-max-drop", "-1", "--edgefit-min-agreement", "99.9",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*native sparse90: top-1 agreement with the reference *% is below the limit of 99.90 % by * points*"]
    )


USER_TESTS = """
from torch.utils.data import Subset

from edgefit.models import datasets


def test_fixtures(edgefit_target, compiled_model, reference_model, power_meter):
    assert edgefit_target.name == "x86_64" and compiled_model.backend == "native"
    assert compiled_model.manifest["options"]["sparsity"] == 0.9
    assert reference_model.training is False
    assert power_meter.kind == "estimated" and "estimated" in power_meter.note


def test_own_dataset(edgefit_runner, edgefit_validate):
    report = edgefit_validate(edgefit_runner, dataset=Subset(datasets.digits("test"), range(100)), name="my digits")
    assert report.samples == 100 and report.dataset == "my digits (n=100)" and report.accuracy > 85
"""


def test_users_own_tests_and_dataset(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(
        *plugin_args(), *FAST, "--edgefit-backends", "native", "--edgefit-compressions", "sparse90",
        "--edgefit-max-drop", "10", timeout=600,
    )  # fmt: skip
    result.assert_outcomes(passed=2)
