"""Writes and reads the native artifact (`.efm`); the byte layout is `docs/artifact-format.md`.

Writing goes to a temporary file that is renamed into place, so a crash never leaves a
half-written artifact. Reading validates every offset and size and fails with ArtifactError.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from edgefit.compiler.encodings import (
    ENCODING_IDS,
    BlockSparse,
    Codebook,
    Dense,
    Int8PerChannel,
    WeightEncoding,
)
from edgefit.compiler.ir import OPS, Graph, Node, Value, freeze

MAGIC = b"EDGEFIT\0"
VERSION = (1, 1)
HEADER = struct.Struct("<8sHHIQQQQQII")
assert HEADER.size == 64
ALIGN = 64

DTYPE_IDS = {"f32": 0, "f16": 1, "i8": 2, "u8": 3, "i32": 4}
DTYPE_NP = {"f32": np.float32, "f16": np.float16, "i8": np.int8, "u8": np.uint8, "i32": np.int32}
KIND_ACTIVATION, KIND_CONSTANT, KIND_INPUT = 0, 1, 2
#: Codebook flags (third param): group map stored as u8; row_scale omitted (all ones).
CODEBOOK_U8_GROUP, CODEBOOK_UNIT_SCALE = 1, 2
ATTR_INTS, ATTR_FLOATS, ATTR_STRING, ATTR_INT, ATTR_FLOAT = 0, 1, 2, 3, 4


class ArtifactError(ValueError):
    """The file is not a valid edgefit artifact (says what is wrong and where)."""


def _blobs_of(enc: WeightEncoding) -> tuple[list[np.ndarray], list[int]]:
    if isinstance(enc, Dense):
        return [enc.data], []
    if isinstance(enc, Int8PerChannel):
        return [enc.q, enc.scale.astype(np.float32)], []
    if isinstance(enc, BlockSparse):
        return [enc.row_ptr, enc.col_idx, enc.values], [enc.block]
    if isinstance(enc, Codebook):
        flags = (CODEBOOK_U8_GROUP if enc.compact_group else 0) | (
            CODEBOOK_UNIT_SCALE if enc.unit_scale else 0
        )
        blobs = [enc.packed, enc.table, enc.group.astype(np.uint8 if enc.compact_group else np.int32)]
        if not enc.unit_scale:
            blobs.append(enc.row_scale)
        return blobs, [enc.bits, enc.table.shape[0], flags]
    raise TypeError(f"unknown weight encoding {type(enc).__name__}")


class _Writer:
    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.strings: dict[str, int] = {}

    def sid(self, s: str) -> int:
        return self.strings.setdefault(s, len(self.strings))

    def u8(self, v: int) -> None:
        self.buf.write(struct.pack("<B", v))

    def u32(self, v: int) -> None:
        self.buf.write(struct.pack("<I", v))

    def u64(self, v: int) -> None:
        self.buf.write(struct.pack("<Q", v))

    def i64s(self, vs: Any) -> None:
        self.buf.write(struct.pack(f"<{len(vs)}q", *[int(v) for v in vs]))


def _encode_attr(w: _Writer, key: str, value: Any) -> None:
    w.u32(w.sid(key))
    if isinstance(value, str):
        w.u8(ATTR_STRING)
        w.u32(1)
        w.u32(w.sid(value))
        return
    scalar = not isinstance(value, (tuple, list))
    seq = [value] if scalar else list(value)
    if all(isinstance(v, (bool, int, np.integer)) for v in seq):
        w.u8(ATTR_INT if scalar else ATTR_INTS)
        w.u32(len(seq))
        w.i64s(seq)
    else:
        w.u8(ATTR_FLOAT if scalar else ATTR_FLOATS)
        w.u32(len(seq))
        w.buf.write(struct.pack(f"<{len(seq)}d", *[float(v) for v in seq]))


def serialize(graph: Graph) -> bytes:
    """The artifact's bytes for `graph` (see docs/artifact-format.md)."""
    order = list(graph.inputs) + list(graph.constants)
    order += [n for n in graph.values if n not in set(order)]
    index = {name: i for i, name in enumerate(order)}

    data = io.BytesIO()
    body = _Writer()
    body.u32(len(order))
    for name in order:
        value = graph.values[name]
        kind = (
            KIND_INPUT
            if name in graph.inputs
            else KIND_CONSTANT
            if name in graph.constants
            else KIND_ACTIVATION
        )
        body.u32(body.sid(name))
        enc = graph.constants.get(name)
        body.buf.write(
            struct.pack(
                "<BBBB",
                DTYPE_IDS[value.dtype],
                kind,
                ENCODING_IDS[enc.kind] if enc is not None else 0,
                len(value.shape),
            )
        )
        body.i64s(value.shape)
        if enc is not None:
            blobs, params = _blobs_of(enc)
            body.u32(len(blobs))
            for blob in blobs:
                raw = np.ascontiguousarray(blob).astype(blob.dtype.newbyteorder("<"), copy=False).tobytes()
                pad = (-data.tell()) % ALIGN
                data.write(b"\0" * pad)
                body.u64(data.tell())
                body.u64(len(raw))
                data.write(raw)
            body.u32(len(params))
            body.i64s(params)
    for names in (graph.inputs, graph.outputs):
        body.u32(len(names))
        for name in names:
            body.u32(index[name])
    body.u32(len(graph.nodes))
    for node in graph.nodes:
        for s in (node.op, node.name, node.source):
            body.u32(body.sid(s))
        for names in (node.inputs, node.outputs):
            body.u32(len(names))
            for name in names:
                body.u32(index[name])
        body.u32(len(node.attrs))
        for key, value in node.attrs.items():
            _encode_attr(body, key, value)
    meta = {k: str(v) for k, v in graph.meta.items()}
    body.u32(len(meta))
    for key, value in meta.items():
        body.u32(body.sid(key))
        body.u32(body.sid(value))

    strings = io.BytesIO()
    strings.write(struct.pack("<I", len(body.strings)))
    for s in body.strings:
        raw = s.encode()
        strings.write(struct.pack("<I", len(raw)) + raw)
    graph_bytes = strings.getvalue() + body.buf.getvalue()

    graph_offset = HEADER.size
    data_offset = graph_offset + len(graph_bytes)
    data_offset += (-data_offset) % ALIGN
    data_bytes = data.getvalue()
    file_size = data_offset + len(data_bytes)
    tail = graph_bytes + b"\0" * (data_offset - graph_offset - len(graph_bytes)) + data_bytes
    crc = zlib.crc32(tail) & 0xFFFFFFFF
    header = HEADER.pack(
        MAGIC,
        *VERSION,
        HEADER.size,
        file_size,
        graph_offset,
        len(graph_bytes),
        data_offset,
        len(data_bytes),
        crc,
        0,
    )
    return header + tail


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], payload: bytes) -> None:
    """Write `payload` to `path` via a temporary file in the same directory and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_artifact(graph: Graph, path: str | os.PathLike[str]) -> int:
    """Serialize `graph` to `path` atomically; returns the file size."""
    payload = serialize(graph)
    atomic_write_bytes(path, payload)
    return len(payload)


class _Reader:
    def __init__(self, raw: bytes, where: str) -> None:
        self.raw, self.pos, self.where = raw, 0, where

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.raw):
            raise ArtifactError(f"{self.where}: truncated at byte {self.pos} (wanted {n} more)")
        out = self.raw[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size))

    def u8(self) -> int:
        return self.unpack("B")[0]

    def u32(self) -> int:
        return self.unpack("I")[0]

    def count(self, what: str, limit: int = 1 << 24) -> int:
        n = self.u32()
        if n > limit:
            raise ArtifactError(f"{self.where}: {what} count {n} is implausible")
        return n


def _expected_blob_sizes(
    enc_id: int, dtype: str, shape: tuple[int, ...], params: list[int], blob_sizes: list[int]
) -> list[int]:
    o = shape[0] if shape else 1
    k = math.prod(shape[1:]) if shape else 1
    if enc_id == 0:
        return [math.prod(shape) * np.dtype(DTYPE_NP[dtype]).itemsize]
    if enc_id == 1:
        return [o * k, 4 * o]
    if enc_id == 2:
        (block,) = params
        if block not in (1, 2, 4) or o % block:
            raise ArtifactError(f"block-sparse block {block} does not divide {o}")
        nnzb = blob_sizes[1] // 4
        return [4 * (o // block + 1), 4 * nnzb, 4 * nnzb * block]
    if enc_id == 3:
        if len(params) not in (2, 3):
            raise ArtifactError("codebook needs params (bits, groups[, flags])")
        bits, groups = params[:2]
        flags = params[2] if len(params) == 3 else 0
        if not 2 <= bits <= 8 or groups < 1 or flags & ~3 or (flags & CODEBOOK_U8_GROUP and groups > 256):
            raise ArtifactError(f"codebook bits {bits} / groups {groups} / flags {flags} out of range")
        sizes = [
            o * ((k * bits + 7) // 8),
            4 * groups * (1 << bits),
            o if flags & CODEBOOK_U8_GROUP else 4 * o,
        ]
        return sizes if flags & CODEBOOK_UNIT_SCALE else [*sizes, 4 * o]
    raise ArtifactError(f"unknown encoding id {enc_id}")


def _decode_constant(
    enc_id: int, dtype: str, shape: tuple[int, ...], params: list[int], blobs: list[bytes]
) -> WeightEncoding:
    o = shape[0]
    k = math.prod(shape[1:])
    if enc_id == 0:
        return Dense(np.frombuffer(blobs[0], dtype=DTYPE_NP[dtype]).reshape(shape).copy())
    if enc_id == 1:
        q = np.frombuffer(blobs[0], dtype=np.int8).reshape(shape).copy()
        return Int8PerChannel(q, np.frombuffer(blobs[1], dtype=np.float32).copy())
    if enc_id == 2:
        block = params[0]
        row_ptr = np.frombuffer(blobs[0], dtype=np.int32).copy()
        col_idx = np.frombuffer(blobs[1], dtype=np.int32).copy()
        if row_ptr[0] != 0 or np.any(np.diff(row_ptr) < 0) or row_ptr[-1] != len(col_idx):
            raise ArtifactError("block-sparse row_ptr is not a valid prefix sum")
        if len(col_idx) and (col_idx.min() < 0 or col_idx.max() >= k):
            raise ArtifactError("block-sparse column index out of range")
        values = np.frombuffer(blobs[2], dtype=np.float32).reshape(-1, block).copy()
        return BlockSparse(shape, block, row_ptr, col_idx, values)
    bits, groups = params[:2]
    flags = params[2] if len(params) == 3 else 0
    packed = np.frombuffer(blobs[0], dtype=np.uint8).reshape(o, -1).copy()
    table = np.frombuffer(blobs[1], dtype=np.float32).reshape(groups, 1 << bits).copy()
    group_dtype = np.uint8 if flags & CODEBOOK_U8_GROUP else np.int32
    group = np.frombuffer(blobs[2], dtype=group_dtype).astype(np.int32)
    if group.min() < 0 or group.max() >= groups:
        raise ArtifactError("codebook group index out of range")
    if flags & CODEBOOK_UNIT_SCALE:
        row_scale = np.ones(o, dtype=np.float32)
    else:
        row_scale = np.frombuffer(blobs[3], dtype=np.float32).copy()
    return Codebook(shape, bits, packed, table, group, row_scale)


def deserialize(raw: bytes, where: str = "artifact") -> Graph:
    """Parse and validate an artifact; raises ArtifactError with the reason."""
    if len(raw) < HEADER.size:
        raise ArtifactError(f"{where}: {len(raw)} bytes is too short for an edgefit artifact")
    magic, major, _minor, hsize, fsize, goff, gsize, doff, dsize, crc, _flags = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise ArtifactError(f"{where}: not an edgefit artifact (bad magic)")
    if major != VERSION[0]:
        raise ArtifactError(
            f"{where}: format version {major} is not supported (this edgefit reads {VERSION[0]})"
        )
    if hsize != HEADER.size or fsize != len(raw):
        raise ArtifactError(f"{where}: file size {len(raw)} does not match its header ({fsize}); truncated?")
    if not (hsize <= goff and goff + gsize <= doff and doff % ALIGN == 0 and doff + dsize == fsize):
        raise ArtifactError(f"{where}: section offsets are inconsistent")
    if zlib.crc32(raw[hsize:]) & 0xFFFFFFFF != crc:
        raise ArtifactError(f"{where}: checksum mismatch (the file is corrupt)")
    r = _Reader(raw[goff : goff + gsize], where)
    data = raw[doff : doff + dsize]
    strings = [
        r.take(r.count("string", 1 << 20)).decode("utf-8", "replace") for _ in range(r.count("strings"))
    ]

    def s() -> str:
        i = r.u32()
        if i >= len(strings):
            raise ArtifactError(f"{where}: string index {i} out of range")
        return strings[i]

    dtype_names = {v: k for k, v in DTYPE_IDS.items()}
    names: list[str] = []
    values: dict[str, Value] = {}
    constants: dict[str, WeightEncoding] = {}
    inputs_kind: list[str] = []
    for _ in range(r.count("values")):
        name = s()
        dtype_id, kind, enc_id, rank = r.unpack("BBBB")
        if dtype_id not in dtype_names or kind > 2 or rank > 8:
            raise ArtifactError(f"{where}: value {name!r} has bad dtype/kind/rank")
        shape = tuple(r.unpack(f"{rank}q"))
        if any(d < 1 for d in shape) or math.prod(shape) >= 1 << 40:
            raise ArtifactError(f"{where}: value {name!r} has bad shape {shape}")
        dtype = dtype_names[dtype_id]
        values[name] = Value(name, shape, dtype)
        names.append(name)
        if kind == KIND_INPUT:
            inputs_kind.append(name)
        if kind == KIND_CONSTANT:
            blob_refs = [r.unpack("QQ") for _ in range(r.count("blobs", 16))]
            params = list(r.unpack(f"{r.count('params', 16)}q"))
            for off, size in blob_refs:
                if off % ALIGN or off + size > len(data):
                    raise ArtifactError(f"{where}: constant {name!r} data lies outside the file")
            sizes = [size for _, size in blob_refs]
            expected = _expected_blob_sizes(enc_id, dtype, shape, params, sizes)
            if sizes != expected:
                raise ArtifactError(f"{where}: constant {name!r} blob sizes {sizes} != expected {expected}")
            constants[name] = _decode_constant(
                enc_id, dtype, shape, params, [data[o : o + n] for o, n in blob_refs]
            )

    def ids(what: str) -> tuple[str, ...]:
        out = []
        for _ in range(r.count(what, 1 << 16)):
            i = r.u32()
            if i >= len(names):
                raise ArtifactError(f"{where}: {what} value index {i} out of range")
            out.append(names[i])
        return tuple(out)

    inputs = ids("inputs")
    outputs = ids("outputs")
    nodes = []
    for _ in range(r.count("nodes")):
        op, name, source = s(), s(), s()
        if op not in OPS:
            raise ArtifactError(f"{where}: node {name!r} has unknown op {op!r}")
        ins, outs = ids("node inputs"), ids("node outputs")
        attrs: dict[str, Any] = {}
        for _ in range(r.count("attrs", 64)):
            key = s()
            atype = r.u8()
            n = r.count("attr values", 1 << 16)
            if atype == ATTR_INTS:
                val: Any = tuple(r.unpack(f"{n}q"))
            elif atype == ATTR_FLOATS:
                val = tuple(r.unpack(f"{n}d"))
            elif atype in (ATTR_INT, ATTR_FLOAT) and n == 1:
                val = r.unpack("q" if atype == ATTR_INT else "d")[0]
            elif atype == ATTR_STRING:
                val = s()
            else:
                raise ArtifactError(f"{where}: node {name!r} attr {key!r} has bad type {atype}")
            attrs[key] = val
        nodes.append(Node(op, name, ins, outs, freeze(attrs), source))
    meta = {s(): s() for _ in range(r.count("meta"))}
    graph = Graph(inputs, outputs, tuple(nodes), values, constants, meta)
    from edgefit.compiler.ir import IRError, verify

    try:
        return verify(graph)
    except IRError as exc:
        raise ArtifactError(f"{where}: {exc}") from None


def read_artifact(path: str | os.PathLike[str]) -> Graph:
    return deserialize(Path(path).read_bytes(), where=str(path))
