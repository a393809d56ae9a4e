"""Moves a relu/relu6/hardswish into its producer's attrs["act"] (conv2d, linear, add, channel_affine)
when the producer's output feeds nothing else, so backends run one kernel instead of two."""

from __future__ import annotations

from dataclasses import replace

from edgefit.compiler.ir import Graph, freeze
from edgefit.compiler.passes._util import protected, rebuild

FUSABLE_PRODUCERS = ("conv2d", "linear", "add", "channel_affine")
ACTIVATION_OPS = ("relu", "relu6", "hardswish")


def fuse_activations(graph: Graph) -> Graph:
    producers = graph.producers()
    consumers = graph.consumers()
    keep = protected(graph)
    fused: dict[str, str] = {}  # producer node name -> the activation it absorbs
    dropped: set[str] = set()
    for node in graph.nodes:
        if node.op not in ACTIVATION_OPS:
            continue
        src = node.inputs[0]
        prod = producers.get(src)
        if (
            prod is None
            or prod.op not in FUSABLE_PRODUCERS
            or prod.attr("act", "none") != "none"
            or prod.name in fused
            or len(consumers.get(src, [])) != 1
            or src in keep
        ):
            continue
        fused[prod.name] = node.name
        dropped.add(node.name)
    by_name = {n.name: n for n in graph.nodes}
    nodes = []
    for node in graph.nodes:
        if node.name in dropped:
            continue
        if node.name in fused:
            act = by_name[fused[node.name]]
            # The producer now writes the activation's output tensor, so readers need no change.
            node = replace(node, outputs=act.outputs, attrs=freeze({**node.attrs, "act": act.op}))
        nodes.append(node)
    return rebuild(graph, nodes)
