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
