"""An in-memory TFLite model (tensors, buffers, operators) serialized with the `tflite` schema builders.

Lowering modules add tensors and operators here; `FlatModel.serialize` writes the flatbuffer once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite

#: numpy dtype -> TFLite TensorType.
TENSOR_TYPES = {
    np.dtype(np.float32): tflite.TensorType.FLOAT32,
    np.dtype(np.int32): tflite.TensorType.INT32,
    np.dtype(np.int8): tflite.TensorType.INT8,
    np.dtype(np.uint8): tflite.TensorType.UINT8,
    np.dtype(np.int16): tflite.TensorType.INT16,
    np.dtype(np.float16): tflite.TensorType.FLOAT16,
}

#: IR dtype names -> numpy dtypes.
IR_DTYPES = {"f32": np.float32, "f16": np.float16, "i8": np.int8, "u8": np.uint8, "i32": np.int32}

#: An options writer: gets the builder, returns (BuiltinOptions type, offset) or None.
OptionsFn = Callable[[flatbuffers.Builder], tuple[int, int]]


@dataclass
class Quant:
    """Affine quantization of a tensor: one scale/zero point, or one per `axis` entry."""

    scale: Sequence[float]
    zero_point: Sequence[int]
    axis: int = 0


@dataclass
class Sparsity:
    """TFLite SparsityParameters: dense leading dims, CSR on the last one (segments, indices)."""

    dims: tuple[int, ...]
    segments: np.ndarray
    indices: np.ndarray


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: bytes | None = None  # constant contents; None for activations
    quant: Quant | None = None
    sparsity: Sparsity | None = None


@dataclass
class Op:
    code: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: OptionsFn | None = None
    version: int = 1


@dataclass
class FlatModel:
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    by_name: dict[str, int] = field(default_factory=dict)

    def add_tensor(self, tensor: Tensor) -> int:
        if tensor.name in self.by_name:
            raise ValueError(f"tensor {tensor.name!r} added twice")
        self.tensors.append(tensor)
        self.by_name[tensor.name] = len(self.tensors) - 1
        return len(self.tensors) - 1

    def activation(
        self, name: str, shape: Sequence[int], dtype=np.float32, quant: Quant | None = None
    ) -> int:
        return self.add_tensor(Tensor(name, tuple(int(d) for d in shape), np.dtype(dtype), None, quant))

    def constant(self, name: str, data: np.ndarray, quant: Quant | None = None) -> int:
        data = np.ascontiguousarray(data)
        return self.add_tensor(Tensor(name, tuple(data.shape), data.dtype, data.tobytes(), quant))

    def fresh(self, stem: str) -> str:
        """A tensor name not used yet (for the helper tensors a lowering adds)."""
        n = 0
        while f"{stem}:{n}" in self.by_name:
            n += 1
        return f"{stem}:{n}"

    def op(
        self,
        code: int,
        inputs: Sequence[int],
        outputs: Sequence[int],
        options: OptionsFn | None = None,
        version: int = 1,
    ) -> None:
        self.ops.append(Op(code, tuple(inputs), tuple(outputs), options, version))

    def opcodes_used(self) -> list[str]:
        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        return sorted({names[op.code] for op in self.ops})

    def serialize(self) -> bytes:
        return _serialize(self)


def _int_vector(
    b: flatbuffers.Builder, start: Callable, values: Sequence[int], prepend: str = "Int32"
) -> int:
    start(b, len(values))
    for v in reversed(values):
        getattr(b, f"Prepend{prepend}")(int(v))
    return b.EndVector()


def _float_vector(b: flatbuffers.Builder, start: Callable, values: Sequence[float]) -> int:
    start(b, len(values))
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _index_vector(b: flatbuffers.Builder, arr: np.ndarray) -> tuple[int, int]:
    """A SparseIndexVector in the narrowest integer type that holds `arr` (keeps the file small)."""
    arr = np.asarray(arr)
    top = int(arr.max()) if arr.size else 0
    if top < 256:
        prefix, dt = "Uint8Vector", np.uint8
    elif top < 65536:
        prefix, dt = "Uint16Vector", np.uint16
    else:
        prefix, dt = "Int32Vector", np.int32
    vec = b.CreateNumpyVector(arr.astype(dt).reshape(-1))
    getattr(tflite, f"{prefix}Start")(b)
    getattr(tflite, f"{prefix}AddValues")(b, vec)
    return getattr(tflite.SparseIndexVector, prefix), getattr(tflite, f"{prefix}End")(b)


def _sparsity(b: flatbuffers.Builder, sp: Sparsity) -> int:
    T = tflite
    dims_meta = []
    for i, size in enumerate(sp.dims):
        if i < len(sp.dims) - 1:
            T.DimensionMetadataStart(b)
            T.DimensionMetadataAddFormat(b, T.DimensionType.DENSE)
            T.DimensionMetadataAddDenseSize(b, int(size))
            dims_meta.append(T.DimensionMetadataEnd(b))
        else:
            seg_kind, seg = _index_vector(b, sp.segments)
            idx_kind, idx = _index_vector(b, sp.indices)
            T.DimensionMetadataStart(b)
            T.DimensionMetadataAddFormat(b, T.DimensionType.SPARSE_CSR)
            T.DimensionMetadataAddArraySegmentsType(b, seg_kind)
            T.DimensionMetadataAddArraySegments(b, seg)
            T.DimensionMetadataAddArrayIndicesType(b, idx_kind)
            T.DimensionMetadataAddArrayIndices(b, idx)
            dims_meta.append(T.DimensionMetadataEnd(b))
    order = _int_vector(b, T.SparsityParametersStartTraversalOrderVector, list(range(len(sp.dims))))
    T.SparsityParametersStartDimMetadataVector(b, len(dims_meta))
    for off in reversed(dims_meta):
        b.PrependUOffsetTRelative(off)
    meta = b.EndVector()
    T.SparsityParametersStart(b)
    T.SparsityParametersAddTraversalOrder(b, order)
    T.SparsityParametersAddDimMetadata(b, meta)
    return T.SparsityParametersEnd(b)


def _quant(b: flatbuffers.Builder, q: Quant) -> int:
    T = tflite
    scale = _float_vector(b, T.QuantizationParametersStartScaleVector, q.scale)
    zp = _int_vector(b, T.QuantizationParametersStartZeroPointVector, q.zero_point, "Int64")
    T.QuantizationParametersStart(b)
    T.QuantizationParametersAddScale(b, scale)
    T.QuantizationParametersAddZeroPoint(b, zp)
    T.QuantizationParametersAddQuantizedDimension(b, q.axis)
    return T.QuantizationParametersEnd(b)


def _serialize(model: FlatModel) -> bytes:
    T = tflite
    b = flatbuffers.Builder(1024 + sum(len(t.data or b"") for t in model.tensors))
    # Buffer 0 is the empty sentinel every TFLite file starts with.
    buffer_offsets = []
    buffer_index = []
    T.BufferStart(b)
    buffer_offsets.append(T.BufferEnd(b))
    for t in model.tensors:
        if t.data is None:
            buffer_index.append(0)
            continue
        b.StartVector(1, len(t.data), 16)  # 16-byte aligned so kernels may read the data in place
        b.head = b.head - len(t.data)
        b.Bytes[b.head : b.head + len(t.data)] = t.data
        b.vectorNumElems = len(t.data)
        data = b.EndVector()
        T.BufferStart(b)
        T.BufferAddData(b, data)
        buffer_offsets.append(T.BufferEnd(b))
        buffer_index.append(len(buffer_offsets) - 1)

    tensor_offsets = []
    for t, buf in zip(model.tensors, buffer_index, strict=True):
        name = b.CreateString(t.name)
        shape = _int_vector(b, T.TensorStartShapeVector, t.shape)
        quant = _quant(b, t.quant) if t.quant is not None else None
        sparsity = _sparsity(b, t.sparsity) if t.sparsity is not None else None
        T.TensorStart(b)
        T.TensorAddShape(b, shape)
        T.TensorAddType(b, TENSOR_TYPES[t.dtype])
        T.TensorAddBuffer(b, buf)
        T.TensorAddName(b, name)
        if quant is not None:
            T.TensorAddQuantization(b, quant)
        if sparsity is not None:
            T.TensorAddSparsity(b, sparsity)
        tensor_offsets.append(T.TensorEnd(b))

    codes: dict[tuple[int, int], int] = {}
    for op in model.ops:
        codes.setdefault((op.code, op.version), len(codes))
    op_offsets = []
    for op in model.ops:
        ins = _int_vector(b, T.OperatorStartInputsVector, op.inputs)
        outs = _int_vector(b, T.OperatorStartOutputsVector, op.outputs)
        opts = op.options(b) if op.options is not None else None
        T.OperatorStart(b)
        T.OperatorAddOpcodeIndex(b, codes[(op.code, op.version)])
        T.OperatorAddInputs(b, ins)
        T.OperatorAddOutputs(b, outs)
        if opts is not None:
            T.OperatorAddBuiltinOptionsType(b, opts[0])
            T.OperatorAddBuiltinOptions(b, opts[1])
        op_offsets.append(T.OperatorEnd(b))

    def offsets_vector(start: Callable, offs: Sequence[int]) -> int:
        start(b, len(offs))
        for off in reversed(offs):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    tensors = offsets_vector(T.SubGraphStartTensorsVector, tensor_offsets)
    operators = offsets_vector(T.SubGraphStartOperatorsVector, op_offsets)
    inputs = _int_vector(b, T.SubGraphStartInputsVector, model.inputs)
    outputs = _int_vector(b, T.SubGraphStartOutputsVector, model.outputs)
    sg_name = b.CreateString("main")
    T.SubGraphStart(b)
    T.SubGraphAddTensors(b, tensors)
    T.SubGraphAddOperators(b, operators)
    T.SubGraphAddInputs(b, inputs)
    T.SubGraphAddOutputs(b, outputs)
    T.SubGraphAddName(b, sg_name)
    subgraph = T.SubGraphEnd(b)

    code_offsets = []
    for code, version in codes:
        T.OperatorCodeStart(b)
        # Codes above 127 only fit the new field; the deprecated one saturates at 127 by convention.
        T.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        T.OperatorCodeAddBuiltinCode(b, code)
        T.OperatorCodeAddVersion(b, version)
        code_offsets.append(T.OperatorCodeEnd(b))
    opcodes = offsets_vector(T.ModelStartOperatorCodesVector, code_offsets)
    subgraphs = offsets_vector(T.ModelStartSubgraphsVector, [subgraph])
    buffers = offsets_vector(T.ModelStartBuffersVector, buffer_offsets)
    desc = b.CreateString("edgefit")
    T.ModelStart(b)
    T.ModelAddVersion(b, 3)
    T.ModelAddOperatorCodes(b, opcodes)
    T.ModelAddSubgraphs(b, subgraphs)
    T.ModelAddDescription(b, desc)
    T.ModelAddBuffers(b, buffers)
    b.Finish(T.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
