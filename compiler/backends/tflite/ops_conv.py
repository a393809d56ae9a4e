"""Lowering of conv2d (CONV_2D / DEPTHWISE_CONV_2D, PAD for torch-style padding) and linear (FULLY_CONNECTED)."""

from __future__ import annotations

import numpy as np
import tflite

from edgefit.compiler.backends.tflite import options
from edgefit.compiler.backends.tflite.context import Lowering
from edgefit.compiler.backends.tflite.flatmodel import Quant
from edgefit.compiler.backends.tflite.layout import conv_weight, padding_mode
from edgefit.compiler.backends.tflite.weights import weight_tensor
from edgefit.compiler.ir import Node

OP = tflite.BuiltinOperator


def explicit_pad(ctx: Lowering, x: str, pad: tuple[int, int, int, int], value: float | None = None) -> int:
    """PAD (zeros) or PADV2 (`value`) an NHWC activation by IR padding (top, left, bottom, right)."""
    top, left, bottom, right = pad
    n, c, h, w = ctx.graph.values[x].shape
    name = f"{x}/pad{top}{left}{bottom}{right}" + ("" if value is None else "/v2")
    if name in ctx.model.by_name:
        return ctx.model.by_name[name]
    src = ctx.tensor(x)
    quant = ctx.quant_of(name) if ctx.int8 else None
    out = ctx.model.activation(name, (n, h + top + bottom, w + left + right, c), ctx.act_dtype(x), quant)
    paddings = ctx.model.constant(
        f"{name}/paddings", np.array([[0, 0], [top, bottom], [left, right], [0, 0]], dtype=np.int32)
    )
    if value is None:
        ctx.model.op(OP.PAD, [src, paddings], [out], options.pad)
    else:
        if ctx.int8:
            const = ctx.model.constant(f"{name}/value", np.array([-128], dtype=np.int8), quant)
        else:
            const = ctx.model.constant(f"{name}/value", np.array([value], dtype=np.float32))
        ctx.model.op(OP.PADV2, [src, paddings, const], [out], options.padv2)
    return out


def _bias(ctx: Lowering, node: Node, x_index: int, w_scale: np.ndarray | None, channels: int) -> int:
    bias = (
        ctx.graph.constants[node.inputs[2]].to_dense().astype(np.float32)
        if len(node.inputs) > 2
        else np.zeros(channels, dtype=np.float32)
    )
    name = node.inputs[2] if len(node.inputs) > 2 else f"{node.name}/zero_bias"
    if not ctx.int8:
        return ctx.model.constant(name, bias)
    x_scale = ctx.model.tensors[x_index].quant.scale[0]
    scale = (x_scale * w_scale).astype(np.float64)
    q = np.clip(np.round(bias / scale), -(2**31), 2**31 - 1).astype(np.int32)
    return ctx.model.constant(name, q, Quant(scale.tolist(), [0] * channels))


def _w_scale(ctx: Lowering, w_index: int) -> np.ndarray | None:
    quant = ctx.model.tensors[w_index].quant
    return np.asarray(quant.scale, dtype=np.float64) if ctx.int8 else None


def conv2d(ctx: Lowering, node: Node) -> None:
    x, wname = node.inputs[0], node.inputs[1]
    out = node.outputs[0]
    _, ci, h, w = ctx.graph.values[x].shape
    enc = ctx.graph.constants.get(wname)
    if enc is None:
        raise ctx.unsupported(node, "the weight must be a constant")
    co, _, kh, kw = enc.shape
    groups = int(node.attr("groups", 1))
    stride = tuple(int(s) for s in node.attr("stride", (1, 1)))
    dilation = tuple(int(d) for d in node.attr("dilation", (1, 1)))
    pad = tuple(int(p) for p in node.attr("padding", (0, 0, 0, 0)))
    depthwise = groups > 1
    if depthwise and not (groups == ci and co % ci == 0):
        raise ctx.unsupported(node, f"grouped convolution with groups={groups} (only 1 or depthwise)")
    mode = padding_mode((h, w), (kh, kw), stride, pad, dilation)
    src = explicit_pad(ctx, x, pad) if mode == "EXPLICIT" else ctx.tensor(x)
    mode = "VALID" if mode == "EXPLICIT" else mode
    wi = weight_tensor(ctx, wname, enc, lambda a: conv_weight(a, depthwise), 3 if depthwise else 0)
    bi = _bias(ctx, node, src, _w_scale(ctx, wi), co)

    def emit(dst: int, act: int) -> None:
        if depthwise:
            opts = options.depthwise(mode, stride, dilation, co // ci, act)
            ctx.model.op(OP.DEPTHWISE_CONV_2D, [src, wi, bi], [dst], opts, version=2)
        else:
            ctx.model.op(OP.CONV_2D, [src, wi, bi], [dst], options.conv2d(mode, stride, dilation, act))

    ctx.with_act(out, node.attr("act", "none"), emit)


def linear(ctx: Lowering, node: Node) -> None:
    x, wname = node.inputs[0], node.inputs[1]
    enc = ctx.graph.constants.get(wname)
    if enc is None:
        raise ctx.unsupported(node, "the weight must be a constant")
    if len(ctx.graph.values[x].shape) != 2:
        raise ctx.unsupported(node, "input must be 2-D [N, K]")
    perm = ctx.column_perm.get(wname)
    src = ctx.tensor(x)
    wi = weight_tensor(ctx, wname, enc, (lambda a: a[:, perm]) if perm is not None else (lambda a: a), 0)
    bi = _bias(ctx, node, src, _w_scale(ctx, wi), enc.shape[0])

    def emit(dst: int, act: int) -> None:
        ctx.model.op(OP.FULLY_CONNECTED, [src, wi, bi], [dst], options.fully_connected(act))

    ctx.with_act(node.outputs[0], node.attr("act", "none"), emit)
