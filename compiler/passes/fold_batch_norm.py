"""Folds a channel_affine (an eval-mode batch norm) into the conv2d/linear that feeds it.

y = (W x + b) * s + t = (diag(s) W) x + (b * s + t): the weight is rescaled row by row through its
encoding's `scale_rows`, so block-sparse, codebook and int8 weights stay encoded and exact. A
channel_affine that follows anything else (BottleFit's batch norm after a max pool) stays.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgefit.compiler.encodings import Dense, WeightEncoding
from edgefit.compiler.ir import Graph, Node, Value, freeze
from edgefit.compiler.passes._util import fresh, protected, rebuild

FOLDABLE = ("conv2d", "linear")


def fold_batch_norm(graph: Graph) -> Graph:
    producers = graph.producers()
    consumers = graph.consumers()
    keep = protected(graph)
    values = dict(graph.values)
    constants = dict(graph.constants)
    folded: dict[str, Node] = {}  # producer name -> rewritten producer
    dropped: set[str] = set()
    for node in graph.nodes:
        if node.op != "channel_affine":
            continue
        x, scale_name, shift_name = node.inputs
        prod = producers.get(x)
        if (
            prod is None
            or prod.op not in FOLDABLE
            or prod.attr("act", "none") != "none"
            or prod.name in folded
            or len(consumers.get(x, [])) != 1
            or x in keep
            or scale_name not in constants
            or shift_name not in constants
            or prod.inputs[1] not in constants
            or (len(prod.inputs) > 2 and prod.inputs[2] not in constants)
        ):
            continue
        scale = constants[scale_name].to_dense().astype(np.float64)
        shift = constants[shift_name].to_dense().astype(np.float64)
        w_name = prod.inputs[1]
        weight: WeightEncoding = constants[w_name]
        if len(prod.inputs) > 2:
            bias = constants[prod.inputs[2]].to_dense().astype(np.float64)
            bias_base = prod.inputs[2]
        else:
            bias = np.zeros_like(shift)
            bias_base = f"{prod.name}.bias"
        new_w = fresh(values, f"{w_name}.bn")
        values[new_w] = Value(new_w, values[w_name].shape, values[w_name].dtype)
        constants[new_w] = weight.scale_rows(scale.astype(np.float32))
        new_b = fresh(values, f"{bias_base}.bn")
        values[new_b] = Value(new_b, (len(shift),))
        constants[new_b] = Dense((bias * scale + shift).astype(np.float32))
        folded[prod.name] = replace(
            prod,
            inputs=(prod.inputs[0], new_w, new_b),
            outputs=node.outputs,
            attrs=freeze({**prod.attrs, "act": node.attr("act", "none")}),
        )
        dropped.add(node.name)
    nodes = [folded.get(n.name, n) for n in graph.nodes if n.name not in dropped]
    return rebuild(graph, nodes, values, constants)
