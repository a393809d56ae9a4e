"""Cuts a graph at its bottleneck (graph.meta["split"]) into a head for the device and a tail for
the server; the transmitted tensor is optionally quantized to u8 (per-tensor scale/zero point
from the calibration inputs' range)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgefit.compiler import reference
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify
from edgefit.compiler.passes._util import fresh, rebuild
from edgefit.errors import UserError


def split_at_bottleneck(
    graph: Graph, calibration: Mapping[str, np.ndarray] | None = None, quantize: bool = True
) -> tuple[Graph, Graph]:
    """(head, tail): head computes meta["split"] (then quantizes it when `quantize`); tail starts
    from it (dequantizing first). Both carry "split", "split_scale", "split_zero_point" in meta."""
    if "split" not in graph.meta:
        raise UserError("the graph has no split point; capture it with split_after=<submodule>")
    split = str(graph.meta["split"])
    producers = graph.producers()
    if split not in producers:
        raise UserError(f"split tensor {split!r} is not computed by any node of the graph")

    head_names = _needed(graph, {split}, stop=set())
    head_nodes = [n for n in graph.nodes if n.name in head_names]
    tail_names = _needed(graph, set(graph.outputs), stop={split})
    tail_nodes = [n for n in graph.nodes if n.name in tail_names]
    head_out = {out for n in head_nodes for out in n.outputs}
    for node in tail_nodes:
        for name in node.inputs:
            if name != split and (name in head_out or name in graph.inputs):
                what = "the graph input" if name in graph.inputs else "computed before the split"
                raise UserError(
                    f"node {node.name!r} after the split reads {name!r}, {what}: "
                    f"the bottleneck {split!r} is not the only tensor crossing the split"
                )
    for name in graph.outputs:
        if name in head_out and name != split:
            raise UserError(f"graph output {name!r} is computed before the split point {split!r}")

    head = rebuild(graph.with_nodes(head_nodes, outputs=(split,)), head_nodes)
    meta = {**graph.meta, "split": split}
    if not quantize:
        tail = _tail(graph, tail_nodes, split, split, [])
        return (
            verify(head.with_nodes(head.nodes, meta={**meta, "part": "head"})),
            verify(tail.with_nodes(tail.nodes, meta={**meta, "part": "tail"})),
        )

    scale, zero_point = _calibrate(head, split, calibration)
    meta |= {"split_scale": scale, "split_zero_point": zero_point}
    qattrs = freeze({"scale": (scale,), "zero_point": (zero_point,), "axis": 1})
    shape = graph.values[split].shape
    q = fresh(graph.values, f"{split}.q")
    qnode = Node("quantize", q, (split,), (q,), qattrs, producers[split].source)
    values = dict(head.values) | {q: Value(q, shape, "u8")}
    head = Graph(head.inputs, (q,), (*head.nodes, qnode), values, head.constants, {**meta, "part": "head"})
    dq = Node("dequantize", f"{split}.dequantize", (q,), (split,), qattrs, producers[split].source)
    tail = _tail(graph, [dq, *tail_nodes], q, split, [Value(q, shape, "u8")])
    return verify(head), verify(tail.with_nodes(tail.nodes, meta={**meta, "part": "tail"}))


def _needed(graph: Graph, targets: set[str], stop: set[str]) -> set[str]:
    """Names of the nodes needed to compute `targets`, not looking past the tensors in `stop`."""
    live = set(targets)
    names = set()
    for node in reversed(graph.nodes):
        if any(out in live and out not in stop for out in node.outputs):
            names.add(node.name)
            live.update(node.inputs)
    return names


def _tail(graph: Graph, nodes: list[Node], tail_input: str, split: str, extra: list[Value]) -> Graph:
    values = dict(graph.values) | {v.name: v for v in extra}
    tail = Graph((tail_input,), graph.outputs, tuple(nodes), values, graph.constants, graph.meta)
    return rebuild(tail, nodes)


def _calibrate(head: Graph, split: str, calibration: Mapping[str, np.ndarray] | None) -> tuple[float, int]:
    """Per-tensor u8 parameters covering the split tensor's range on the calibration inputs (and 0,
    so that zero, e.g. after a ReLU, is exact)."""
    if calibration is None:
        raise UserError("quantizing the split tensor needs calibration inputs (or quantize=False)")
    lo, hi = 0.0, 0.0
    for batch in _batches(head, calibration):
        out = reference.run(head, batch)[split]
        lo, hi = min(lo, float(out.min())), max(hi, float(out.max()))
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zero_point = int(np.clip(round(-lo / scale), 0, 255))
    return float(np.float32(scale)), zero_point


def _batches(graph: Graph, calibration: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The calibration set cut into the graph's batch size (shapes in the IR are static)."""
    missing = [n for n in graph.inputs if n not in calibration]
    if missing:
        raise UserError(f"calibration inputs lack {', '.join(missing)}")
    batch = graph.values[graph.inputs[0]].shape[0]
    total = len(calibration[graph.inputs[0]])
    if total == 0 or total % batch:
        raise UserError(f"calibration has {total} samples; the graph takes batches of {batch}")
    return [
        {n: np.asarray(calibration[n])[i : i + batch] for n in graph.inputs} for i in range(0, total, batch)
    ]
