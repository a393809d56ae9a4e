"""Helpers for the native-runtime tests: single-op graphs with hand-built IR, written as artifacts."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from edgefit.compiler import encodings as enc
from edgefit.compiler.artifact import write_artifact
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify

native = pytest.importorskip("edgefit.runtime._native", reason="the native runtime is not built")

_CPU = native.cpu()
#: ISA levels this CPU runs (each selects a different kernel set; scalar is the reference).
ISAS = ["scalar"] + [
    isa for isa, flag in (("avx2", "avx2"), ("avx512", "avx512f"), ("neon", "neon")) if _CPU[flag]
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test taking `isa` runs once per kernel set this machine can execute.
    if "isa" in metafunc.fixturenames:
        metafunc.parametrize("isa", ISAS)


def encode(w: np.ndarray, kind: str) -> enc.WeightEncoding:
    """`w` in encoding `kind`: dense, int8, bsr1/bsr2/bsr4, cb<bits>[g<groups>]."""
    if kind == "dense":
        return enc.Dense(w.astype(np.float32))
    if kind == "int8":
        return enc.Int8PerChannel.from_dense(w)
    if kind.startswith("bsr"):
        return enc.BlockSparse.from_dense(w, int(kind[3:]))
    if kind.startswith("cb"):
        bits, _, groups = kind[2:].partition("g")
        bits, groups = int(bits), int(groups or 1)
        rng = np.random.default_rng(bits * 7 + groups)
        o = w.shape[0]
        idx = rng.integers(0, 2**bits, size=(o, int(np.prod(w.shape[1:]))))
        table = rng.standard_normal((groups, 2**bits)).astype(np.float32)
        cb = enc.Codebook.from_indices(w.shape, bits, idx, table, np.arange(o) % groups)
        return cb.scale_rows(rng.uniform(0.5, 1.5, o).astype(np.float32))
    raise ValueError(kind)


def sparse_weights(
    rng: np.random.Generator, shape: tuple[int, ...], density: float, block: int = 1
) -> np.ndarray:
    """Weights with whole blocks of `block` output channels zeroed (density = kept fraction)."""
    w = rng.standard_normal(shape).astype(np.float32)
    o = shape[0]
    k = int(np.prod(shape[1:]))
    keep = rng.random((o // block, k)) < density
    mask = np.repeat(keep, block, axis=0).reshape(shape)
    return (w * mask).astype(np.float32)


def single_op(
    op: str,
    inputs: dict[str, tuple[tuple[int, ...], str]],
    consts: dict[str, enc.WeightEncoding],
    out_shape: tuple[int, ...],
    attrs: dict | None = None,
    out_dtype: str = "f32",
    order: list[str] | None = None,
) -> Graph:
    values = {name: Value(name, shape, dtype) for name, (shape, dtype) in inputs.items()}
    for name, c in consts.items():
        values[name] = Value(name, tuple(c.shape), "f32" if c.kind != "dense" else _dt(c.data))
    values["y"] = Value("y", tuple(out_shape), out_dtype)
    node = Node(op, "n0", tuple(order or [*inputs, *consts]), ("y",), freeze(attrs or {}), "test.py:1")
    return verify(Graph(tuple(inputs), ("y",), (node,), values, consts, {"model": "test"}))


def _dt(a: np.ndarray) -> str:
    return {np.float32: "f32", np.uint8: "u8", np.int32: "i32", np.int8: "i8"}[a.dtype.type]


@pytest.fixture
def artifact(tmp_path: Path) -> Callable[[Graph], Path]:
    counter = iter(range(10**6))

    def write(graph: Graph) -> Path:
        path = tmp_path / f"g{next(counter)}.efm"
        write_artifact(graph, path)
        return path

    return write


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    want = np.asarray(want, dtype=np.float64)
    scale = max(float(np.abs(want).max()), 1e-6)
    return float(np.abs(np.asarray(got, dtype=np.float64) - want).max()) / scale


def load_script(relpath: str) -> ModuleType:
    """A script of the repository (tools/, scripts/: not packages) loaded by path, so its tests use
    the one definition the command line runs."""
    path = Path(__file__).resolve().parents[2] / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def h() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under importlib mode)."""
    return SimpleNamespace(
        encode=encode,
        sparse_weights=sparse_weights,
        single_op=single_op,
        rel_err=rel_err,
        isas=ISAS,
        native=native,
        load_script=load_script,
    )
