"""Fixtures for the emulated-board tests: one session-scoped emulated Pi 4 and small bundles.

The board's root is built once into the edgefit cache (minutes the first time, then reused);
the board itself gets a private name and known_hosts, so a board the user has up is untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgefit.compiler.artifact import write_artifact
from edgefit.compiler.encodings import Dense
from edgefit.compiler.ir import Graph, Node, Value, freeze
from edgefit.runtime.bundle import REFERENCE_INPUTS, REFERENCE_OUTPUTS, staging_dir, write_manifest


def make_bundle(
    out: Path, target: str = "rpi4", hidden: int = 32, seed: int = 0, backend: str = "native"
) -> Path:
    """A native bundle of a 2-layer MLP (x[1,64] -> linear+relu -> linear -> y[1,8]) whose
    reference outputs are computed here with plain numpy, independently of edgefit's interpreter."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((hidden, 64)) / 8).astype(np.float32)
    b1 = rng.standard_normal(hidden).astype(np.float32)
    w2 = (rng.standard_normal((8, hidden)) / np.sqrt(hidden)).astype(np.float32)
    x = rng.standard_normal((1, 64)).astype(np.float32)
    values = {
        "x": Value("x", (1, 64)), "h": Value("h", (1, hidden)), "y": Value("y", (1, 8)),
        "w1": Value("w1", (hidden, 64)), "b1": Value("b1", (hidden,)), "w2": Value("w2", (8, hidden)),
    }  # fmt: skip
    nodes = (
        Node("linear", "fc1", ("x", "w1", "b1"), ("h",), freeze({"act": "relu"})),
        Node("linear", "fc2", ("h", "w2"), ("y",), freeze({"act": "none"})),
    )
    graph = Graph(("x",), ("y",), nodes, values, {"w1": Dense(w1), "b1": Dense(b1), "w2": Dense(w2)})
    y = (np.maximum(x.astype(np.float64) @ w1.T + b1, 0) @ w2.T).astype(np.float32)
    with staging_dir(out) as tmp:
        if backend == "tflite":
            from edgefit.compiler.backends.tflite import export_tflite

            artifact = "model.tflite"
            export_tflite(graph, tmp / artifact)
        else:
            artifact = "model.efm"
            write_artifact(graph, tmp / artifact)
        np.savez(tmp / REFERENCE_INPUTS, x=x)
        np.savez(tmp / REFERENCE_OUTPUTS, y=y)
        write_manifest(
            tmp,
            {
                "model": "mlp", "target": target, "backend": backend, "artifacts": {"model": artifact},
                "inputs": [{"name": "x", "shape": [1, 64], "dtype": "f32"}],
                "outputs": [{"name": "y", "shape": [1, 8], "dtype": "f32"}],
                "tolerance": {"relative": 1e-4},
            },
        )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def bundle_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    base = tmp_path_factory.mktemp("bundles")
    counter = iter(range(1_000_000))

    def factory(**kwargs: object) -> Path:
        return make_bundle(base / f"b{next(counter)}", **kwargs)  # type: ignore[arg-type]

    return factory
