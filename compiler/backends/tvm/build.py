"""IR graph -> Relax IRModule with one `main(inputs...)` function, built with relax.BlockBuilder.

Built from the IR rather than torch.export so the compression survives: codebook layers stay
indices + table (decoded with `take`), int8 weights stay int8 (see `ops.py`)."""

from __future__ import annotations

import tvm
from tvm import relax

from edgefit.compiler.backends.tvm.ops import lower_node, weight
from edgefit.compiler.ir import Graph

DTYPES = {"f32": "float32", "f16": "float16", "i8": "int8", "u8": "uint8", "i32": "int32"}


def build_module(graph: Graph, densify_codebooks: bool = False) -> tuple[tvm.IRModule, dict]:
    stats = {"codebook_layers": 0, "int8_layers": 0, "densified_sparse_layers": 0}
    bb = relax.BlockBuilder()
    params = [
        relax.Var(name, relax.TensorType(graph.values[name].shape, DTYPES[graph.values[name].dtype]))
        for name in graph.inputs
    ]
    shapes = {name: value.shape for name, value in graph.values.items()}
    with bb.function("main", params):
        with bb.dataflow():
            env: dict[str, relax.Expr] = dict(zip(graph.inputs, params, strict=True))
            weights: dict[tuple[str, bool], relax.Expr] = {}
            for node in graph.nodes:
                args = []
                for name in node.inputs:
                    if name in env:
                        args.append(env[name])
                        continue
                    transpose = node.op == "linear" and name == node.inputs[1]
                    if (name, transpose) not in weights:
                        enc = graph.constants[name]
                        stats["densified_sparse_layers"] += enc.kind == "bsr"
                        weights[name, transpose] = weight(bb.emit, enc, densify_codebooks, stats, transpose)
                    args.append(weights[name, transpose])
                env[node.outputs[0]] = lower_node(bb.emit, node, args, shapes)
            outs = [env[name] for name in graph.outputs]
            result = bb.emit_output(outs[0] if len(outs) == 1 else relax.Tuple(outs))
        bb.emit_func_output(result)
    return bb.get(), stats
