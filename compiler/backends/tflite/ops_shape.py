"""Lowering of reshape (RESHAPE; flattening into a linear layer permutes its weight columns instead of
transposing) and concat (CONCATENATION on the NHWC axis)."""

from __future__ import annotations

import numpy as np
import tflite

from edgefit.compiler.backends.tflite import options
from edgefit.compiler.backends.tflite.context import Lowering
from edgefit.compiler.backends.tflite.layout import flatten_permutation, nhwc_axis, nhwc_shape
from edgefit.compiler.ir import Node

OP = tflite.BuiltinOperator


def _shape_const(ctx: Lowering, shape) -> int:
    name = "shape_" + "x".join(str(d) for d in shape)
    if name in ctx.model.by_name:
        return ctx.model.by_name[name]
    return ctx.model.constant(name, np.array(shape, dtype=np.int32))


def _transpose(ctx: Lowering, src: int, name: str, perm: tuple[int, ...], like: str) -> int:
    shape = ctx.model.tensors[src].shape
    quant = ctx.quant_of(name) if ctx.int8 else None
    out = ctx.model.activation(name, tuple(shape[p] for p in perm), ctx.act_dtype(like), quant)
    perm_i = ctx.model.constant(f"{name}/perm", np.array(perm, dtype=np.int32))
    ctx.model.op(OP.TRANSPOSE, [src, perm_i], [out], options.transpose)
    return out


def reshape(ctx: Lowering, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    in_shape = ctx.graph.values[x].shape
    out_shape = ctx.graph.values[out].shape
    src = ctx.tensor(x)
    if len(in_shape) == 4 and len(out_shape) == 2 and in_shape[2] * in_shape[3] > 1:
        users = ctx.graph.consumers().get(out, [])
        weights = [u.inputs[1] for u in users if u.op == "linear" and u.inputs[0] == out]
        if users and len(weights) == len(users) and all(w in ctx.graph.constants for w in weights):
            # Flatten into linear layers only: flatten NHWC as is, reorder the layers' weight columns.
            perm = flatten_permutation(*in_shape[1:])
            ctx.column_perm.update({w: perm for w in weights})
            ctx.model.op(OP.RESHAPE, [src, _shape_const(ctx, out_shape)], [ctx.tensor(out)], options.reshape)
            return
    if len(in_shape) == 4 and in_shape[2] * in_shape[3] > 1:
        # Row-major NCHW order is what the IR means: back to NCHW first (the rare case with a TRANSPOSE).
        src = _transpose(ctx, src, f"{out}/nchw_in", (0, 3, 1, 2), x)
    if len(out_shape) == 4 and out_shape[2] * out_shape[3] > 1:
        mid = ctx.helper(f"{out}/nchw_out", out)
        ctx.model.tensors[mid].shape = tuple(out_shape)
        ctx.model.op(OP.RESHAPE, [src, _shape_const(ctx, out_shape)], [mid], options.reshape)
        dst = ctx.tensor(out)
        perm_i = ctx.model.constant(f"{out}/perm", np.array((0, 2, 3, 1), dtype=np.int32))
        ctx.model.op(OP.TRANSPOSE, [mid, perm_i], [dst], options.transpose)
        return
    target = nhwc_shape(out_shape)
    ctx.model.op(OP.RESHAPE, [src, _shape_const(ctx, target)], [ctx.tensor(out)], options.reshape)


def concat(ctx: Lowering, node: Node) -> None:
    rank = len(ctx.graph.values[node.outputs[0]].shape)
    axis = nhwc_axis(int(node.attr("axis", 1)), rank)
    srcs = [ctx.tensor(n) for n in node.inputs]
    ctx.model.op(OP.CONCATENATION, srcs, [ctx.tensor(node.outputs[0])], options.concat(axis))
