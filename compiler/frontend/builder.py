"""Accumulates the IR while the front-end walks an exported program: nodes, values, constants.

Tensors flow through the walk as symbols: a `str` is an IR activation; a `Const` is a torch tensor
known at compile time (a parameter, buffer, or something computed from them only) that becomes a
graph constant only when an IR node reads it, so unused parameters and the raw batch-norm
statistics never reach the graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgefit.compiler.encodings import Dense, WeightEncoding
from edgefit.compiler.ir import Node, Value, freeze


class Unsupported(Exception):
    """Raised by an op converter; the front-end turns it into UnsupportedOpError with the location."""


@dataclass(eq=False)
class Const:
    """A compile-time tensor. `fqn` is its state_dict key when it is a parameter or buffer;
    `transpose_of` marks a 2-D transpose of another constant, so a linear layer exported as
    addmm(bias, x, weight.t()) can still use the (possibly encoded) original weight."""

    tensor: torch.Tensor
    hint: str
    fqn: str | None = None
    transpose_of: Const | None = None


@dataclass(frozen=True)
class Padded:
    """An activation zero-padded by (top, left, bottom, right): not an IR tensor of its own, it is
    absorbed into the padding of the convolution that reads it (TF-style asymmetric "same")."""

    name: str
    padding: tuple[int, int, int, int]


Sym = str | Const


class Builder:
    """The graph under construction; converters call `emit` and `tensor`."""

    def __init__(self, plan: Mapping[str, WeightEncoding]) -> None:
        self.plan = plan
        self.nodes: list[Node] = []
        self.values: dict[str, Value] = {}
        self.constants: dict[str, WeightEncoding] = {}
        self.encoded: set[str] = set()  # plan FQNs that reached the graph in their encoding
        self._materialized: dict[int, str] = {}
        self.module_path = ""  # innermost module of the FX node being translated
        self.leaf_module = False  # whether that module is a torch.nn building block
        self.fx_name = ""
        self.source = ""

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.values:
            name, i = f"{base}_{i}", i + 1
        return name

    def add_input(self, name: str, shape: tuple[int, ...]) -> str:
        name = self.fresh(name)
        self.values[name] = Value(name, shape)
        return name

    def _activation_name(self, op: str) -> str:
        # Readable names from the module tree: "layer1.0.conv1" for a leaf module's op (then
        # "layer1.0.relu_1" when a module runs twice), "layer1.0.add" for an op written in a
        # block's forward, the FX node's name at the top level.
        if not self.module_path:
            return self.fresh(self.fx_name or op)
        if self.leaf_module:
            return self.fresh(self.module_path)
        return self.fresh(f"{self.module_path}.{op}")

    def emit(self, op: str, inputs: list[Sym], shape: tuple[int, ...], /, **attrs: Any) -> str:
        """Append one IR node reading `inputs`; returns the name of its (f32) output."""
        names = tuple(self.tensor(s) for s in inputs)
        out = self._activation_name(op)
        self.values[out] = Value(out, tuple(int(d) for d in shape))
        self.nodes.append(Node(op, out, names, (out,), freeze(attrs), self.source))
        return out

    def tensor(self, sym: Sym) -> str:
        """The IR name of `sym`, turning a compile-time tensor into a graph constant on first use."""
        if isinstance(sym, str):
            return sym
        if isinstance(sym, Padded):
            raise Unsupported(
                "reads a zero-padded tensor; explicit padding is supported only before a conv2d"
            )
        if not isinstance(sym, Const):
            raise Unsupported(f"expected a tensor, got {type(sym).__name__}")
        key = id(sym)
        if key in self._materialized:
            return self._materialized[key]
        if sym.fqn is not None and sym.fqn in self.plan:
            enc: WeightEncoding = self.plan[sym.fqn]
            self.encoded.add(sym.fqn)
        else:
            enc = Dense(self.array(sym))
        name = self.fresh(sym.fqn or sym.hint)
        self.values[name] = Value(name, tuple(enc.shape))
        self.constants[name] = enc
        self._materialized[key] = name
        return name

    def add_constant(self, hint: str, data: np.ndarray) -> str:
        """A constant computed by the front-end (e.g. a batch norm's folded scale)."""
        name = self.fresh(hint)
        self.values[name] = Value(name, tuple(data.shape))
        self.constants[name] = Dense(np.ascontiguousarray(data, dtype=np.float32))
        return name

    @staticmethod
    def array(sym: Const) -> np.ndarray:
        t = sym.tensor.detach()
        if not t.is_floating_point():
            raise Unsupported(f"{sym.fqn or sym.hint} is a {t.dtype} tensor; the IR's constants are f32")
        return np.ascontiguousarray(t.to(torch.float32).cpu().numpy())
