"""`export_tflite`: lower an IR graph op by op into a FlatModel and write the .tflite file atomically.

int8 export first writes the fp32 model, runs the calibration batches through it with LiteRT
keeping every intermediate tensor, and then lowers again with per-tensor int8 activation ranges.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import tflite

from edgefit.compiler.artifact import atomic_write_bytes
from edgefit.compiler.backends.tflite import ops_conv, ops_elementwise, ops_pool, ops_shape
from edgefit.compiler.backends.tflite.context import Lowering
from edgefit.compiler.backends.tflite.flatmodel import FlatModel, Quant
from edgefit.compiler.ir import Graph, Node, verify
from edgefit.errors import UserError

OP = tflite.BuiltinOperator

LOWERINGS: dict[str, Callable[[Lowering, Node], None]] = {
    "conv2d": ops_conv.conv2d,
    "linear": ops_conv.linear,
    "relu": ops_elementwise.unary,
    "relu6": ops_elementwise.unary,
    "hardswish": ops_elementwise.unary,
    "add": ops_elementwise.add,
    "channel_affine": ops_elementwise.channel_affine,
    "softmax": ops_elementwise.softmax,
    "quantize": ops_elementwise.quantize,
    "dequantize": ops_elementwise.dequantize,
    "max_pool2d": ops_pool.max_pool2d,
    "avg_pool2d": ops_pool.avg_pool2d,
    "global_avg_pool": ops_pool.global_avg_pool,
    "reshape": ops_shape.reshape,
    "concat": ops_shape.concat,
}

#: How codebook weights are written (see `export_tflite`).
CODEBOOK_MODES = ("gather", "gather-u8", "densify")

#: Ops whose int8 kernels need the same scale on input and output: their tensors share one range.
SAME_SCALE = {
    OP.PAD,
    OP.PADV2,
    OP.MAX_POOL_2D,
    OP.AVERAGE_POOL_2D,
    OP.RESHAPE,
    OP.CONCATENATION,
    OP.TRANSPOSE,
}


def lower(
    graph: Graph,
    *,
    codebook: str = "gather",
    sparse: str = "densify-op",
    ranges: dict[str, tuple[float, float]] | None = None,
) -> Lowering:
    """The FlatModel (with stats) for `graph`; int8 when `ranges` gives activation ranges."""
    ctx = Lowering(graph, FlatModel(), codebook=codebook, sparse=sparse, ranges=ranges)
    if ranges is not None:
        for node in graph.iter_op("softmax"):
            for name in (node.outputs[0], f"{node.outputs[0]}/int8"):
                ctx.fixed[name] = Quant([1.0 / 256.0], [-128])
        _int8_boundaries(ctx)
    for node in graph.nodes:
        fn = LOWERINGS.get(node.op)
        if fn is None:
            raise UserError(f"TFLite backend cannot express op {node.op!r} (node {node.name!r})")
        fn(ctx, node)
    ctx.model.inputs = [ctx.model.by_name[n] for n in graph.inputs]
    outputs = []
    for name in graph.outputs:
        if ranges is not None and graph.values[name].dtype == "f32":
            # The int8 result goes out as float under the IR's name.
            i8 = ctx.aliases[name]
            out = ctx.model.activation(name, ctx.model.tensors[i8].shape)
            ctx.model.op(OP.DEQUANTIZE, [i8], [out])
            outputs.append(out)
        else:
            outputs.append(ctx.tensor(name))
    ctx.model.outputs = outputs
    return ctx


def _int8_boundaries(ctx: Lowering) -> None:
    """Float model inputs QUANTIZE into int8; f32 outputs are built as `<name>/int8` and dequantized."""
    from edgefit.compiler.backends.tflite.layout import nhwc_shape

    graph = ctx.graph
    for name in graph.inputs:
        if graph.values[name].dtype != "f32":
            continue
        shape = nhwc_shape(graph.values[name].shape)
        f = ctx.model.activation(name, shape)
        q = ctx.model.activation(f"{name}/int8", shape, np.int8, ctx.quant_of(name))
        ctx.model.op(OP.QUANTIZE, [f], [q])
        ctx.aliases[name] = q
    for name in graph.outputs:
        if graph.values[name].dtype == "f32" and name not in ctx.aliases:
            shape = nhwc_shape(graph.values[name].shape)
            ctx.aliases[name] = ctx.model.activation(f"{name}/int8", shape, np.int8, ctx.quant_of(name))


def calibrate(
    fp32: Lowering, model_bytes: bytes, batches: Iterable[Mapping[str, np.ndarray]]
) -> dict[str, tuple[float, float]]:
    """Min/max of every float activation of the fp32 model over the calibration batches (LiteRT
    without delegates so intermediate tensors survive), merged across same-scale ops."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgefit.compiler.backends.tflite.layout import to_nhwc

    interp = Interpreter(
        model_content=model_bytes,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    by_name = {d["name"]: d["index"] for d in interp.get_tensor_details()}
    # Decoded weights (DENSIFY/GATHER/DEQUANTIZE outputs) may be folded away; only activations matter.
    floats = [
        t.name for t in fp32.model.tensors if t.data is None and t.dtype == np.float32 and t.name in by_name
    ]
    lo: dict[str, float] = {n: np.inf for n in floats}
    hi: dict[str, float] = {n: -np.inf for n in floats}
    # PADV2 pads max pools with the lowest float: its output's range is its input's (joined below).
    padded = {fp32.model.tensors[op.outputs[0]].name for op in fp32.model.ops if op.code == OP.PADV2}
    observed = [n for n in floats if n not in padded]
    seen = 0
    for batch in batches:
        for d in interp.get_input_details():
            if d["name"] not in batch:
                raise UserError(f"calibration batch lacks input {d['name']!r}")
            interp.set_tensor(d["index"], to_nhwc(np.asarray(batch[d["name"]])).astype(d["dtype"]))
        interp.invoke()
        for name in observed:
            v = interp.get_tensor(by_name[name])
            lo[name] = min(lo[name], float(v.min()))
            hi[name] = max(hi[name], float(v.max()))
        seen += 1
    if not seen:
        raise UserError("int8 export needs at least one calibration batch")
    # Union of ranges over tensors tied together by same-scale ops.
    parent = {n: n for n in floats}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    tensors = fp32.model.tensors
    for op in fp32.model.ops:
        if op.code not in SAME_SCALE:
            continue
        names = [
            tensors[i].name
            for i in (*op.inputs, *op.outputs)
            if tensors[i].data is None and tensors[i].name in parent
        ]
        for other in names[1:]:
            parent[find(other)] = find(names[0])
    groups: dict[str, tuple[float, float]] = {}
    for n in floats:
        r = find(n)
        g = groups.get(r, (np.inf, -np.inf))
        groups[r] = (min(g[0], lo[n]), max(g[1], hi[n]))
    ranges = {n: groups[find(n)] for n in floats}
    ranges.update({f"{n}/int8": ranges[n] for n in fp32.graph.inputs + fp32.graph.outputs if n in ranges})
    return ranges


def export_tflite(
    graph: Graph,
    path: str | os.PathLike,
    *,
    int8_calibration: Iterable[Mapping[str, np.ndarray]] | None = None,
    codebook: str = "gather",
    sparse: str = "densify-op",
) -> dict:
    """Write `graph` as a .tflite flatbuffer (NHWC inside; see `run_tflite` for NCHW numpy I/O).

    codebook: "gather" keeps codebook weights as indices + table decoded by GATHER on every invoke
    (small file, decode cost, no XNNPACK for that layer), 2/3/4-bit indices packed two or four per
    byte and GATHERed byte-wise from a 256-row expanded table where that is smaller (`byte_table`);
    "gather-u8" stores one byte per index (CAST + GATHER); "densify" stores dense floats (largest
    file, XNNPACK speed). README.md (TFLite codebook weights) has the size/latency numbers.
    sparse: "densify-op" stores block-sparse weights as TFLite sparse tensors behind DENSIFY (what
    XNNPACK's sparse inference keys on); "dense" stores them dense.
    Returns stats: bytes, ops used, sparse_densify, sparse_tensors, gather_tensors,
    packed_gather_tensors, int8."""
    if codebook not in CODEBOOK_MODES:
        raise UserError(f"codebook must be one of {', '.join(CODEBOOK_MODES)}, got {codebook!r}")
    if sparse not in ("densify-op", "dense"):
        raise UserError(f"sparse must be 'densify-op' or 'dense', got {sparse!r}")
    verify(graph)
    ctx = lower(graph, codebook=codebook, sparse=sparse)
    data = ctx.model.serialize()
    if int8_calibration is not None:
        ranges = calibrate(ctx, data, int8_calibration)
        ctx = lower(graph, codebook=codebook, sparse=sparse, ranges=ranges)
        data = ctx.model.serialize()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return {
        "path": str(path),
        "bytes": len(data),
        "ops": ctx.model.opcodes_used(),
        "sparse_densify": ctx.stats["sparse_tensors"] > 0,
        "sparse_tensors": ctx.stats["sparse_tensors"],
        "gather_tensors": ctx.stats["gather_tensors"],
        "packed_gather_tensors": ctx.stats["packed_gather_tensors"],
        "int8": int8_calibration is not None,
    }
