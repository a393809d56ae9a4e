"""Lowering of relu/relu6/hardswish, add, channel_affine (MUL + ADD), softmax, quantize/dequantize."""

from __future__ import annotations

import numpy as np
import tflite

from edgefit.compiler.backends.tflite import options
from edgefit.compiler.backends.tflite.context import Lowering
from edgefit.compiler.backends.tflite.flatmodel import Quant
from edgefit.compiler.backends.tflite.layout import nhwc_axis, nhwc_shape
from edgefit.compiler.ir import Node

OP = tflite.BuiltinOperator
UNARY = {"relu": OP.RELU, "relu6": OP.RELU6, "hardswish": OP.HARD_SWISH}


def unary(ctx: Lowering, node: Node) -> None:
    ctx.model.op(UNARY[node.op], [ctx.tensor(node.inputs[0])], [ctx.tensor(node.outputs[0])])


def add(ctx: Lowering, node: Node) -> None:
    a, b = (ctx.tensor(n) for n in node.inputs)
    ctx.with_act(
        node.outputs[0],
        node.attr("act", "none"),
        lambda dst, act: ctx.model.op(OP.ADD, [a, b], [dst], options.add(act)),
    )


def channel_affine(ctx: Lowering, node: Node) -> None:
    x, scale_name, shift_name = node.inputs
    rank = len(ctx.graph.values[x].shape)
    if rank not in (2, 4):
        raise ctx.unsupported(node, f"rank-{rank} input (channels must be the last NHWC axis: rank 2 or 4)")
    scale = ctx.graph.constants[scale_name].to_dense().astype(np.float32).reshape(-1)
    shift = ctx.graph.constants[shift_name].to_dense().astype(np.float32).reshape(-1)
    if ctx.int8:
        _channel_affine_int8(ctx, node, scale, shift)
        return
    # Channels are the innermost NHWC axis, so [C] constants broadcast without any reshape.
    src = ctx.tensor(x)
    scaled = ctx.helper(f"{node.outputs[0]}/scaled", x)
    ctx.model.op(OP.MUL, [src, ctx.model.constant(scale_name, scale)], [scaled], options.mul(0))
    shift_i = ctx.model.constant(shift_name, shift)
    ctx.with_act(
        node.outputs[0],
        node.attr("act", "none"),
        lambda dst, act: ctx.model.op(OP.ADD, [scaled, shift_i], [dst], options.add(act)),
    )


def _channel_affine_int8(ctx: Lowering, node: Node, scale: np.ndarray, shift: np.ndarray) -> None:
    """int8: a 1x1 depthwise convolution (per-channel int8 scale as weight, int32 shift as bias)
    keeps per-channel exactness that an int8 MUL with one scale for the whole constant would lose."""
    from edgefit.compiler.backends.tflite.ops_conv import conv2d
    from edgefit.compiler.encodings import Dense
    from edgefit.compiler.ir import Value

    x, out = node.inputs[0], node.outputs[0]
    shape = ctx.graph.values[x].shape
    if len(shape) != 4:
        raise ctx.unsupported(node, "int8 channel_affine on a rank-2 input")
    c = shape[1]
    weights = {f"{node.name}/dw_w": Dense(scale.reshape(c, 1, 1, 1)), f"{node.name}/dw_b": Dense(shift)}
    values = dict(ctx.graph.values)
    values.update({k: Value(k, v.shape) for k, v in weights.items()})
    consts = dict(ctx.graph.constants, **weights)
    saved = ctx.graph
    ctx.graph = saved.with_nodes(saved.nodes, values=values, constants=consts)
    try:
        conv2d(
            ctx,
            Node("conv2d", node.name, (x, *weights), (out,), {"groups": c, "act": node.attr("act", "none")}),
        )
    finally:
        ctx.graph = saved


def softmax(ctx: Lowering, node: Node) -> None:
    x = node.inputs[0]
    rank = len(ctx.graph.values[x].shape)
    if nhwc_axis(int(node.attr("axis", -1)), rank) != rank - 1:
        raise ctx.unsupported(node, "softmax over an axis that is not innermost in NHWC")
    ctx.model.op(OP.SOFTMAX, [ctx.tensor(x)], [ctx.tensor(node.outputs[0])], options.softmax())


def _u8_quant(ctx: Lowering, node: Node) -> Quant:
    scale, zp = list(node.attr("scale")), list(node.attr("zero_point"))
    if len(scale) != 1:
        raise ctx.unsupported(node, "per-channel activation quantization (TFLite QUANTIZE is per-tensor)")
    return Quant([float(scale[0])], [int(zp[0])])


def _u8_tensor(ctx: Lowering, name: str, quant: Quant) -> int:
    if name in ctx.model.by_name:
        return ctx.model.by_name[name]
    return ctx.model.activation(name, nhwc_shape(ctx.graph.values[name].shape), np.uint8, quant)


def quantize(ctx: Lowering, node: Node) -> None:
    """f32 -> u8 (or int8 -> u8, a requantization, in an int8 model)."""
    src = ctx.tensor(node.inputs[0])
    ctx.model.op(OP.QUANTIZE, [src], [_u8_tensor(ctx, node.outputs[0], _u8_quant(ctx, node))])


def dequantize(ctx: Lowering, node: Node) -> None:
    """u8 -> f32 (or u8 -> int8 via QUANTIZE in an int8 model)."""
    src = _u8_tensor(ctx, node.inputs[0], _u8_quant(ctx, node))
    code = OP.QUANTIZE if ctx.int8 else OP.DEQUANTIZE
    ctx.model.op(code, [src], [ctx.tensor(node.outputs[0])])
