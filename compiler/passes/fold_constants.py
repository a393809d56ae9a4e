"""Evaluates nodes whose inputs are all constants (with the reference interpreter) into constants."""

from __future__ import annotations

import numpy as np

from edgefit.compiler import reference
from edgefit.compiler.encodings import Dense
from edgefit.compiler.ir import Graph
from edgefit.compiler.passes._util import rebuild


def fold_constants(graph: Graph) -> Graph:
    constants = dict(graph.constants)
    kept = []
    for node in graph.nodes:
        if node.inputs and all(name in constants for name in node.inputs):
            results = reference.evaluate(node, [constants[name].to_dense() for name in node.inputs])
            for name, result in zip(node.outputs, results, strict=True):
                dtype = reference.NP_DTYPES[graph.values[name].dtype]
                constants[name] = Dense(np.ascontiguousarray(result, dtype=dtype))
        else:
            kept.append(node)
    return rebuild(graph, kept, constants=constants)
