"""Codebook indices packed several to a byte (2-bit: four, 3- and 4-bit: two) and decoded by one GATHER
from a byte-expanded table: row v of that table holds the weights byte value v stands for.

The graph is CAST (uint8 -> int32), [ADD of per-table offsets], GATHER, RESHAPE (+ SLICE when the
last byte is padded): no arithmetic per weight, and half (a quarter) as many GATHER lookups as the
one-byte form. 3-bit indices go in 4-bit slots: a 3-bit slot straddles bytes and needs a 2**24-row
table or shift/mask arithmetic on every invoke.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tflite

from edgefit.compiler.backends.tflite import options
from edgefit.compiler.backends.tflite.context import Lowering

OP = tflite.BuiltinOperator

#: codebook bits -> bits of the slot an index takes inside a byte.
SLOT_BITS = {2: 2, 3: 4, 4: 4}


@dataclass(frozen=True)
class Packed:
    """Bytes to store (1-D, or 2-D with table offsets broadcast over them) and how to expand them."""

    data: np.ndarray  # uint8
    offsets: np.ndarray | None  # int32, broadcastable to `data`: 256 * table id of each byte
    slot: int  # bits per index inside a byte
    count: int  # indices (the last byte of 1-D data may be padded)

    @property
    def per(self) -> int:
        return 8 // self.slot


def pack_bytes(codes: np.ndarray, slot: int) -> np.ndarray:
    """[..., n] codes (n a multiple of 8 // slot) -> [..., n // per] uint8, code j in bits slot*j..."""
    per = 8 // slot
    c = np.asarray(codes, dtype=np.uint16).reshape(*codes.shape[:-1], -1, per)
    return (c << (slot * np.arange(per, dtype=np.uint16))).sum(axis=-1).astype(np.uint8)


def unpack_bytes(data: np.ndarray, slot: int) -> np.ndarray:
    """Inverse of `pack_bytes` (what the GATHER from `byte_table` computes), [..., n] int64."""
    per = 8 // slot
    d = np.asarray(data, dtype=np.int64)[..., None]
    return ((d >> (slot * np.arange(per))) & (2**slot - 1)).reshape(*data.shape[:-1], -1)


def arrange(idx: np.ndarray, table_id: np.ndarray, axis: int, bits: int) -> Packed | None:
    """Pack `idx` (op layout) whose element i reads table `table_id[i]`; None when some byte would
    hold indices of two tables (a byte row of the expanded table belongs to one table)."""
    if bits not in SLOT_BITS:
        return None
    slot = SLOT_BITS[bits]
    per = 8 // slot
    if not table_id.any():
        flat = idx.reshape(-1)
        padded = np.concatenate([flat, np.zeros((-flat.size) % per, dtype=flat.dtype)])
        return Packed(pack_bytes(padded, slot), None, slot, flat.size)
    # Several tables: bytes must not straddle output channels of different tables, so pack along the
    # axis next to the output channel's, with one offset per channel row (or byte column).
    if axis == 0:
        rows, ids = idx.reshape(idx.shape[0], -1), table_id.reshape(idx.shape[0], -1)
    elif axis == idx.ndim - 1:
        rows, ids = idx.reshape(-1, idx.shape[-1]), table_id.reshape(-1, idx.shape[-1])
    else:
        return None
    if rows.shape[1] % per:
        return None
    word_ids = ids.reshape(ids.shape[0], -1, per)
    if not (word_ids == word_ids[..., :1]).all():
        return None
    first = word_ids[..., 0]
    offsets = first[:, :1] if axis == 0 else first[:1, :]
    return Packed(pack_bytes(rows, slot), (256 * offsets).astype(np.int32), slot, idx.size)


def byte_table(table: np.ndarray, slot: int) -> np.ndarray:
    """[G * 256, per] float32: row g * 256 + v = table g's entries for the indices byte v holds
    (slot values past the table, never stored, repeat its last entry)."""
    entries = table.shape[1]
    fields = unpack_bytes(np.arange(256, dtype=np.uint8)[:, None], slot)  # [256, per]
    fields = np.minimum(fields, entries - 1)
    return table[:, fields].reshape(-1, 8 // slot).astype(np.float32)


def table_growth(n_tables: int, bits: int) -> int:
    """Bytes the expanded table adds over the plain one."""
    per = 8 // SLOT_BITS[bits]
    return 4 * n_tables * (256 * per - 2**bits)


def emit(
    ctx: Lowering, name: str, packed: Packed, table: np.ndarray, shape: tuple[int, ...], out: str
) -> int:
    """Constants + CAST [+ ADD] + GATHER [+ SLICE] + RESHAPE into the float tensor `out` of `shape`."""
    model = ctx.model
    src = model.constant(f"{name}/codes{packed.slot}", packed.data)
    codes = model.activation(f"{name}/codes_i32", packed.data.shape, np.int32)
    model.op(OP.CAST, [src], [codes], options.cast_to_int32(np.uint8))
    if packed.offsets is not None:
        off = model.constant(f"{name}/table_offset", packed.offsets)
        rows = model.activation(f"{name}/codes_row", packed.data.shape, np.int32)
        model.op(OP.ADD, [codes, off], [rows], options.add(0))
        codes = rows
    etable = model.constant(f"{name}/byte_table", byte_table(table, packed.slot))
    decoded_shape = (*packed.data.shape, packed.per)
    decoded = model.activation(f"{name}/decoded", decoded_shape)
    model.op(OP.GATHER, [etable, codes], [decoded], options.gather_axis0)
    if packed.data.size * packed.per != packed.count:
        flat = _reshape(ctx, decoded, f"{name}/decoded_flat", (packed.data.size * packed.per,))
        begin = _shared(ctx, "zero1", np.zeros(1, dtype=np.int32))
        size = _shared(ctx, f"shape/{packed.count}", np.array([packed.count], dtype=np.int32))
        sliced = model.activation(f"{name}/decoded_sliced", (packed.count,))
        model.op(OP.SLICE, [flat, begin, size], [sliced], options.slice_)
        decoded = sliced
    return _reshape(ctx, decoded, out, shape)


def _shared(ctx: Lowering, name: str, data: np.ndarray) -> int:
    """One constant per distinct small helper value (shapes, slice starts), shared by every layer."""
    name = f"edgefit/{name}"
    if name in ctx.model.by_name:
        return ctx.model.by_name[name]
    return ctx.model.constant(name, data)


def _reshape(ctx: Lowering, src: int, name: str, shape: tuple[int, ...]) -> int:
    shape = tuple(int(d) for d in shape)
    target = _shared(ctx, "shape/" + "x".join(map(str, shape)), np.array(shape, dtype=np.int32))
    out = ctx.model.activation(name, shape)
    ctx.model.op(OP.RESHAPE, [src, target], [out], options.reshape)
    return out
