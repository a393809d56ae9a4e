"""Weight encodings -> TFLite weight tensors: dense, sparse + DENSIFY, codebook GATHER, int8 + DEQUANTIZE.

Each returns the index of a float tensor (fp32 export) or a per-channel int8 tensor (int8 export)
holding the weight in the layout the consuming op wants.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tflite

from edgefit.compiler.backends.tflite import byte_table, options
from edgefit.compiler.backends.tflite.context import Lowering
from edgefit.compiler.backends.tflite.flatmodel import Quant, Sparsity, Tensor
from edgefit.compiler.encodings import BlockSparse, Codebook, Dense, Int8PerChannel, WeightEncoding

Layout = Callable[[np.ndarray], np.ndarray]
OP = tflite.BuiltinOperator


def weight_tensor(ctx: Lowering, name: str, enc: WeightEncoding, layout: Layout, axis: int) -> int:
    """The weight `name` for a conv/linear op; `layout` maps the IR's [O, ...] array to the op's
    layout and `axis` is where the output channel ends up (the quantized dimension)."""
    if ctx.int8:
        return _int8_weight(ctx, name, enc, layout, axis)
    if isinstance(enc, BlockSparse) and ctx.sparse == "densify-op":
        return _sparse(ctx, name, layout(enc.to_dense()))
    if isinstance(enc, Codebook) and ctx.codebook in ("gather", "gather-u8"):
        return _gather(ctx, name, enc, layout, axis)
    if isinstance(enc, Int8PerChannel):
        q = ctx.model.constant(
            f"{name}/q", layout(enc.q), Quant(enc.scale.tolist(), [0] * len(enc.scale), axis)
        )
        out = ctx.model.activation(name, layout(enc.q).shape)
        ctx.model.op(OP.DEQUANTIZE, [q], [out])
        return out
    if not isinstance(enc, Dense | BlockSparse | Codebook | Int8PerChannel):
        raise TypeError(f"unknown weight encoding {type(enc).__name__}")
    return ctx.model.constant(name, layout(enc.to_dense().astype(np.float32)))


def _sparse(ctx: Lowering, name: str, w: np.ndarray) -> int:
    """CSR over the innermost axis (input channels), dense outer axes; DENSIFY in front of the op is
    what lets XNNPACK take the weight (and engage its sparse kernels when the subgraph allows)."""
    rows = w.reshape(-1, w.shape[-1])
    mask = rows != 0
    segments = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int32)
    indices = np.nonzero(mask)[1].astype(np.int32)
    values = rows[mask].astype(np.float32)
    sp = Sparsity(tuple(w.shape), segments, indices)
    src = ctx.model.add_tensor(
        Tensor(f"{name}/sparse", tuple(w.shape), np.dtype(np.float32), values.tobytes(), None, sp)
    )
    out = ctx.model.activation(name, w.shape)
    ctx.model.op(OP.DENSIFY, [src], [out])
    ctx.stats["sparse_tensors"] += 1
    return out


def _gather(ctx: Lowering, name: str, enc: Codebook, layout: Layout, axis: int) -> int:
    """Indices + table decoded by GATHER on every invoke: the weight stays compressed in the file.

    "gather" packs 2/3/4-bit indices several to a byte and GATHERs whole bytes from a byte-expanded
    table (`byte_table`) where that makes the file smaller; "gather-u8" (and wider codes) store one
    byte per index (two when tables x entries > 256), CAST to int32 (GATHER's index type) + GATHER."""
    entries = 2**enc.bits
    n_tables = enc.table.shape[0]
    idx = layout(enc.indices().reshape(enc.shape))
    gathered = name if enc.unit_scale else f"{name}/unscaled"
    packed = None
    if ctx.codebook == "gather" and _packing_pays(enc, idx.size):
        table_id = layout(np.broadcast_to(enc.group.reshape(-1, *[1] * (len(enc.shape) - 1)), enc.shape))
        packed = byte_table.arrange(idx, table_id, axis, enc.bits)
    if packed is not None:
        out = byte_table.emit(ctx, name, packed, enc.table, idx.shape, gathered)
        ctx.stats["packed_gather_tensors"] += 1
    else:
        flat = enc.group.astype(np.int64)[:, None] * entries + enc.indices().astype(np.int64)
        codes = layout(flat.reshape(enc.shape))
        code_dtype = np.uint8 if n_tables * entries <= 256 else np.int16
        src = ctx.model.constant(f"{name}/codes", codes.astype(code_dtype))
        idx32 = ctx.model.activation(f"{name}/codes_i32", codes.shape, np.int32)
        ctx.model.op(OP.CAST, [src], [idx32], options.cast_to_int32(code_dtype))
        table = ctx.model.constant(f"{name}/table", enc.table.reshape(-1).astype(np.float32))
        out = ctx.model.activation(gathered, codes.shape)
        ctx.model.op(OP.GATHER, [table, idx32], [out], options.gather_axis0)
    ctx.stats["gather_tensors"] += 1
    if gathered == name:
        return out
    bshape = [1] * idx.ndim
    bshape[axis] = -1
    scale = ctx.model.constant(f"{name}/row_scale", enc.row_scale.reshape(bshape).astype(np.float32))
    scaled = ctx.model.activation(name, idx.shape)
    ctx.model.op(OP.MUL, [out, scale], [scaled], options.mul(tflite.ActivationFunctionType.NONE))
    return scaled


#: Flatbuffer bytes of the packed form's extra tensors and operators (measured on small layers):
#: the base chain, the SLICE a padded last byte needs, the ADD of table offsets.
PACK_OVERHEAD, SLICE_OVERHEAD, OFFSET_OVERHEAD = 256, 512, 256


def _packing_pays(enc: Codebook, count: int) -> bool:
    """Pack when the bits allow it and the file gets smaller than with one (or two) bytes per index:
    the indices shrink, the table grows to 256 rows per table (2-4 KiB) and a few tensors come in."""
    if enc.bits not in byte_table.SLOT_BITS:
        return False
    n_tables = enc.table.shape[0]
    per = 8 // byte_table.SLOT_BITS[enc.bits]
    one_byte = count * (1 if n_tables * 2**enc.bits <= 256 else 2)
    packed = -(-count // per) + byte_table.table_growth(n_tables, enc.bits) + PACK_OVERHEAD
    packed += SLICE_OVERHEAD * (count % per != 0 and n_tables == 1)
    packed += (OFFSET_OVERHEAD + 4 * enc.shape[0]) * (n_tables > 1)
    return packed < one_byte


def _int8_weight(ctx: Lowering, name: str, enc: WeightEncoding, layout: Layout, axis: int) -> int:
    """Symmetric per-channel int8 (zero point 0, as TFLite requires for weights)."""
    q8 = (
        enc
        if isinstance(enc, Int8PerChannel)
        else Int8PerChannel.from_dense(enc.to_dense().astype(np.float32))
    )
    return ctx.model.constant(name, layout(q8.q), Quant(q8.scale.tolist(), [0] * len(q8.scale), axis))
