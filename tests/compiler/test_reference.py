"""The numpy reference interpreter against torch.nn.functional, op by op, over edge shapes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgefit.compiler import reference
from edgefit.compiler.encodings import BlockSparse, Codebook, Dense, Int8PerChannel
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify

RNG = np.random.default_rng(0)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _one_op(
    op: str,
    inputs: dict[str, np.ndarray],
    out_shape: tuple[int, ...],
    attrs: dict[str, Any] | None = None,
    constants: dict[str, Any] | None = None,
    out_dtype: str = "f32",
    in_dtype: str = "f32",
) -> np.ndarray:
    """Run a one-node graph through the reference interpreter."""
    constants = constants or {}
    values = {n: Value(n, a.shape, in_dtype) for n, a in inputs.items()}
    values |= {n: Value(n, c.shape) for n, c in constants.items()}
    values["y"] = Value("y", out_shape, out_dtype)
    node = Node(op, "n", (*inputs, *constants), ("y",), freeze(attrs or {}))
    graph = verify(Graph(tuple(inputs), ("y",), (node,), values, constants))
    return reference.run(graph, inputs)["y"]


def _close(got: np.ndarray, want: torch.Tensor, tol: float = 1e-5) -> None:
    want_np = want.detach().numpy()
    assert got.shape == want_np.shape
    assert got.dtype == np.float32
    scale = max(1.0, float(np.abs(want_np).max()))
    np.testing.assert_allclose(got, want_np, rtol=0, atol=tol * scale)


@pytest.mark.parametrize(
    ("ci", "co", "hw", "k", "stride", "pad", "dil", "groups", "bias", "act"),
    [
        (3, 8, (9, 9), 3, (1, 1), 1, (1, 1), 1, True, "none"),
        (3, 5, (11, 7), 3, (2, 2), 1, (1, 1), 1, False, "relu"),  # stride 2, odd sizes
        (6, 6, (9, 10), 3, (2, 2), 1, (1, 1), 6, True, "relu6"),  # depthwise
        (4, 6, (8, 8), 3, (1, 2), 2, (2, 2), 2, True, "hardswish"),  # grouped, dilated, mixed stride
        (8, 4, (5, 5), 1, (1, 1), 0, (1, 1), 1, True, "none"),  # pointwise
        (1, 1, (1, 1), 1, (1, 1), 0, (1, 1), 1, False, "none"),  # k=1 on a 1x1 image
        (3, 2, (7, 7), 7, (2, 2), 3, (1, 1), 1, True, "none"),  # a ResNet stem
    ],
)
def test_conv2d_matches_torch(ci, co, hw, k, stride, pad, dil, groups, bias, act) -> None:
    x, w = _rand(2, ci, *hw), _rand(co, ci // groups, k, k)
    b = _rand(co) if bias else None
    want = F.conv2d(
        torch.from_numpy(x),
        torch.from_numpy(w),
        None if b is None else torch.from_numpy(b),
        stride,
        pad,
        dil,
        groups,
    )
    want = {"none": lambda t: t, "relu": F.relu, "relu6": F.relu6, "hardswish": F.hardswish}[act](want)
    consts = {"w": Dense(w)} | ({"b": Dense(b)} if b is not None else {})
    attrs = {"stride": stride, "padding": (pad, pad, pad, pad), "dilation": dil, "groups": groups, "act": act}
    got = _one_op("conv2d", {"x": x}, tuple(want.shape), attrs, consts)
    _close(got, want)


def test_conv2d_asymmetric_padding_matches_pad_then_conv() -> None:
    x, w = _rand(1, 3, 10, 9), _rand(4, 3, 3, 3)
    # TF-style "same" for stride 2: one row/column more at the bottom/right.
    want = F.conv2d(F.pad(torch.from_numpy(x), (0, 1, 0, 1)), torch.from_numpy(w), stride=2)
    attrs = {"stride": (2, 2), "padding": (0, 0, 1, 1), "dilation": (1, 1), "groups": 1}
    got = _one_op("conv2d", {"x": x}, tuple(want.shape), attrs, {"w": Dense(w)})
    _close(got, want)
    # Padding on top/left only as well.
    want = F.conv2d(F.pad(torch.from_numpy(x), (2, 0, 1, 0)), torch.from_numpy(w))
    attrs = {"stride": (1, 1), "padding": (1, 2, 0, 0), "dilation": (1, 1), "groups": 1}
    _close(_one_op("conv2d", {"x": x}, tuple(want.shape), attrs, {"w": Dense(w)}), want)


@pytest.mark.parametrize("encode", [Int8PerChannel.from_dense, BlockSparse.from_dense, lambda w: None])
def test_conv2d_reads_every_weight_encoding(encode) -> None:
    x = _rand(1, 4, 6, 6)
    w = _rand(8, 4, 1, 1)
    w[RNG.random(w.shape) < 0.7] = 0.0
    enc = encode(w)
    if enc is None:  # a codebook
        idx = RNG.integers(0, 4, size=(8, 4))
        enc = Codebook.from_indices(w.shape, 2, idx, _rand(2, 4), np.array([0, 1] * 4))
    dense = enc.to_dense()
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(dense))
    got = _one_op("conv2d", {"x": x}, tuple(want.shape), {"groups": 1}, {"w": enc})
    _close(got, want)


def test_linear_matches_torch() -> None:
    x, w, b = _rand(3, 17), _rand(5, 17), _rand(5)
    want = F.relu(F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)))
    got = _one_op("linear", {"x": x}, (3, 5), {"act": "relu"}, {"w": Dense(w), "b": Dense(b)})
    _close(got, want)
    want = F.linear(torch.from_numpy(x), torch.from_numpy(w))
    _close(_one_op("linear", {"x": x}, (3, 5), {}, {"w": Dense(w)}), want)


def test_channel_affine_is_eval_batch_norm() -> None:
    x = _rand(2, 6, 5, 3)
    mean, var, gamma, beta = _rand(6), np.abs(_rand(6)) + 0.1, _rand(6), _rand(6)
    want = F.batch_norm(*(torch.from_numpy(a) for a in (x, mean, var, gamma, beta)), training=False, eps=1e-5)
    scale = gamma / np.sqrt(var + 1e-5)
    shift = beta - mean * scale
    got = _one_op("channel_affine", {"x": x}, x.shape, {}, {"s": Dense(scale), "t": Dense(shift)})
    _close(got, want)
    # On a [N, C] tensor (a batch norm after a linear layer) with a fused ReLU6.
    x2 = _rand(4, 6) * 10
    want2 = F.relu6(torch.from_numpy(x2 * scale + shift))
    got2 = _one_op(
        "channel_affine", {"x": x2}, x2.shape, {"act": "relu6"}, {"s": Dense(scale), "t": Dense(shift)}
    )
    _close(got2, want2)


@pytest.mark.parametrize(("op", "fn"), [("relu", F.relu), ("relu6", F.relu6), ("hardswish", F.hardswish)])
def test_activations_match_torch(op, fn) -> None:
    x = np.concatenate([_rand(1, 3, 4, 4).ravel() * 5, [-3.0, 0.0, 3.0, 6.0, -6.0]]).astype(np.float32)
    _close(_one_op(op, {"x": x}, x.shape), fn(torch.from_numpy(x)))


def test_add_concat_reshape_softmax() -> None:
    a, b = _rand(2, 3, 4, 5), _rand(2, 3, 4, 5)
    _close(
        _one_op("add", {"a": a, "b": b}, a.shape, {"act": "relu"}),
        F.relu(torch.from_numpy(a) + torch.from_numpy(b)),
    )
    c = _rand(2, 1, 4, 5)
    want = torch.cat([torch.from_numpy(a), torch.from_numpy(c), torch.from_numpy(b)], 1)
    _close(_one_op("concat", {"a": a, "c": c, "b": b}, tuple(want.shape), {"axis": 1}), want)
    want = torch.from_numpy(a).flatten(1)
    _close(_one_op("reshape", {"a": a}, tuple(want.shape), {"shape": tuple(want.shape)}), want)
    logits = _rand(3, 10) * 50  # large logits: the stable form must not overflow
    _close(
        _one_op("softmax", {"x": logits}, logits.shape, {"axis": 1}), F.softmax(torch.from_numpy(logits), 1)
    )


def test_add_refuses_broadcasting() -> None:
    with pytest.raises(ValueError, match="broadcast"):
        _one_op("add", {"a": _rand(1, 3, 2, 2), "b": _rand(1, 3, 1, 1)}, (1, 3, 2, 2))


@pytest.mark.parametrize(
    ("hw", "k", "s", "p", "ceil"),
    [
        ((7, 7), 3, 2, 0, True),  # ceil_mode adds a partial window
        ((8, 8), 3, 2, 1, True),  # ceil_mode whose extra window would start in padding: dropped
        ((112, 112), 3, 2, 1, False),  # the ResNet stem pool
        ((9, 6), 2, 2, 0, False),
        ((5, 5), 3, 1, 1, False),
        ((6, 7), 3, 3, 1, True),
    ],
)
def test_max_pool2d_matches_torch(hw, k, s, p, ceil) -> None:
    x = _rand(1, 3, *hw) - 3.0  # mostly negative: zero padding would win the max if used
    want = F.max_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil)
    attrs = {"kernel": (k, k), "stride": (s, s), "padding": (p, p, p, p), "ceil_mode": int(ceil)}
    _close(_one_op("max_pool2d", {"x": x}, tuple(want.shape), attrs), want)


@pytest.mark.parametrize(
    ("hw", "k", "s", "p", "ceil", "include_pad"),
    [
        ((7, 7), 3, 2, 1, True, True),
        ((7, 7), 3, 2, 1, True, False),
        ((8, 9), 2, 2, 0, False, True),
        ((6, 6), 3, 2, 1, False, False),
        ((5, 8), 3, 3, 0, True, True),  # ceil overhang is not counted even with count_include_pad
        ((4, 4), 2, 1, 1, True, True),
    ],
)
def test_avg_pool2d_matches_torch(hw, k, s, p, ceil, include_pad) -> None:
    x = _rand(2, 3, *hw)
    want = F.avg_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil, count_include_pad=include_pad)
    attrs = {
        "kernel": (k, k),
        "stride": (s, s),
        "padding": (p, p, p, p),
        "ceil_mode": int(ceil),
        "count_include_pad": int(include_pad),
    }
    _close(_one_op("avg_pool2d", {"x": x}, tuple(want.shape), attrs), want)


def test_global_avg_pool_matches_torch() -> None:
    x = _rand(2, 5, 7, 3)
    _close(_one_op("global_avg_pool", {"x": x}, (2, 5, 1, 1)), F.adaptive_avg_pool2d(torch.from_numpy(x), 1))


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_quantize_rounds_half_to_even() -> None:
    # Exact ties of x / scale: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2, 127.5 -> 128; clamping at 0 and 255.
    x = np.array([0.25, 0.75, 1.25, -0.25, -0.75, 0.0, 100.0, -100.0, 63.75], dtype=np.float32)
    q = _one_op(
        "quantize", {"x": x}, x.shape, {"scale": (0.5,), "zero_point": (3,), "axis": 1}, out_dtype="u8"
    )
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(q, [3, 5, 5, 3, 1, 3, 203, 0, 131])
    # torch rounds x / scale + zp (after adding the zero point), which agrees when zp is even.
    q4 = _one_op(
        "quantize", {"x": x}, x.shape, {"scale": (0.5,), "zero_point": (4,), "axis": 1}, out_dtype="u8"
    )
    want = torch.quantize_per_tensor(torch.from_numpy(x), 0.5, 4, torch.quint8)
    np.testing.assert_array_equal(q4, want.int_repr().numpy())
    back = _one_op("dequantize", {"q": q4}, q.shape, {"scale": (0.5,), "zero_point": (4,)}, in_dtype="u8")
    np.testing.assert_array_equal(back, want.dequantize().numpy())


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_quantize_per_channel_matches_torch() -> None:
    x = _rand(2, 3, 4, 4) * 3
    scale, zp = (0.05, 0.1, 0.02), (128, 0, 17)
    q = _one_op("quantize", {"x": x}, x.shape, {"scale": scale, "zero_point": zp, "axis": 1}, out_dtype="u8")
    tq = torch.quantize_per_channel(
        torch.from_numpy(x), torch.tensor(scale, dtype=torch.float64), torch.tensor(zp), 1, torch.quint8
    )
    # torch multiplies by 1/scale where the IR divides: they may differ by one step on near-ties only.
    diff = np.abs(q.astype(int) - tq.int_repr().numpy().astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    back = _one_op("dequantize", {"q": q}, q.shape, {"scale": scale, "zero_point": zp}, in_dtype="u8")
    inside = (q > 0) & (q < 255)
    step = np.broadcast_to(np.array(scale, dtype=np.float32).reshape(1, 3, 1, 1), x.shape)
    assert np.all(np.abs(back - x)[inside] <= step[inside] / 2 + 1e-6)


def test_keep_all_returns_every_tensor_and_inputs_are_checked() -> None:
    x, w = _rand(1, 2, 3, 3), _rand(2, 2, 1, 1)
    values = {n: Value(n, s) for n, s in [("x", x.shape), ("w", w.shape), ("c", x.shape), ("r", x.shape)]}
    nodes = (
        Node("conv2d", "c", ("x", "w"), ("c",), freeze({"groups": 1})),
        Node("relu", "r", ("c",), ("r",)),
    )
    graph = verify(Graph(("x",), ("r",), nodes, values, {"w": Dense(w)}))
    everything = reference.run(graph, {"x": x}, keep_all=True)
    assert set(everything) == {"x", "c", "r"}
    np.testing.assert_array_equal(everything["r"], np.maximum(everything["c"], 0))
    with pytest.raises(ValueError, match="missing graph input"):
        reference.run(graph, {})
    with pytest.raises(ValueError, match="shape"):
        reference.run(graph, {"x": _rand(2, 2, 3, 3)})
