"""edgefit's IR: a graph of frozen dataclasses that every pass and backend shares.

Layout is NCHW (batch first); the op set and the semantics of every op are defined in
`docs/ops.md` and executed by the numpy reference interpreter (`compiler/reference.py`).
Passes are pure `Graph -> Graph` functions: they build new graphs with `dataclasses.replace`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from edgefit.compiler.encodings import WeightEncoding

#: Element types a value can have. Activations are f32 except around the bottleneck (u8).
DTYPES = ("f32", "f16", "i8", "u8", "i32")

#: Fused activations that conv2d / linear / add / channel_affine carry in attrs["act"].
ACTIVATIONS = ("none", "relu", "relu6", "hardswish")

#: The op set: name -> (min inputs, max inputs). docs/ops.md defines each one.
OPS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "conv2d": (2, 3),  # x, weight[, bias]
        "linear": (2, 3),  # x, weight[, bias]
        "channel_affine": (3, 3),  # x, scale[C], shift[C]: an unfolded batch norm
        "relu": (1, 1),
        "relu6": (1, 1),
        "hardswish": (1, 1),
        "add": (2, 2),
        "concat": (1, 64),
        "max_pool2d": (1, 1),
        "avg_pool2d": (1, 1),
        "global_avg_pool": (1, 1),
        "reshape": (1, 1),
        "softmax": (1, 1),
        "quantize": (1, 1),  # f32 -> u8 with attrs scale/zero_point (per tensor or per channel)
        "dequantize": (1, 1),  # u8 -> f32
    }
)


def freeze(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """Read-only view of a dict with list values turned into tuples, so attrs cannot drift."""
    items = {} if mapping is None else dict(mapping)
    return MappingProxyType({k: tuple(v) if isinstance(v, list) else v for k, v in items.items()})


@dataclass(frozen=True)
class Value:
    """A tensor flowing through the graph: a graph input, a node output or a constant."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "f32"

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Node:
    """One op application. `source` is "file.py:line" of the PyTorch code it came from."""

    op: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=freeze)
    source: str = ""

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


@dataclass(frozen=True, eq=False)
class Graph:
    """A whole model. `values` holds the shape/dtype of every tensor name (activations and
    constants); `constants` holds the data of the constant ones in their weight encoding."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    values: Mapping[str, Value]
    constants: Mapping[str, WeightEncoding]
    meta: Mapping[str, Any] = field(default_factory=freeze)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "constants", MappingProxyType(dict(self.constants)))
        object.__setattr__(self, "meta", freeze(self.meta))

    def value(self, name: str) -> Value:
        return self.values[name]

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                users.setdefault(name, []).append(node)
        return users

    def iter_op(self, op: str) -> Iterator[Node]:
        return (n for n in self.nodes if n.op == op)

    def with_nodes(self, nodes: tuple[Node, ...] | list[Node], **changes: Any) -> Graph:
        return replace(self, nodes=tuple(nodes), **changes)


class IRError(ValueError):
    """A graph that breaks the IR's rules (unknown op, wrong arity, dangling tensor)."""


def verify(graph: Graph) -> Graph:
    """Check the graph is well formed: known ops, arities, every tensor defined before use and
    exactly once, constants carry a Value. Returns the graph so calls can be chained."""
    defined = set(graph.inputs) | set(graph.constants)
    for name in defined:
        if name not in graph.values:
            raise IRError(f"tensor {name!r} has no Value (shape/dtype)")
    for node in graph.nodes:
        if node.op not in OPS:
            raise IRError(f"unknown op {node.op!r} in node {node.name!r}")
        lo, hi = OPS[node.op]
        if not lo <= len(node.inputs) <= hi:
            raise IRError(f"node {node.name!r}: {node.op} takes {lo}..{hi} inputs, got {len(node.inputs)}")
        for name in node.inputs:
            if name not in defined:
                raise IRError(f"node {node.name!r} reads {name!r} before it is defined")
        for name in node.outputs:
            if name in defined:
                raise IRError(f"tensor {name!r} is defined twice (node {node.name!r})")
            if name not in graph.values:
                raise IRError(f"node {node.name!r} output {name!r} has no Value")
            defined.add(name)
        act = node.attrs.get("act", "none")
        if act not in ACTIVATIONS:
            raise IRError(f"node {node.name!r}: unknown activation {act!r}")
    for name in graph.outputs:
        if name not in defined:
            raise IRError(f"graph output {name!r} is never produced")
    return graph


def format_graph(graph: Graph) -> str:
    """Human-readable listing used by `--print-ir-after` and `edgefit inspect`."""
    lines = []
    ins = ", ".join(f"%{n}: {graph.values[n].dtype}{list(graph.values[n].shape)}" for n in graph.inputs)
    lines.append(f"graph({ins}) {{")
    for node in graph.nodes:
        args = ", ".join(
            f"@{n}<{graph.constants[n].kind}>" if n in graph.constants else f"%{n}" for n in node.inputs
        )
        outs = ", ".join(f"%{n}: {graph.values[n].dtype}{list(graph.values[n].shape)}" for n in node.outputs)
        attrs = ", ".join(f"{k}={v}" for k, v in node.attrs.items())
        attrs = f" {{{attrs}}}" if attrs else ""
        lines.append(f"  {outs} = {node.op}({args}){attrs}")
    lines.append(f"  return {', '.join('%' + n for n in graph.outputs)}")
    lines.append("}")
    return "\n".join(lines)
