"""State shared by the TFLite lowering modules: the IR graph, the model being built, quantization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tflite

from edgefit.compiler.backends.tflite.flatmodel import IR_DTYPES, FlatModel, Quant
from edgefit.compiler.backends.tflite.layout import nhwc_shape
from edgefit.compiler.ir import Graph, Node
from edgefit.errors import UserError

FUSED = {
    "none": tflite.ActivationFunctionType.NONE,
    "relu": tflite.ActivationFunctionType.RELU,
    "relu6": tflite.ActivationFunctionType.RELU6,
}


@dataclass
class Lowering:
    graph: Graph
    model: FlatModel
    codebook: str = "gather"  # "gather" (indices packed where smaller) | "gather-u8" | "densify"
    sparse: str = "densify-op"  # "densify-op" | "dense"
    #: int8 mode: IR activation name -> (min, max) from calibration; None means fp32.
    ranges: dict[str, tuple[float, float]] | None = None
    #: linear weight name -> column permutation (set when a flatten feeds the layer).
    column_perm: dict[str, np.ndarray] = field(default_factory=dict)
    stats: dict[str, int] = field(
        default_factory=lambda: {"sparse_tensors": 0, "gather_tensors": 0, "packed_gather_tensors": 0}
    )
    #: IR name -> tensor index when the IR tensor is not the tensor of that name (int8 boundaries).
    aliases: dict[str, int] = field(default_factory=dict)
    #: int8 parameters an op dictates (SOFTMAX's output is always scale 1/256, zero point -128).
    fixed: dict[str, Quant] = field(default_factory=dict)

    @property
    def int8(self) -> bool:
        return self.ranges is not None

    def quant_of(self, name: str) -> Quant | None:
        """Per-tensor int8 parameters of an f32 activation in int8 mode (asymmetric, range incl. 0),
        from the range calibration saw on the fp32 model's tensor of the same name."""
        if self.ranges is None:
            return None
        if name in self.fixed:
            return self.fixed[name]
        if name not in self.ranges:
            raise UserError(f"int8 TFLite export: no calibration range for tensor {name!r}")
        lo, hi = self.ranges[name]
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = max((hi - lo) / 255.0, 1e-8)
        zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
        return Quant([scale], [zp])

    def tensor(self, name: str) -> int:
        """Index of the TFLite tensor for IR activation `name`, creating it on first use."""
        if name in self.aliases:
            return self.aliases[name]
        if name in self.model.by_name:
            return self.model.by_name[name]
        value = self.graph.values[name]
        dtype = IR_DTYPES[value.dtype]
        quant = None
        if value.dtype == "f32" and self.int8:
            dtype, quant = np.int8, self.quant_of(name)
        return self.model.activation(name, nhwc_shape(value.shape), dtype, quant)

    def act_dtype(self, name: str) -> type:
        return IR_DTYPES[self.graph.values[name].dtype] if not self.int8 else np.int8

    def helper(self, name: str, like: str) -> int:
        """A helper activation shaped like IR tensor `like` (quantized from its own calibrated range)."""
        value = self.graph.values[like]
        quant = self.quant_of(name) if self.int8 else None
        return self.model.activation(name, nhwc_shape(value.shape), self.act_dtype(like), quant)

    def with_act(self, out: str, act: str, emit: Callable[[int, int], None]) -> None:
        """Emit an op with activation `act` on its result: fused where TFLite allows (none, relu,
        relu6); HARD_SWISH has no fused form, so the op writes a helper tensor and HARD_SWISH follows."""
        if act in FUSED:
            emit(self.tensor(out), FUSED[act])
            return
        if act != "hardswish":
            raise UserError(f"TFLite backend: unknown activation {act!r} on {out!r}")
        pre = self.helper(f"{out}/pre_act", out)
        emit(pre, FUSED["none"])
        self.model.op(tflite.BuiltinOperator.HARD_SWISH, [pre], [self.tensor(out)])

    def unsupported(self, node: Node, why: str) -> UserError:
        return UserError(f"TFLite backend cannot express {node.op} node {node.name!r}: {why}")
