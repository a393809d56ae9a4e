"""A split bundle's head and tail run in this process: through the native runtime (`Session`) when it
is built, else through the numpy reference interpreter; plus batched copies of a part for the server."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgefit.compiler.ir import Graph, Node, Value, freeze, verify
from edgefit.errors import UserError

BACKENDS = ("auto", "native", "reference")


def native_available() -> bool:
    try:
        from edgefit.runtime import _native  # noqa: F401
    except ImportError:
        return False
    return True


class Part:
    """One artifact (head, tail) ready to run. Native sessions serialise their runs, so a part keeps
    one session per calling thread: the server's worker threads then run in parallel."""

    def __init__(self, path: Path, graph: Graph, backend: str, threads: int = 1) -> None:
        self.path = path
        self.graph = graph
        self.backend = backend
        self.threads = threads
        self._local = threading.local()

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.graph.inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.graph.outputs

    def spec(self, name: str) -> Value:
        return self.graph.values[name]

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            from edgefit.runtime.session import Session

            session = self._local.session = Session(self.path, threads=self.threads)
        return session

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.backend == "native":
            return self._session().run({k: np.ascontiguousarray(v) for k, v in feeds.items()})
        from edgefit.compiler import reference

        return reference.run(self.graph, feeds)


def load_part(path: Path, backend: str = "auto", threads: int = 1) -> Part:
    from edgefit.compiler.artifact import read_artifact

    if backend not in BACKENDS:
        raise UserError(f"unknown split backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    chosen = backend if backend != "auto" else ("native" if native_available() else "reference")
    return Part(Path(path), read_artifact(path), chosen, threads)


class SplitModel:
    """head (device side) and tail (server side) of a split bundle; `full` = tail(head(x)), which is
    exactly the single-process model (the split only cuts the graph at the quantized bottleneck)."""

    def __init__(self, bundle_dir: str | os.PathLike[str], backend: str = "auto", threads: int = 1) -> None:
        from edgefit.runtime.bundle import Bundle

        self.bundle = Bundle.load(bundle_dir)
        if self.bundle.backend != "native":
            raise UserError(
                f"{bundle_dir} was compiled for the {self.bundle.backend!r} backend; split serving runs native bundles"
            )
        artifacts = self.bundle.manifest.get("artifacts", {})
        if "head" not in artifacts or "tail" not in artifacts:
            raise UserError(f"{bundle_dir} is not a split bundle (compile it with --split)")
        self.head_part = load_part(self.bundle.artifact("head"), backend, threads)
        self.tail_part = load_part(self.bundle.artifact("tail"), backend, threads)
        self.backend = self.head_part.backend
        head_out = self.head_part.outputs
        if len(head_out) != 1 or self.tail_part.inputs != head_out:
            raise UserError(f"{bundle_dir}: the head's outputs {head_out} are not the tail's inputs")
        self.split_name = head_out[0]
        meta = self.tail_part.graph.meta
        quantized = self.head_part.spec(self.split_name).dtype == "u8"
        self.scale = float(meta["split_scale"]) if quantized else None
        self.zero_point = int(meta["split_zero_point"]) if quantized else None
        self.model = self.bundle.manifest.get("model", "model")
        self.head_sha256 = self.bundle.manifest.get("checksums", {}).get(artifacts["head"], "")

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.head_part.inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.tail_part.outputs

    def head(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.head_part.run(feeds)[self.split_name]

    def tail(self, split: np.ndarray) -> dict[str, np.ndarray]:
        return self.tail_part.run({self.split_name: split})

    def full(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.tail(self.head(feeds))

    def split_fp32_bytes(self) -> int:
        """Bytes of the unmodified split tensor in fp32 (BottleFit's baseline for the compression):
        the layer output the bottleneck replaces when the manifest records it, else the bottleneck."""
        b = self.bundle.manifest.get("bottleneck") or {}
        if b.get("split_bytes_fp32"):
            batch = self.head_part.spec(self.split_name).shape[0]
            return int(b["split_bytes_fp32"]) * batch
        # A model with a built-in bottleneck (zoo BottleFit ResNet) has no report: its decoder restores
        # the teacher's tensor at the split, so the decoder's last output is the unmodified split tensor.
        tail = self.tail_part.graph
        decoder = [n for n in tail.nodes if n.name.startswith("decoder.")]
        if decoder:
            return tail.values[decoder[-1].outputs[0]].numel * 4
        return self.head_part.spec(self.split_name).numel * 4


# --- batching -----------------------------------------------------------------------------------------


def rebatch(graph: Graph, factor: int) -> Graph:
    """`graph` with its batch dimension (dim 0 of every activation) multiplied by `factor`: requests
    arriving together then run as one. ValueError where dim 0 is not a plain batch dimension."""
    batch = graph.values[graph.inputs[0]].shape[0]
    constants = set(graph.constants)
    values = {}
    for name, v in graph.values.items():
        if name in constants:
            values[name] = v
            continue
        if not v.shape or v.shape[0] != batch:
            raise ValueError(f"tensor {name!r} of shape {v.shape} has no leading batch dimension {batch}")
        values[name] = replace(v, shape=(v.shape[0] * factor, *v.shape[1:]))
    nodes = []
    for node in graph.nodes:
        attrs = dict(node.attrs)
        if node.op == "reshape":
            attrs["shape"] = (attrs["shape"][0] * factor, *attrs["shape"][1:])
        elif node.op in ("concat", "softmax") and attrs.get("axis", 1) in (
            0,
            -len(values[node.outputs[0]].shape),
        ):
            raise ValueError(f"node {node.name!r} ({node.op}) works across the batch dimension")
        nodes.append(Node(node.op, node.name, node.inputs, node.outputs, freeze(attrs), node.source))
    return verify(Graph(graph.inputs, graph.outputs, tuple(nodes), values, graph.constants, graph.meta))


class BatchedParts:
    """Copies of a part for 2..max_batch requests at once, made on first use (written as artifacts to a
    private temporary directory for the native runtime). `get(k)` is None when the part cannot be batched."""

    def __init__(self, part: Part, max_batch: int) -> None:
        self.part = part
        self.max_batch = max_batch
        self._parts: dict[int, Part | None] = {1: part}
        self._lock = threading.Lock()
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def get(self, k: int) -> Part | None:
        if k > self.max_batch:
            return None
        with self._lock:
            if k not in self._parts:
                self._parts[k] = self._make(k)
            return self._parts[k]

    def disable(self, k: int) -> None:
        with self._lock:
            if k != 1:
                self._parts[k] = None

    def _make(self, k: int) -> Part | None:
        try:
            graph = rebatch(self.part.graph, k)
        except ValueError:
            return None
        path = self.part.path
        if self.part.backend == "native":
            from edgefit.compiler.artifact import write_artifact

            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="edgefit-split-")
            path = Path(self._dir.name) / f"{self.part.path.stem}.b{k}.efm"
            write_artifact(graph, path)
        return Part(path, graph, self.part.backend, self.part.threads)

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
