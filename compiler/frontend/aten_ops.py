"""One small converter per ATen op family: exported ATen call -> edgefit IR node(s).

Converters receive the op's arguments bound by schema name (tensors already turned into symbols,
see builder.py) and return the symbol of the result. Anything outside docs/ops.md raises
`Unsupported` with the reason; ops without a converter are reported by the caller.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import fx

from edgefit.compiler.frontend.builder import Builder, Const, Padded, Sym, Unsupported

aten = torch.ops.aten
Converter = Callable[[Builder, fx.Node, dict[str, Any]], Any]


def bind(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by schema name, defaults filled in."""
    bound: dict[str, Any] = {}
    for i, arg in enumerate(target._schema.arguments):
        if i < len(args):
            bound[arg.name] = args[i]
        elif arg.name in kwargs:
            bound[arg.name] = kwargs[arg.name]
        else:
            bound[arg.name] = arg.default_value if arg.has_default_value() else None
    return bound


def out_shape(node: fx.Node, index: int | None = None) -> tuple[int, ...]:
    val = node.meta["val"]
    if index is not None:
        val = val[index]
    return tuple(int(d) for d in val.shape)


def _pair(v: Any, default: tuple[int, int] | None = None) -> tuple[int, int]:
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        if default is None:
            raise Unsupported("missing size argument")
        return default
    if isinstance(v, int):
        return (v, v)
    if len(v) == 1:
        return (int(v[0]), int(v[0]))
    if len(v) != 2:
        raise Unsupported(f"expected 2 spatial sizes, got {list(v)}")
    return (int(v[0]), int(v[1]))


def _shape(b: Builder, sym: Sym) -> tuple[int, ...]:
    return tuple(sym.tensor.shape) if isinstance(sym, Const) else b.values[_activation(sym)].shape


def _activation(sym: Any, what: str = "input") -> str:
    if isinstance(sym, Padded):
        raise Unsupported(f"the {what} is zero-padded; explicit padding is supported only before a conv2d")
    if isinstance(sym, Const):
        raise Unsupported(f"the {what} is a compile-time constant here; only activations are supported")
    if not isinstance(sym, str):
        raise Unsupported(f"the {what} is a {type(sym).__name__}, not a tensor")
    return sym


def _weight(sym: Any) -> Const:
    if not isinstance(sym, Const):
        raise Unsupported("the weight is computed from the input; only parameter weights are supported")
    return sym


# --- convolution and linear --------------------------------------------------------------------


def conv(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    x, extra = a["input"], (0, 0, 0, 0)
    if isinstance(x, Padded):  # F.pad / ZeroPad2d in front: fold into the conv's own padding
        x, extra = x.name, x.padding
    x, w = _activation(x), _weight(a["weight"])
    if w.tensor.ndim != 4:
        raise Unsupported(f"{w.tensor.ndim - 2}-d convolution; only 2-d convolutions are in the op set")
    if a.get("transposed"):
        raise Unsupported("transposed convolution")
    stride, dilation = _pair(a["stride"], (1, 1)), _pair(a["dilation"], (1, 1))
    pad = a["padding"]
    if isinstance(pad, str):  # the conv2d.padding overload: "valid" or "same"
        th, tw = (
            (0, 0)
            if pad == "valid"
            else (dilation[0] * (w.tensor.shape[2] - 1), dilation[1] * (w.tensor.shape[3] - 1))
        )
        padding = (th // 2, tw // 2, th - th // 2, tw - tw // 2)  # torch puts the odd extra at the end
    else:
        ph, pw = _pair(pad, (0, 0))
        padding = (ph, pw, ph, pw)
    padding = tuple(p + e for p, e in zip(padding, extra, strict=True))
    inputs: list[Sym] = [x, w] + ([a["bias"]] if a["bias"] is not None else [])
    return b.emit(
        "conv2d",
        inputs,
        out_shape(node),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=int(a["groups"]),
        act="none",
    )


def _linear_inputs(b: Builder, x: Any, w: Const, bias: Any) -> list[Sym]:
    x = _activation(x)
    if len(b.values[x].shape) != 2:
        raise Unsupported(f"linear on a {len(b.values[x].shape)}-d input; the op set's linear takes [N, K]")
    if w.tensor.ndim != 2:
        raise Unsupported("the weight is not a matrix")
    return [x, w] + ([bias] if bias is not None else [])


def linear(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    inputs = _linear_inputs(b, a["input"], _weight(a["weight"]), a["bias"])
    return b.emit("linear", inputs, out_shape(node), act="none")


def _untransposed(b: Builder, mat2: Any) -> Const:
    """The [O, K] weight of x @ mat2 where mat2 is [K, O]: the original of a transposed parameter."""
    mat2 = _weight(mat2)
    if mat2.transpose_of is not None:
        return mat2.transpose_of
    if mat2.fqn is not None and mat2.fqn in b.plan:
        raise Unsupported(
            f"the encoded weight {mat2.fqn} is used as x @ W; encode W.T (a linear layer's weight)"
        )
    return Const(mat2.tensor.t().contiguous(), f"{mat2.hint}.T")


def addmm(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    if a["beta"] != 1 or a["alpha"] != 1:
        raise Unsupported(f"beta={a['beta']}, alpha={a['alpha']}; only 1")
    bias = a["self"]
    if not isinstance(bias, Const) or bias.tensor.numel() != out_shape(node)[1]:
        raise Unsupported("the added term is not a per-output bias")
    if bias.tensor.ndim != 1:
        bias = Const(bias.tensor.reshape(-1), bias.hint)
    inputs = _linear_inputs(b, a["mat1"], _untransposed(b, a["mat2"]), bias)
    return b.emit("linear", inputs, out_shape(node), act="none")


def mm(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    x, w = (a["self"], a["mat2"]) if "mat2" in a else (a["self"], a["other"])
    if not isinstance(w, Const) or w.tensor.ndim != 2:
        raise Unsupported("only a 2-d input times a parameter matrix (a linear layer)")
    inputs = _linear_inputs(b, x, _untransposed(b, w), None)
    return b.emit("linear", inputs, out_shape(node), act="none")


# --- batch norm --------------------------------------------------------------------------------


def _bn_prefix(b: Builder, *stats: Any) -> str:
    for c in stats:
        if isinstance(c, Const) and c.fqn and "." in c.fqn:
            return c.fqn.rsplit(".", 1)[0]
    return b.module_path or b.fx_name


def batch_norm(b: Builder, node: fx.Node, a: dict[str, Any]) -> Any:
    if a.get("training"):
        raise Unsupported("batch norm in training mode; call model.eval()")
    x = _activation(a["input"])
    mean, var = a["running_mean"], a["running_var"]
    if not isinstance(mean, Const) or not isinstance(var, Const):
        raise Unsupported("batch norm without running statistics")
    channels = b.values[x].shape[1]
    w = b.array(a["weight"]).astype(np.float64) if a["weight"] is not None else np.ones(channels)
    bias = b.array(a["bias"]).astype(np.float64) if a["bias"] is not None else np.zeros(channels)
    scale = w / np.sqrt(b.array(var).astype(np.float64) + float(a["eps"]))
    shift = bias - b.array(mean).astype(np.float64) * scale
    prefix = _bn_prefix(b, mean, a["weight"])
    s = b.add_constant(f"{prefix}.scale", scale.astype(np.float32))
    t = b.add_constant(f"{prefix}.shift", shift.astype(np.float32))
    multi = isinstance(node.meta["val"], (tuple, list))
    y = b.emit("channel_affine", [x, s, t], out_shape(node, 0 if multi else None), act="none")
    return (y, None, None) if multi else y


# --- activations, add, concat ------------------------------------------------------------------


def relu(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    return b.emit("relu", [_activation(a["self"])], out_shape(node))


def relu6(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    return b.emit("relu6", [_activation(a["self"])], out_shape(node))


def hardswish(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    return b.emit("hardswish", [_activation(a["self"])], out_shape(node))


def hardtanh(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    lo, hi = float(a["min_val"]), float(a["max_val"])
    if lo == 0.0 and hi == 6.0:
        return relu6(b, node, a)
    if lo == 0.0 and hi == math.inf:
        return relu(b, node, a)
    raise Unsupported(f"clamp to [{lo:g}, {hi:g}]; only [0, 6] (relu6)")


def add(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    lhs, rhs = a["self"], a["other"]
    if not isinstance(rhs, (str, Const)):
        raise Unsupported("adding a scalar; only tensor + tensor of the same shape")
    if a.get("alpha", 1) != 1:
        raise Unsupported(f"alpha={a['alpha']}")
    if _shape(b, lhs) != _shape(b, rhs):
        raise Unsupported(f"broadcasting {list(_shape(b, lhs))} + {list(_shape(b, rhs))}; shapes must match")
    return b.emit("add", [lhs, rhs], out_shape(node), act="none")


def cat(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    tensors = list(a["tensors"])
    rank = len(out_shape(node))
    return b.emit("concat", tensors, out_shape(node), axis=int(a["dim"]) % rank)


# --- pooling -----------------------------------------------------------------------------------


def max_pool2d(b: Builder, node: fx.Node, a: dict[str, Any]) -> Any:
    if _pair(a["dilation"], (1, 1)) != (1, 1):
        raise Unsupported("dilated max pooling")
    kernel = _pair(a["kernel_size"])
    ph, pw = _pair(a["padding"], (0, 0))
    multi = isinstance(node.meta["val"], (tuple, list))
    y = b.emit(
        "max_pool2d",
        [_activation(a["self"])],
        out_shape(node, 0 if multi else None),
        kernel=kernel,
        stride=_pair(a["stride"], kernel),
        padding=(ph, pw, ph, pw),
        ceil_mode=int(bool(a["ceil_mode"])),
    )
    return (y, None) if multi else y


def avg_pool2d(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    if a["divisor_override"] is not None:
        raise Unsupported("divisor_override")
    kernel = _pair(a["kernel_size"])
    ph, pw = _pair(a["padding"], (0, 0))
    return b.emit(
        "avg_pool2d",
        [_activation(a["self"])],
        out_shape(node),
        kernel=kernel,
        stride=_pair(a["stride"], kernel),
        padding=(ph, pw, ph, pw),
        ceil_mode=int(bool(a["ceil_mode"])),
        count_include_pad=int(bool(a["count_include_pad"])),
    )


def adaptive_avg_pool2d(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    x = _activation(a["self"])
    h, w = b.values[x].shape[2:]
    oh, ow = _pair(a["output_size"])
    if (oh, ow) == (1, 1):
        return b.emit("global_avg_pool", [x], out_shape(node))
    if (oh, ow) == (h, w):
        return x
    if h % oh or w % ow:
        raise Unsupported(f"adaptive pooling {h}x{w} -> {oh}x{ow} (sizes must divide)")
    k = (h // oh, w // ow)  # evenly divided: a plain average pool with kernel = stride
    return b.emit(
        "avg_pool2d",
        [x],
        out_shape(node),
        kernel=k,
        stride=k,
        padding=(0, 0, 0, 0),
        ceil_mode=0,
        count_include_pad=1,
    )


def mean(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    x = _activation(a["self"])
    shape = b.values[x].shape
    dims = a["dim"]
    if a.get("dtype") is not None or len(shape) != 4 or dims is None or {int(d) % 4 for d in dims} != {2, 3}:
        raise Unsupported(f"mean over dims {dims}; only the spatial dims (2, 3) of an NCHW tensor")
    keep = (*shape[:2], 1, 1)
    y = b.emit("global_avg_pool", [x], keep)
    if not a["keepdim"]:
        y = b.emit("reshape", [y], out_shape(node), shape=out_shape(node))
    return y


# --- shape ops ---------------------------------------------------------------------------------


def reshape(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    x = _activation(a["self"])
    shape = out_shape(node)
    if shape == b.values[x].shape:
        return x
    return b.emit("reshape", [x], shape, shape=shape)


def softmax(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    if a.get("dtype") is not None or a.get("half_to_float"):
        raise Unsupported("softmax with a dtype change")
    rank = len(out_shape(node))
    return b.emit("softmax", [_activation(a["self"])], out_shape(node), axis=int(a["dim"]) % rank)


def zero_pad(b: Builder, node: fx.Node, a: dict[str, Any]) -> Padded:
    if a.get("mode", "constant") != "constant" or (a.get("value") or 0.0) != 0.0:
        raise Unsupported(f"{a.get('mode', 'constant')} padding with value {a.get('value')}; only zeros")
    pad = [int(p) for p in a["pad"]] + [0] * (4 - len(a["pad"]))
    if len(a["pad"]) > 4 or any(p < 0 for p in pad):
        raise Unsupported(f"padding {list(a['pad'])}; only non-negative padding of H and W")
    x = a["self"]
    if isinstance(x, Padded):  # two pads in a row add up
        left, right, top, bottom = pad
        t, l, bt, r = x.padding
        return Padded(x.name, (t + top, l + left, bt + bottom, r + right))
    left, right, top, bottom = pad  # torch lists the last dim first
    return Padded(_activation(x), (top, left, bottom, right))


def identity(b: Builder, node: fx.Node, a: dict[str, Any]) -> Sym:
    if a.get("train"):
        raise Unsupported("dropout in training mode; call model.eval()")
    return _activation(a.get("self", a.get("input")))


def getitem(b: Builder, node: fx.Node, args: tuple[Any, ...]) -> Any:
    seq, index = args
    picked = seq[index]
    if picked is None:
        raise Unsupported(f"output {index} of a multi-output op (e.g. pooling indices) is not supported")
    return picked


CONVERTERS: dict[Any, Converter] = {
    aten.conv2d.default: conv,
    aten.conv2d.padding: conv,
    aten.convolution.default: conv,
    aten.linear.default: linear,
    aten.addmm.default: addmm,
    aten.mm.default: mm,
    aten.matmul.default: mm,
    aten.batch_norm.default: batch_norm,
    aten._native_batch_norm_legit_no_training.default: batch_norm,
    aten.relu.default: relu,
    aten.relu_.default: relu,
    aten.relu6.default: relu6,
    aten.hardtanh.default: hardtanh,
    aten.hardtanh_.default: hardtanh,
    aten.hardswish.default: hardswish,
    aten.hardswish_.default: hardswish,
    aten.add.Tensor: add,
    aten.add_.Tensor: add,
    aten.cat.default: cat,
    aten.max_pool2d.default: max_pool2d,
    aten.max_pool2d_with_indices.default: max_pool2d,
    aten.avg_pool2d.default: avg_pool2d,
    aten.adaptive_avg_pool2d.default: adaptive_avg_pool2d,
    aten._adaptive_avg_pool2d.default: adaptive_avg_pool2d,
    aten.mean.dim: mean,
    aten.view.default: reshape,
    aten.reshape.default: reshape,
    aten._unsafe_view.default: reshape,
    aten.flatten.using_ints: reshape,
    aten.squeeze.dim: reshape,
    aten.squeeze.dims: reshape,
    aten.squeeze.default: reshape,
    aten.unsqueeze.default: reshape,
    aten.softmax.int: softmax,
    aten._softmax.default: softmax,
    aten.constant_pad_nd.default: zero_pad,
    aten.pad.default: zero_pad,
    aten.dropout.default: identity,
    aten.feature_dropout.default: identity,
    aten.alpha_dropout.default: identity,
    aten.clone.default: identity,
    aten.contiguous.default: identity,
    aten.alias.default: identity,
    aten.detach.default: identity,
    aten.lift_fresh_copy.default: identity,
}

#: Ops that transpose a matrix: evaluated at compile time on parameters, remembered so that
#: addmm/mm can recover the (possibly encoded) [O, K] weight.
TRANSPOSES = {aten.t.default, aten.permute.default, aten.transpose.int, aten.numpy_T.default}

GETITEM = operator.getitem
