"""Small helpers the graph passes share: protected tensors, fresh names, rebuilding a graph."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from edgefit.compiler.encodings import WeightEncoding
from edgefit.compiler.ir import Graph, Node, Value


def protected(graph: Graph) -> set[str]:
    """Tensors a rewrite must keep by name: graph outputs and the split point."""
    keep = set(graph.outputs)
    if "split" in graph.meta:
        keep.add(str(graph.meta["split"]))
    return keep


def fresh(taken: Iterable[str] | Mapping[str, object], base: str) -> str:
    taken = set(taken)
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def rebuild(
    graph: Graph,
    nodes: Iterable[Node],
    values: Mapping[str, Value] | None = None,
    constants: Mapping[str, WeightEncoding] | None = None,
) -> Graph:
    """A graph with `nodes`, keeping only the values and constants something still refers to."""
    nodes = tuple(nodes)
    values = dict(graph.values if values is None else values)
    constants = dict(graph.constants if constants is None else constants)
    used = set(graph.inputs) | set(graph.outputs)
    for node in nodes:
        used.update(node.inputs)
        used.update(node.outputs)
    return Graph(
        graph.inputs,
        graph.outputs,
        nodes,
        {k: v for k, v in values.items() if k in used},
        {k: c for k, c in constants.items() if k in used},
        graph.meta,
    )
