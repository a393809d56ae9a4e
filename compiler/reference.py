"""The numpy reference interpreter: the executable definition of every op in docs/ops.md.

Simple and exact rather than fast: products accumulate in float64 and every op's result is
rounded to its declared dtype (f32 activations, u8 around the bottleneck). Tests, calibration and
the compile-time check against PyTorch run on it; backends are judged against it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgefit.compiler.ir import Graph, Node

NP_DTYPES = {"f32": np.float32, "f16": np.float16, "i8": np.int8, "u8": np.uint8, "i32": np.int32}


def run(graph: Graph, inputs: Mapping[str, np.ndarray], keep_all: bool = False) -> dict[str, np.ndarray]:
    """Execute `graph` on `inputs` (keyed by graph input name); returns the graph outputs, or every
    input and node output when `keep_all` (int8 calibration reads the intermediate ranges)."""
    env: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        if name not in inputs:
            raise ValueError(f"missing graph input {name!r} (graph inputs: {', '.join(graph.inputs)})")
        value = graph.values[name]
        arr = np.asarray(inputs[name])
        if tuple(arr.shape) != value.shape:
            raise ValueError(f"input {name!r} has shape {tuple(arr.shape)}, the graph expects {value.shape}")
        env[name] = arr.astype(NP_DTYPES[value.dtype], copy=False)
    dense: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        args = []
        for name in node.inputs:
            if name in env:
                args.append(env[name])
            else:
                if name not in dense:
                    dense[name] = graph.constants[name].to_dense()
                args.append(dense[name])
        results = evaluate(node, args)
        for name, result in zip(node.outputs, results, strict=True):
            value = graph.values[name]
            if tuple(result.shape) != value.shape:
                raise ValueError(
                    f"node {node.name!r} ({node.op}) produced {name!r} with shape {tuple(result.shape)}, "
                    f"the graph declares {value.shape}"
                )
            env[name] = result.astype(NP_DTYPES[value.dtype], copy=False)
    if keep_all:
        return dict(env)
    return {name: env[name] if name in env else graph.constants[name].to_dense() for name in graph.outputs}


def evaluate(node: Node, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The outputs of one node applied to concrete input arrays (also used by constant folding)."""
    impl = _OPS.get(node.op)
    if impl is None:
        raise ValueError(f"the reference interpreter has no op {node.op!r}")
    out = impl(node, *args)
    return [out]


# --- activations -------------------------------------------------------------------------------


def apply_act(x: np.ndarray, act: str) -> np.ndarray:
    """The fused activation `act` of docs/ops.md applied elementwise (dtype kept)."""
    if act == "none":
        return x
    if act == "relu":
        return np.maximum(x, 0).astype(x.dtype)
    if act == "relu6":
        return np.clip(x, 0, 6).astype(x.dtype)
    if act == "hardswish":
        return (x * np.clip(x + 3, 0, 6) / 6).astype(x.dtype)
    raise ValueError(f"unknown activation {act!r}")


def _f32(x: np.ndarray, node: Node) -> np.ndarray:
    return apply_act(np.asarray(x, dtype=np.float32), node.attr("act", "none"))


# --- convolution and linear --------------------------------------------------------------------


def conv2d_f64(
    x: np.ndarray,
    w: np.ndarray,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    """Cross-correlation as torch.nn.functional.conv2d, padding (top, left, bottom, right), in f64."""
    n, c, _, _ = x.shape
    co, cig, kh, kw = w.shape
    if c != cig * groups or co % groups:
        raise ValueError(f"conv2d: {c} input channels do not match weight {w.shape} with groups={groups}")
    top, left, bottom, right = padding
    (sh, sw), (dh, dw) = stride, dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    ho = (xp.shape[2] - eh) // sh + 1
    wo = (xp.shape[3] - ew) // sw + 1
    win = sliding_window_view(xp, (eh, ew), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :ho, :wo]
    win = win.reshape(n, groups, cig, ho, wo, kh, kw)
    wg = w.astype(np.float64).reshape(groups, co // groups, cig, kh, kw)
    y = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return y.reshape(n, co, ho, wo)


def _conv2d(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    y = conv2d_f64(
        x,
        w,
        node.attr("stride", (1, 1)),
        node.attr("padding", (0, 0, 0, 0)),
        node.attr("dilation", (1, 1)),
        int(node.attr("groups", 1)),
    )
    if b is not None:
        y = y + b.astype(np.float64).reshape(1, -1, 1, 1)
    return _f32(y, node)


def _linear(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    y = x.astype(np.float64) @ w.astype(np.float64).T
    if b is not None:
        y = y + b.astype(np.float64)
    return _f32(y, node)


def _channel_affine(node: Node, x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = x.astype(np.float64) * scale.astype(np.float64).reshape(shape) + shift.astype(np.float64).reshape(
        shape
    )
    return _f32(y, node)


# --- elementwise and shape ops -----------------------------------------------------------------


def _relu(node: Node, x: np.ndarray) -> np.ndarray:
    return apply_act(x.astype(np.float32), "relu")


def _relu6(node: Node, x: np.ndarray) -> np.ndarray:
    return apply_act(x.astype(np.float32), "relu6")


def _hardswish(node: Node, x: np.ndarray) -> np.ndarray:
    return apply_act(x.astype(np.float32), "hardswish")


def _add(node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        raise ValueError(f"add: shapes {a.shape} and {b.shape} differ (add does not broadcast)")
    return _f32(a.astype(np.float32) + b.astype(np.float32), node)


def _concat(node: Node, *xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs, axis=int(node.attr("axis", 1)))


def _reshape(node: Node, x: np.ndarray) -> np.ndarray:
    return x.reshape(tuple(node.attr("shape")))


def _softmax(node: Node, x: np.ndarray) -> np.ndarray:
    axis = int(node.attr("axis", -1))
    z = x.astype(np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


# --- pooling -----------------------------------------------------------------------------------


def pool_out(size: int, kernel: int, stride: int, pad0: int, pad1: int, ceil_mode: bool) -> int:
    """Output length of a pooling window as torch computes it: with ceil_mode the last window may
    hang over the end but must start inside the input or the leading padding."""
    span = size + pad0 + pad1 - kernel
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad0:
        out -= 1
    return out


def _pool_geometry(node: Node, x: np.ndarray) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    kh, kw = node.attr("kernel")
    sh, sw = node.attr("stride", (kh, kw))
    top, left, bottom, right = node.attr("padding", (0, 0, 0, 0))
    ceil = bool(node.attr("ceil_mode", 0))
    ho = pool_out(x.shape[2], kh, sh, top, bottom, ceil)
    wo = pool_out(x.shape[3], kw, sw, left, right, ceil)
    return kh, kw, sh, sw, top, left, bottom, right, ho, wo


def _windows(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, ho: int, wo: int) -> np.ndarray:
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :ho, :wo]


def _max_pool2d(node: Node, x: np.ndarray) -> np.ndarray:
    kh, kw, sh, sw, top, left, _, _, ho, wo = _pool_geometry(node, x)
    # Pad with -inf up to the last window's end so padding never wins the max.
    need_h = max(0, (ho - 1) * sh + kh - x.shape[2] - top)
    need_w = max(0, (wo - 1) * sw + kw - x.shape[3] - left)
    xp = np.pad(
        x.astype(np.float32), ((0, 0), (0, 0), (top, need_h), (left, need_w)), constant_values=-np.inf
    )
    return _windows(xp, kh, kw, sh, sw, ho, wo).max(axis=(4, 5)).astype(np.float32)


def _avg_divisors(size: int, kernel: int, stride: int, pad0: int, pad1: int, out: int, include_pad: bool):
    start = np.arange(out) * stride - pad0
    end = np.minimum(start + kernel, size + pad1)
    with_pad = end - start  # torch counts padding but not the ceil_mode overhang
    clipped = np.minimum(end, size) - np.maximum(start, 0)
    return with_pad if include_pad else clipped


def _avg_pool2d(node: Node, x: np.ndarray) -> np.ndarray:
    kh, kw, sh, sw, top, left, bottom, right, ho, wo = _pool_geometry(node, x)
    include_pad = bool(node.attr("count_include_pad", 1))
    need_h = max(0, (ho - 1) * sh + kh - x.shape[2] - top)
    need_w = max(0, (wo - 1) * sw + kw - x.shape[3] - left)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, need_h), (left, need_w)))
    sums = _windows(xp, kh, kw, sh, sw, ho, wo).sum(axis=(4, 5))
    dh = _avg_divisors(x.shape[2], kh, sh, top, bottom, ho, include_pad)
    dw = _avg_divisors(x.shape[3], kw, sw, left, right, wo, include_pad)
    return (sums / (dh[:, None] * dw[None, :])).astype(np.float32)


def _global_avg_pool(node: Node, x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64).mean(axis=(2, 3), keepdims=True).astype(np.float32)


# --- quantization ------------------------------------------------------------------------------


def _qparams(node: Node, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    scale = np.asarray(node.attr("scale"), dtype=np.float32)
    zp = np.asarray(node.attr("zero_point"), dtype=np.int32)
    if scale.size > 1:  # per channel along `axis`
        shape = [1] * ndim
        shape[int(node.attr("axis", 1))] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return scale, zp


def _quantize(node: Node, x: np.ndarray) -> np.ndarray:
    scale, zp = _qparams(node, x.ndim)
    # f32 division then round-half-even (np.rint), as the runtimes do it.
    q = np.rint(x.astype(np.float32) / scale).astype(np.int64) + zp
    return np.clip(q, 0, 255).astype(np.uint8)


def _dequantize(node: Node, q: np.ndarray) -> np.ndarray:
    scale, zp = _qparams(node, q.ndim)
    return ((q.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


_OPS: Mapping[str, Callable[..., np.ndarray]] = {
    "conv2d": _conv2d,
    "linear": _linear,
    "channel_affine": _channel_affine,
    "relu": _relu,
    "relu6": _relu6,
    "hardswish": _hardswish,
    "add": _add,
    "concat": _concat,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "global_avg_pool": _global_avg_pool,
    "reshape": _reshape,
    "softmax": _softmax,
    "quantize": _quantize,
    "dequantize": _dequantize,
}
