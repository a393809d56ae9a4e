"""Weight encodings, defined once: dense, int8 per-channel, block-sparse (BSR), codebook.

This module mirrors `csrc/core/encodings.h`; the byte layout of each encoding inside an
artifact is specified in `docs/artifact-format.md`. Every encoding decodes to the exact dense
array it stands for (`to_dense`), which the round-trip tests hold it to.

A weight of logical shape [O, ...] is viewed as a matrix [O, K] with K = prod(shape[1:])
(conv weights [O, I/groups, kh, kw] row-major, linear weights [O, I]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ENCODING_IDS = {"dense": 0, "int8": 1, "bsr": 2, "codebook": 3}


def _rows(shape: tuple[int, ...]) -> tuple[int, int]:
    return shape[0], int(math.prod(shape[1:]))


@dataclass(frozen=True, eq=False)
class Dense:
    """Plain tensor (f32, f16, i8, u8 or i32)."""

    data: np.ndarray
    kind = "dense"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.data))

    def to_dense(self) -> np.ndarray:
        return self.data

    def scale_rows(self, scale: np.ndarray) -> Dense:
        return Dense((self.data * scale.reshape((-1,) + (1,) * (self.data.ndim - 1))).astype(self.data.dtype))


@dataclass(frozen=True, eq=False)
class Int8PerChannel:
    """Symmetric int8 weights with one f32 scale per output channel: w = q * scale[o]."""

    q: np.ndarray  # int8, logical shape
    scale: np.ndarray  # f32 [O]
    kind = "int8"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.q.shape)

    @property
    def nbytes(self) -> int:
        return int(self.q.nbytes + self.scale.nbytes)

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.q))

    def to_dense(self) -> np.ndarray:
        return (self.q.astype(np.float32) * self.scale.reshape((-1,) + (1,) * (self.q.ndim - 1))).astype(
            np.float32
        )

    def scale_rows(self, scale: np.ndarray) -> Int8PerChannel:
        return Int8PerChannel(self.q, (self.scale * scale).astype(np.float32))

    @staticmethod
    def from_dense(w: np.ndarray) -> Int8PerChannel:
        o, _ = _rows(w.shape)
        absmax = np.abs(w.reshape(o, -1)).max(axis=1)
        scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(w / scale.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
        return Int8PerChannel(q, scale)


@dataclass(frozen=True, eq=False)
class BlockSparse:
    """Block-sparse rows (BSR) over the [O, K] matrix with blocks of `block` consecutive output
    channels x 1 column (block 1 = plain CSR; 2 and 4 are the 1x2/1x4 patterns).

    row_ptr[b]..row_ptr[b+1] index the non-zero blocks of block-row b; col_idx gives each
    block's column; values holds block-many floats per block (output channel fastest)."""

    shape: tuple[int, ...]
    block: int
    row_ptr: np.ndarray  # int32 [O/block + 1]
    col_idx: np.ndarray  # int32 [nnz_blocks]
    values: np.ndarray  # f32 [nnz_blocks, block]
    kind = "bsr"

    @property
    def nbytes(self) -> int:
        return int(self.row_ptr.nbytes + self.col_idx.nbytes + self.values.nbytes)

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.values))

    @property
    def density(self) -> float:
        o, k = _rows(self.shape)
        return self.values.size / max(1, o * k)

    def to_dense(self) -> np.ndarray:
        o, k = _rows(self.shape)
        dense = np.zeros((o // self.block, self.block, k), dtype=np.float32)
        rows = np.repeat(np.arange(o // self.block), np.diff(self.row_ptr))
        dense[rows, :, self.col_idx] = self.values
        return dense.reshape(self.shape)

    def scale_rows(self, scale: np.ndarray) -> BlockSparse:
        rows = np.repeat(np.arange(len(self.row_ptr) - 1), np.diff(self.row_ptr))
        per_block = scale.reshape(-1, self.block)[rows]
        return BlockSparse(
            self.shape, self.block, self.row_ptr, self.col_idx, (self.values * per_block).astype(np.float32)
        )

    @staticmethod
    def from_dense(w: np.ndarray, block: int = 1) -> BlockSparse:
        """Encode the non-zero blocks of `w` (a block is kept if any of its entries is non-zero)."""
        o, k = _rows(w.shape)
        if block not in (1, 2, 4) or o % block:
            raise ValueError(f"block {block} does not divide {o} output channels (blocks are 1, 2 or 4)")
        blocks = w.reshape(o // block, block, k).transpose(0, 2, 1)  # [O/b, K, b]
        keep = np.any(blocks != 0, axis=2)
        row_ptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
        rows, cols = np.nonzero(keep)
        return BlockSparse(
            tuple(w.shape),
            block,
            row_ptr,
            cols.astype(np.int32),
            np.ascontiguousarray(blocks[rows, cols], dtype=np.float32).reshape(-1, block),
        )


def pack_indices(idx: np.ndarray, bits: int) -> np.ndarray:
    """Pack an [O, K] array of `bits`-bit codes row by row, LSB first; each row starts on a byte."""
    o, k = idx.shape
    bit_matrix = ((idx[:, :, None].astype(np.uint16) >> np.arange(bits, dtype=np.uint16)) & 1).astype(
        np.uint8
    )
    flat = bit_matrix.reshape(o, k * bits)
    return np.packbits(flat, axis=1, bitorder="little")


def unpack_indices(packed: np.ndarray, bits: int, k: int) -> np.ndarray:
    """Inverse of `pack_indices`: [O, ceil(K*bits/8)] bytes -> [O, K] codes (uint8)."""
    o = packed.shape[0]
    flat = np.unpackbits(packed, axis=1, bitorder="little")[:, : k * bits].reshape(o, k, bits)
    return (flat.astype(np.uint16) << np.arange(bits, dtype=np.uint16)).sum(axis=2).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class Codebook:
    """Palettized weights: w[o, k] = table[group[o], idx[o, k]] * row_scale[o].

    `bits` in 2..8; one 2**bits-entry table per group of output channels (JLCM groups
    similarly distributed channels); `row_scale` keeps a folded batch norm exact without
    breaking the shared tables (all ones when nothing was folded)."""

    shape: tuple[int, ...]
    bits: int
    packed: np.ndarray  # uint8 [O, ceil(K*bits/8)]
    table: np.ndarray  # f32 [G, 2**bits]
    group: np.ndarray  # int32 [O]
    row_scale: np.ndarray  # f32 [O]
    kind = "codebook"

    @property
    def compact_group(self) -> bool:
        """Groups are stored as one byte per row when there are at most 256 of them."""
        return self.table.shape[0] <= 256

    @property
    def unit_scale(self) -> bool:
        """No row_scale is stored when every row's scale is 1 (nothing was folded in)."""
        return bool(np.all(self.row_scale == 1.0))

    @property
    def nbytes(self) -> int:
        """Bytes as stored in the artifact: codes, tables, group map, and row scales if any."""
        rows = self.packed.shape[0]
        group_bytes = rows if self.compact_group else 4 * rows
        scale_bytes = 0 if self.unit_scale else 4 * rows
        return int(self.packed.nbytes + self.table.nbytes + group_bytes + scale_bytes)

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.to_dense()))

    def indices(self) -> np.ndarray:
        return unpack_indices(self.packed, self.bits, _rows(self.shape)[1])

    def to_dense(self) -> np.ndarray:
        idx = self.indices()
        w = self.table[self.group[:, None], idx] * self.row_scale[:, None]
        return w.astype(np.float32).reshape(self.shape)

    def scale_rows(self, scale: np.ndarray) -> Codebook:
        return Codebook(
            self.shape,
            self.bits,
            self.packed,
            self.table,
            self.group,
            (self.row_scale * scale).astype(np.float32),
        )

    @staticmethod
    def from_indices(
        shape: tuple[int, ...], bits: int, idx: np.ndarray, table: np.ndarray, group: np.ndarray
    ) -> Codebook:
        if not 2 <= bits <= 8:
            raise ValueError(f"codebook bits must be in 2..8, got {bits}")
        o, k = _rows(shape)
        return Codebook(
            tuple(shape),
            bits,
            pack_indices(idx.reshape(o, k), bits),
            np.ascontiguousarray(table, dtype=np.float32).reshape(-1, 2**bits),
            np.ascontiguousarray(group, dtype=np.int32).reshape(o),
            np.ones(o, dtype=np.float32),
        )


WeightEncoding = Dense | Int8PerChannel | BlockSparse | Codebook


def bits_per_weight(enc: WeightEncoding) -> float:
    shape = enc.shape
    return 8.0 * enc.nbytes / max(1, int(math.prod(shape)))
