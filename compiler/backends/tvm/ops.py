"""Lowering of each IR op to Relax ops (NCHW, as the IR), and of weight encodings to Relax expressions.

Codebook weights stay compressed in the module: byte indices + table decoded with `take` at run time
(no FoldConstant in our pipeline, so the decode is not folded back into a dense constant); int8
weights stay int8 with a per-channel scale multiply. Block-sparse weights are densified: Relax in
TVM 0.27 has no BSR operator in its default lowering (the BSR path was Relay's), so they compile as dense.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tvm import relax
from tvm.relax import op as R

from edgefit.compiler.encodings import Codebook, Int8PerChannel, WeightEncoding
from edgefit.compiler.ir import Node
from edgefit.errors import UserError

Emit = Callable[[relax.Expr], relax.Expr]


def weight(
    emit: Emit, enc: WeightEncoding, densify_codebooks: bool, stats: dict, transpose: bool = False
) -> relax.Expr:
    """The decoded weight; `transpose` gives a linear weight as [K, O] (done on the stored arrays:
    without FoldConstant a permute_dims of a constant would run on every inference)."""

    def lay(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.T if transpose else a)

    rows = (1, -1) if transpose else (-1,) + (1,) * (len(enc.shape) - 1)
    if isinstance(enc, Codebook) and not densify_codebooks:
        entries = 2**enc.bits
        codes = enc.group.astype(np.int64)[:, None] * entries + enc.indices().astype(np.int64)
        dtype = "uint8" if enc.table.size <= 256 else "int16"
        idx = emit(R.astype(relax.const(lay(codes.reshape(enc.shape).astype(dtype))), "int32"))
        w = emit(R.take(relax.const(enc.table.reshape(-1).astype(np.float32)), idx, axis=0))
        stats["codebook_layers"] += 1
        if not np.all(enc.row_scale == 1):
            w = emit(R.multiply(w, relax.const(enc.row_scale.reshape(rows).astype(np.float32))))
        return w
    if isinstance(enc, Int8PerChannel):
        stats["int8_layers"] += 1
        scale = relax.const(enc.scale.reshape(rows).astype(np.float32))
        return emit(R.multiply(emit(R.astype(relax.const(lay(enc.q)), "float32")), scale))
    return relax.const(lay(enc.to_dense().astype(np.float32)))


def activation(emit: Emit, x: relax.Expr, act: str) -> relax.Expr:
    if act == "none":
        return x
    if act == "relu":
        return emit(R.nn.relu(x))
    if act == "relu6":
        return emit(R.clip(x, 0.0, 6.0))
    if act == "hardswish":
        gate = emit(R.clip(emit(R.add(x, relax.const(3.0, "float32"))), 0.0, 6.0))
        return emit(R.multiply(x, emit(R.divide(gate, relax.const(6.0, "float32")))))
    raise UserError(f"TVM backend: unknown activation {act!r}")


def lower_node(emit: Emit, node: Node, args: list[relax.Expr], shapes: dict) -> relax.Expr:
    """The Relax expression for one node; `args` are its inputs (weights already decoded)."""
    a = node.attr
    if node.op == "conv2d":
        y = emit(
            R.nn.conv2d(
                args[0],
                args[1],
                strides=tuple(a("stride", (1, 1))),
                padding=tuple(a("padding", (0, 0, 0, 0))),
                dilation=tuple(a("dilation", (1, 1))),
                groups=int(a("groups", 1)),
            )
        )
        if len(args) > 2:
            y = emit(R.add(y, emit(R.reshape(args[2], (1, -1, 1, 1)))))
        return activation(emit, y, a("act", "none"))
    if node.op == "linear":
        y = emit(R.matmul(args[0], args[1]))  # weight already [K, O] (see `weight`)
        if len(args) > 2:
            y = emit(R.add(y, args[2]))
        return activation(emit, y, a("act", "none"))
    if node.op == "channel_affine":
        rank = len(shapes[node.inputs[0]])
        bshape = (1, -1) + (1,) * (rank - 2)
        y = emit(R.multiply(args[0], emit(R.reshape(args[1], bshape))))
        return activation(emit, emit(R.add(y, emit(R.reshape(args[2], bshape)))), a("act", "none"))
    if node.op in ("relu", "relu6", "hardswish"):
        return activation(emit, args[0], node.op)
    if node.op == "add":
        return activation(emit, emit(R.add(args[0], args[1])), a("act", "none"))
    if node.op == "concat":
        return emit(R.concat(args, axis=int(a("axis", 1))))
    if node.op in ("max_pool2d", "avg_pool2d"):
        kernel = tuple(a("kernel"))
        fn = R.nn.max_pool2d if node.op == "max_pool2d" else R.nn.avg_pool2d
        return emit(
            fn(
                args[0],
                pool_size=kernel,
                strides=tuple(a("stride", kernel)),
                padding=tuple(a("padding", (0, 0, 0, 0))),
                ceil_mode=bool(a("ceil_mode", 0)),
                count_include_pad=bool(a("count_include_pad", 1)),
            )
        )
    if node.op == "global_avg_pool":
        return emit(R.mean(args[0], axis=[2, 3], keepdims=True))
    if node.op == "reshape":
        return emit(R.reshape(args[0], tuple(int(d) for d in a("shape"))))
    if node.op == "softmax":
        return emit(R.nn.softmax(args[0], axis=int(a("axis", -1))))
    if node.op in ("quantize", "dequantize"):
        rank = len(shapes[node.inputs[0]])
        scale = np.asarray(a("scale"), dtype=np.float32)
        zp = np.asarray(a("zero_point"), dtype=np.float32)
        if scale.size > 1:
            bshape = [1] * rank
            bshape[int(a("axis", 1))] = scale.size
            scale, zp = scale.reshape(bshape), zp.reshape(bshape)
        if node.op == "dequantize":
            centered = emit(R.subtract(emit(R.astype(args[0], "float32")), relax.const(zp)))
            return emit(R.multiply(centered, relax.const(scale)))
        # round(x / scale) with ties to even (docs/ops.md), + zp, clamp to u8.
        q = emit(R.add(emit(R.round(emit(R.divide(args[0], relax.const(scale))))), relax.const(zp)))
        return emit(R.astype(emit(R.clip(q, 0.0, 255.0)), "uint8"))
    raise UserError(f"TVM backend cannot express op {node.op!r} (node {node.name!r})")
