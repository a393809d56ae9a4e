"""Whole zoo models (captured from PyTorch) through both backends against the reference (slow)."""

from __future__ import annotations

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


def test_tvm_tuning_reuses_its_database(tmp_path, capfd):
    """A few MetaSchedule trials on a tiny graph; the second run starts from the stored records."""
    pytest.importorskip("psutil", reason="MetaSchedule tuning needs psutil (not in the venv)")
    from edgefit.compiler.backends.tvm import compile_tvm, run_tvm
    from edgefit.compiler.encodings import Dense
    from edgefit.compiler.ir import Graph, Node, Value, freeze

    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    graph = Graph(
        ("x",),
        ("y",),
        (Node("conv2d", "conv", ("x", "w"), ("y",), freeze({"padding": (1, 1, 1, 1), "act": "relu"})),),
        {"x": Value("x", (1, 4, 8, 8)), "w": Value("w", w.shape), "y": Value("y", (1, 8, 8, 8))},
        {"w": Dense(w)},
    )
    db = tmp_path / "db"
    compile_tvm(graph, targets.load("x86_64"), tmp_path / "a.so", tune_trials=4, tuning_db=db)
    assert "tuning" in capfd.readouterr().err
    records = sorted(p.name for p in db.iterdir())
    assert any("record" in r for r in records), records
    compile_tvm(graph, targets.load("x86_64"), tmp_path / "b.so", tuning_db=db)  # reuse only
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    got = run_tvm(tmp_path / "b.so", {"x": x})["y"]
    assert np.abs(got - reference.run(graph, {"x": x})["y"]).max() <= 1e-4 * np.abs(got).max()
