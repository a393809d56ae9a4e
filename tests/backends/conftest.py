"""Hand-built IR graphs for the backend tests (a tiny builder that infers shapes as docs/ops.md does)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from edgefit.compiler.encodings import BlockSparse, Codebook, Dense, Int8PerChannel, WeightEncoding
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify
from edgefit.compiler.reference import pool_out


@dataclass
class GraphBuilder:
    """Append ops and get their output names back; `graph(out)` freezes the result."""

    seed: int = 0
    values: dict[str, Value] = field(default_factory=dict)
    constants: dict[str, WeightEncoding] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.values[name].shape

    def input(self, name: str, shape: tuple[int, ...], dtype: str = "f32") -> str:
        self.values[name] = Value(name, tuple(shape), dtype)
        self.inputs.append(name)
        return name

    def const(self, enc: WeightEncoding) -> str:
        name = f"c{len(self.constants)}"
        self.constants[name] = enc
        self.values[name] = Value(name, tuple(enc.shape))
        return name

    def weight(self, shape: tuple[int, ...], scale: float | None = None) -> np.ndarray:
        fan_in = int(np.prod(shape[1:]))
        scale = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def op(self, op: str, inputs: list[str], out_shape: tuple[int, ...], dtype: str = "f32", **attrs) -> str:
        out = f"t{len(self.nodes)}"
        self.values[out] = Value(out, tuple(out_shape), dtype)
        self.nodes.append(Node(op, f"n{len(self.nodes)}_{op}", tuple(inputs), (out,), freeze(attrs)))
        return out

    def conv(
        self,
        x: str,
        w: WeightEncoding | np.ndarray,
        *,
        stride=(1, 1),
        padding=(0, 0, 0, 0),
        groups=1,
        dilation=(1, 1),
        act="none",
        bias=True,
    ) -> str:
        enc = Dense(w) if isinstance(w, np.ndarray) else w
        n, _, h, wd = self.shape(x)
        co, _, kh, kw = enc.shape
        ho = (h + padding[0] + padding[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        wo = (wd + padding[1] + padding[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        ins = [x, self.const(enc)]
        if bias:
            ins.append(self.const(Dense((self.rng.standard_normal(co) * 0.1).astype(np.float32))))
        return self.op(
            "conv2d",
            ins,
            (n, co, ho, wo),
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            act=act,
        )

    def linear(self, x: str, w: WeightEncoding | np.ndarray, act="none", bias=True) -> str:
        enc = Dense(w) if isinstance(w, np.ndarray) else w
        ins = [x, self.const(enc)]
        if bias:
            ins.append(self.const(Dense((self.rng.standard_normal(enc.shape[0]) * 0.1).astype(np.float32))))
        return self.op("linear", ins, (self.shape(x)[0], enc.shape[0]), act=act)

    def pool(self, op: str, x: str, kernel, stride, padding=(0, 0, 0, 0), ceil_mode=0, **extra) -> str:
        n, c, h, w = self.shape(x)
        ho = pool_out(h, kernel[0], stride[0], padding[0], padding[2], bool(ceil_mode))
        wo = pool_out(w, kernel[1], stride[1], padding[1], padding[3], bool(ceil_mode))
        return self.op(
            op,
            [x],
            (n, c, ho, wo),
            kernel=kernel,
            stride=stride,
            padding=padding,
            ceil_mode=ceil_mode,
            **extra,
        )

    def graph(self, *outputs: str) -> Graph:
        return verify(
            Graph(tuple(self.inputs), tuple(outputs), tuple(self.nodes), self.values, self.constants)
        )


@pytest.fixture
def builder():
    return GraphBuilder


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """Max abs error relative to the output's scale (max |want|)."""
    return float(np.abs(got.astype(np.float64) - want).max() / max(1e-12, float(np.abs(want).max())))


@pytest.fixture
def relerr():
    return rel_err


"""Hand-built IR graphs for the backend tests (a tiny builder that infers shapes as docs/ops.md does)."""

# --- op and encoding cases shared by the TFLite and TVM tests ----------------------------------


def _sparse(b, shape, density=0.25, block=1):
    w = b.weight(shape)
    o = shape[0]
    keep = b.rng.random((o // block, int(np.prod(shape[1:])))) < density
    mask = np.repeat(keep, block, axis=0).reshape(shape)
    return BlockSparse.from_dense(w * mask, block=block)


def _codebook(b, shape, bits=4, groups=2, row_scale=True):
    o, k = shape[0], int(np.prod(shape[1:]))
    idx = b.rng.integers(0, 2**bits, (o, k))
    table = (b.rng.standard_normal((groups, 2**bits)) / np.sqrt(k)).astype(np.float32)
    cb = Codebook.from_indices(shape, bits, idx, table, np.arange(o) % groups)
    if row_scale:
        cb = cb.scale_rows((0.5 + b.rng.random(o)).astype(np.float32))
    return cb


def _conv_case(**attrs):
    def build(b):
        kw = dict(attrs)
        x = b.input("x", (1, kw.pop("ci", 4), 9, 9))
        ci = b.shape(x)[1]
        groups = kw.get("groups", 1)
        co = kw.pop("co", 6)
        k = kw.pop("k", 3)
        return b.conv(x, b.weight((co, ci // groups, k, k)), **kw)

    return build


def _enc_conv(make):
    def build(b):
        x = b.input("x", (1, 8, 6, 6))
        return b.conv(x, make(b, (8, 8, 3, 3)), padding=(1, 1, 1, 1), act="relu")

    return build


def _enc_linear(make):
    def build(b):
        x = b.input("x", (2, 32))
        return b.linear(x, make(b, (8, 32)))

    return build


def _flatten_linear(b):
    x = b.input("x", (1, 4, 3, 5))
    y = b.op("reshape", [x], (1, 60), shape=(1, 60))
    return b.linear(y, b.weight((7, 60)), act="relu")


def _reshape_general(b):
    x = b.input("x", (1, 4, 3, 5))
    y = b.op("reshape", [x], (1, 2, 6, 5), shape=(1, 2, 6, 5))
    return b.op("relu", [y], (1, 2, 6, 5))


def _concat(b):
    x = b.input("x", (1, 3, 5, 5))
    y = b.conv(x, b.weight((4, 3, 1, 1)))
    return b.op("concat", [x, y], (1, 7, 5, 5), axis=1)


def _add(act):
    def build(b):
        x = b.input("x", (1, 4, 5, 5))
        y = b.conv(x, b.weight((4, 4, 1, 1)))
        return b.op("add", [x, y], (1, 4, 5, 5), act=act)

    return build


def _unary(op):
    def build(b):
        x = b.input("x", (1, 4, 5, 5))
        return b.op(op, [b.op("add", [x, x], (1, 4, 5, 5))], (1, 4, 5, 5))

    return build


def _affine(rank, act="none"):
    def build(b):
        shape = (1, 5, 4, 4) if rank == 4 else (3, 5)
        x = b.input("x", shape)
        scale = b.const(Dense((0.5 + b.rng.random(5)).astype(np.float32)))
        shift = b.const(Dense(b.rng.standard_normal(5).astype(np.float32)))
        return b.op("channel_affine", [x, scale, shift], shape, act=act)

    return build


def _pool(op, kernel, stride, padding=(0, 0, 0, 0), ceil_mode=0, size=9, **extra):
    def build(b):
        x = b.input("x", (1, 3, size, size))
        return b.pool(op, x, kernel, stride, padding, ceil_mode, **extra)

    return build


def _global_pool(b):
    x = b.input("x", (2, 6, 5, 7))
    return b.op("global_avg_pool", [x], (2, 6, 1, 1))


def _softmax(b):
    x = b.input("x", (2, 10))
    return b.op("softmax", [b.linear(x, b.weight((12, 10)))], (2, 12), axis=1)


def _quant_roundtrip(b):
    x = b.input("x", (1, 4, 5, 5))
    q = b.op("quantize", [x], (1, 4, 5, 5), dtype="u8", scale=(0.05,), zero_point=(128,), axis=1)
    return b.op("dequantize", [q], (1, 4, 5, 5), scale=(0.05,), zero_point=(128,), axis=1)


#: name -> builder(GraphBuilder) -> output name. Every op of docs/ops.md and every weight encoding.
CASES: dict[str, Callable] = {
    "conv_valid": _conv_case(),
    "conv_same": _conv_case(padding=(1, 1, 1, 1), act="relu"),
    "conv_s2_torch_pad": _conv_case(stride=(2, 2), padding=(1, 1, 1, 1), act="relu6"),
    "conv_asym_pad_dilated": _conv_case(padding=(2, 0, 1, 2), dilation=(2, 1), act="hardswish"),
    "conv_5x5_nobias": _conv_case(k=5, padding=(2, 2, 2, 2), bias=False),
    "depthwise": _conv_case(ci=6, co=6, groups=6, padding=(1, 1, 1, 1), act="relu6"),
    "depthwise_s2_mult2": _conv_case(ci=4, co=8, groups=4, stride=(2, 2), padding=(1, 1, 1, 1)),
    "linear": _enc_linear(lambda b, s: Dense(b.weight(s))),
    "flatten_linear": _flatten_linear,
    "reshape_general": _reshape_general,
    "add": _add("none"),
    "add_relu": _add("relu"),
    "add_hardswish": _add("hardswish"),
    "concat": _concat,
    "relu": _unary("relu"),
    "relu6": _unary("relu6"),
    "hardswish": _unary("hardswish"),
    "channel_affine_4d": _affine(4, "relu"),
    "channel_affine_2d": _affine(2),
    "max_pool": _pool("max_pool2d", (2, 2), (2, 2), size=8),
    "max_pool_pad": _pool("max_pool2d", (3, 3), (2, 2), (1, 1, 1, 1)),
    "max_pool_ceil": _pool("max_pool2d", (3, 3), (2, 2), ceil_mode=1, size=8),
    "avg_pool": _pool("avg_pool2d", (3, 3), (2, 2)),
    "avg_pool_pad_incl": _pool("avg_pool2d", (3, 3), (1, 1), (1, 1, 1, 1), count_include_pad=1),
    "avg_pool_pad_excl_same": _pool("avg_pool2d", (3, 3), (1, 1), (1, 1, 1, 1), count_include_pad=0),
    "global_avg_pool": _global_pool,
    "softmax": _softmax,
    "quantize_dequantize": _quant_roundtrip,
    "enc_conv_dense": _enc_conv(lambda b, s: Dense(b.weight(s))),
    "enc_conv_int8": _enc_conv(lambda b, s: Int8PerChannel.from_dense(b.weight(s))),
    "enc_conv_bsr1": _enc_conv(lambda b, s: _sparse(b, s)),
    "enc_conv_bsr4": _enc_conv(lambda b, s: _sparse(b, s, block=4)),
    "enc_conv_codebook": _enc_conv(lambda b, s: _codebook(b, s)),
    "enc_conv_codebook8": _enc_conv(lambda b, s: _codebook(b, s, bits=8, groups=3, row_scale=False)),
    "enc_linear_int8": _enc_linear(lambda b, s: Int8PerChannel.from_dense(b.weight(s))),
    "enc_linear_bsr2": _enc_linear(lambda b, s: _sparse(b, s, block=2)),
    "enc_linear_codebook": _enc_linear(lambda b, s: _codebook(b, s, bits=3)),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that take `case` run once per entry of CASES."""
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", sorted(CASES))


@pytest.fixture
def case_graph(case: str):
    """(graph, output name, inputs) of one case, inputs drawn from a fixed seed."""
    b = GraphBuilder(seed=sum(map(ord, case)))
    out = CASES[case](b)
    graph = b.graph(out)
    inputs = {n: b.rng.standard_normal(graph.values[n].shape).astype(np.float32) for n in graph.inputs}
    return graph, out, inputs


def all_cases_graph(names: list[str] | None = None):
    """Every case in one multi-input, multi-output graph (names prefixed by the case), so a backend
    with slow compiles (TVM) builds once: returns (graph, {case: output}, inputs)."""
    values, consts, nodes, ins, outs, feeds = {}, {}, [], [], {}, {}
    for case in sorted(names or CASES):
        b = GraphBuilder(seed=sum(map(ord, case)))
        out = CASES[case](b)
        g = b.graph(out)

        def ren(n: str, case: str = case) -> str:
            return f"{case}.{n}"

        values.update({ren(k): Value(ren(k), v.shape, v.dtype) for k, v in g.values.items()})
        consts.update({ren(k): v for k, v in g.constants.items()})
        nodes += [
            Node(n.op, ren(n.name), tuple(map(ren, n.inputs)), tuple(map(ren, n.outputs)), n.attrs)
            for n in g.nodes
        ]
        for n in g.inputs:
            ins.append(ren(n))
            feeds[ren(n)] = b.rng.standard_normal(g.values[n].shape).astype(np.float32)
        outs[case] = ren(out)
    graph = verify(Graph(tuple(ins), tuple(outs.values()), tuple(nodes), values, consts))
    return graph, outs, feeds


@pytest.fixture(scope="session")
def merged_cases():
    return all_cases_graph()
