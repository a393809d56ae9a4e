"""Lowering of max_pool2d / avg_pool2d (MAX_POOL_2D, AVERAGE_POOL_2D, PAD/PADV2) and global_avg_pool (MEAN)."""

from __future__ import annotations

import numpy as np
import tflite

from edgefit.compiler.backends.tflite import options
from edgefit.compiler.backends.tflite.context import Lowering
from edgefit.compiler.backends.tflite.layout import padding_mode
from edgefit.compiler.backends.tflite.ops_conv import explicit_pad
from edgefit.compiler.ir import Node

OP = tflite.BuiltinOperator


def _geometry(ctx: Lowering, node: Node):
    x, out = node.inputs[0], node.outputs[0]
    _, _, h, w = ctx.graph.values[x].shape
    _, _, ho, wo = ctx.graph.values[out].shape
    kernel = tuple(int(k) for k in node.attr("kernel"))
    stride = tuple(int(s) for s in node.attr("stride", kernel))
    top, left, bottom, right = (int(p) for p in node.attr("padding", (0, 0, 0, 0)))
    # ceil_mode: extra bottom/right padding so the floor formula of a VALID pool gives torch's size.
    bottom_c = max(bottom, (ho - 1) * stride[0] + kernel[0] - h - top)
    right_c = max(right, (wo - 1) * stride[1] + kernel[1] - w - left)
    return x, out, (h, w), kernel, stride, (top, left, bottom, right), (top, left, bottom_c, right_c)


def max_pool2d(ctx: Lowering, node: Node) -> None:
    x, out, hw, kernel, stride, _, pad = _geometry(ctx, node)
    mode = padding_mode(hw, kernel, stride, pad)
    if mode == "EXPLICIT":
        # Padding never wins the max: pad with the lowest value instead of zeros.
        src, mode = explicit_pad(ctx, x, pad, value=float(np.finfo(np.float32).min)), "VALID"
    else:
        src = ctx.tensor(x)
    ctx.model.op(OP.MAX_POOL_2D, [src], [ctx.tensor(out)], options.pool(mode, kernel, stride))


def avg_pool2d(ctx: Lowering, node: Node) -> None:
    x, out, hw, kernel, stride, pad, pad_c = _geometry(ctx, node)
    include = bool(node.attr("count_include_pad", 1))
    if pad_c != pad and any(pad):
        raise ctx.unsupported(
            node, "ceil_mode together with padding (the divisor of the edge windows differs)"
        )
    mode = padding_mode(hw, kernel, stride, pad_c)
    if mode == "EXPLICIT" or (mode == "SAME" and include):
        if not include:
            raise ctx.unsupported(node, f"count_include_pad=0 with padding {pad} that is not TFLite's SAME")
        src, mode = explicit_pad(ctx, x, pad_c), "VALID"
    else:
        src = ctx.tensor(x)
    ctx.model.op(OP.AVERAGE_POOL_2D, [src], [ctx.tensor(out)], options.pool(mode, kernel, stride))


def global_avg_pool(ctx: Lowering, node: Node) -> None:
    axes = ctx.model.by_name.get("mean_axes_hw")
    if axes is None:
        axes = ctx.model.constant("mean_axes_hw", np.array([1, 2], dtype=np.int32))
    ctx.model.op(
        OP.MEAN,
        [ctx.tensor(node.inputs[0]), axes],
        [ctx.tensor(node.outputs[0])],
        options.reducer(keep_dims=True),
    )
