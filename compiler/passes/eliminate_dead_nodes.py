"""Drops nodes whose outputs reach no graph output (nor the split point), and unused constants."""

from __future__ import annotations

from edgefit.compiler.ir import Graph
from edgefit.compiler.passes._util import protected, rebuild


def eliminate_dead_nodes(graph: Graph) -> Graph:
    live = protected(graph)
    kept = []
    for node in reversed(graph.nodes):
        if any(out in live for out in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    return rebuild(graph, reversed(kept))
