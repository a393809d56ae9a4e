"""NCHW (the IR) -> NHWC (TFLite) layout rules: activation shapes, axes, weight layouts, SAME padding.

The .tflite model is NHWC throughout, inputs included; `run_tflite` transposes numpy arrays at the
boundary so no TRANSPOSE op sits inside the graph (reshapes that flatten spatial maps into a linear
layer permute that layer's weight columns instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def nhwc_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """TFLite shape of an IR activation: rank-4 tensors become NHWC, others keep their shape."""
    shape = tuple(int(d) for d in shape)
    return (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else shape


def nhwc_axis(axis: int, rank: int) -> int:
    axis = axis % rank
    return (0, 3, 1, 2)[axis] if rank == 4 else axis


def to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def to_nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def conv_weight(w: np.ndarray, depthwise: bool) -> np.ndarray:
    """[O, I, kh, kw] -> OHWI (CONV_2D) or 1HWO (DEPTHWISE_CONV_2D, I == 1)."""
    return np.ascontiguousarray(w.transpose(1, 2, 3, 0) if depthwise else w.transpose(0, 2, 3, 1))


def flatten_permutation(c: int, h: int, w: int) -> np.ndarray:
    """Column order that makes a linear layer read an NHWC-flattened map as the NCHW flatten it was
    trained on: new_weight[:, j] = weight[:, perm[j]]."""
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding TFLite's SAME uses on one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def padding_mode(
    hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pad: Sequence[int],
    dilation: tuple[int, int] = (1, 1),
) -> str:
    """'VALID', 'SAME' or 'EXPLICIT' (needs a PAD op) for IR padding (top, left, bottom, right)."""
    top, left, bottom, right = (int(p) for p in pad)
    if top == left == bottom == right == 0:
        return "VALID"
    sh = same_padding(hw[0], kernel[0], stride[0], dilation[0])
    sw = same_padding(hw[1], kernel[1], stride[1], dilation[1])
    if (top, bottom) == sh and (left, right) == sw:
        return "SAME"
    return "EXPLICIT"
