"""Whole zoo models (captured from PyTorch) through both backends against the reference (slow)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgefit import models, targets
from edgefit.compiler import reference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["resnet18", "mobilenet_v2"])
def zoo_graph(request):
    from edgefit.compiler.frontend import capture

    name = request.param
    x = models.example_input(name)
    graph = capture(models.create(name), (x,), name=name)
    feeds = {graph.inputs[0]: x.numpy()}
    return graph, feeds, reference.run(graph, feeds)[graph.outputs[0]]


def _check(got: np.ndarray, want: np.ndarray) -> None:
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert got.argmax() == want.argmax()


def test_tflite_whole_model(zoo_graph, tmp_path):
    from edgefit.compiler.backends.tflite import export_tflite, run_tflite

    graph, feeds, want = zoo_graph
    stats = export_tflite(graph, tmp_path / "m.tflite")
    assert "TRANSPOSE" not in stats["ops"]
    _check(run_tflite(tmp_path / "m.tflite", feeds)[graph.outputs[0]], want)


def test_tvm_whole_model(zoo_graph, tmp_path):
    from edgefit.compiler.backends.tvm import compile_tvm, run_tvm

    graph, feeds, want = zoo_graph
    compile_tvm(graph, targets.load("x86_64"), tmp_path / "m.so")
    _check(run_tvm(tmp_path / "m.so", feeds)[graph.outputs[0]], want)


def test_tvm_tuning_reuses_its_database(tmp_path, capfd, monkeypatch):
    """A few MetaSchedule trials on a tiny graph into the default database (in the edgefit cache),
    with progress on stderr; a second run with the same trials measures nothing and reuses them."""
    pytest.importorskip("psutil", reason="MetaSchedule tuning needs psutil (not in the venv)")
    from edgefit.compiler.backends.tvm import compile_tvm, run_tvm
    from edgefit.compiler.encodings import Dense
    from edgefit.compiler.ir import Graph, Node, Value, freeze

    monkeypatch.setenv("EDGEFIT_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    graph = Graph(
        ("x",),
        ("y",),
        (Node("conv2d", "conv", ("x", "w"), ("y",), freeze({"padding": (1, 1, 1, 1), "act": "relu"})),),
        {"x": Value("x", (1, 4, 8, 8)), "w": Value("w", w.shape), "y": Value("y", (1, 8, 8, 8))},
        {"w": Dense(w)},
    )
    from edgefit.errors import UserError

    try:
        compile_tvm(graph, targets.load("x86_64"), tmp_path / "a.so", tune_trials=4)
    except UserError as exc:
        if "crashed" not in str(exc):
            raise
        # Seen with apache-tvm 0.27.0.post1: even a plain matmul tune_tir segfaults in
        # TuneContext initialization (tvm::ffi::ToJSONGraph); the compiler reports it in one line.
        pytest.xfail(f"MetaSchedule crashes in this TVM build: {exc}")
    err = capfd.readouterr().err
    assert "tuning 1 tasks: 4 trials (0 already recorded)" in err, err
    assert re.search(r"tuning: [1-4]/4 trials \(\d+ s\), task 0: best [0-9.]+ us", err), err  # progress
    db = tmp_path / "cache" / "tvm-tuning" / "x86_64"
    records = (db / "database_tuning_record.json").read_text().splitlines()
    assert 1 <= len(records) <= 4
    compile_tvm(graph, targets.load("x86_64"), tmp_path / "b.so", tune_trials=4)
    err = capfd.readouterr().err
    assert "reusing" in err and "tuning 1 tasks" not in err, err
    assert len((db / "database_tuning_record.json").read_text().splitlines()) == len(records)
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    got = run_tvm(tmp_path / "b.so", {"x": x})["y"]
    assert np.abs(got - reference.run(graph, {"x": x})["y"]).max() <= 1e-4 * np.abs(got).max()
