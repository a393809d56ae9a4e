"""Tensor payloads of the split protocol: named arrays with dtype, shape and (for the u8 bottleneck)
scale/zero point, each optionally zstd-coded (kept only where it actually saves bytes).

One tensor, little endian:

    name length u16 | name | dtype u8 | codec u8 | ndim u8 | flags u8 | scale f64 | zero point i32
    | shape u32 x ndim | stored length u32 | data

A list is a u16 count followed by tensors. Decoding checks every length against the shape before
allocating, and bounds zstd's output, so a hostile payload cannot make the peer allocate more than
the frame size limit allows.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from edgefit.runtime.split.protocol import ErrorCode, ProtocolError

DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<u1"),
    1: np.dtype("<i1"),
    2: np.dtype("<f4"),
    3: np.dtype("<f2"),
    4: np.dtype("<i4"),
    5: np.dtype("<i8"),
}
DTYPE_CODES = {dt: code for code, dt in DTYPES.items()}
RAW, ZSTD = 0, 1
CODECS = ("raw", "zstd")
MAX_NDIM = 8
MAX_TENSORS = 64
MAX_DECODED_BYTES = 256 << 20
_FIXED = struct.Struct("<BBBBdi")  # dtype, codec, ndim, flags, scale, zero point
_HAS_QUANT = 1


@dataclass(frozen=True)
class Tensor:
    """A named array; `scale`/`zero_point` describe a quantized one (real = scale * (q - zero_point))."""

    name: str
    array: np.ndarray
    scale: float | None = None
    zero_point: int | None = None


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def _compress(data: bytes, level: int) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(data)


def encode_tensors(tensors: list[Tensor], compress: bool = False, level: int = 3) -> bytes:
    """The tensors as one payload; with `compress`, each is zstd-coded when that is smaller."""
    if len(tensors) > MAX_TENSORS:
        raise ValueError(f"at most {MAX_TENSORS} tensors per message")
    use_zstd = compress and zstd_available()
    parts = [struct.pack("<H", len(tensors))]
    for t in tensors:
        arr = np.ascontiguousarray(t.array)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dt not in DTYPE_CODES:
            raise ValueError(f"tensor {t.name!r}: dtype {arr.dtype} cannot be sent")
        if arr.ndim > MAX_NDIM:
            raise ValueError(f"tensor {t.name!r}: {arr.ndim} dimensions (at most {MAX_NDIM})")
        data = arr.astype(dt, copy=False).tobytes()
        codec = RAW
        if use_zstd and data:
            packed = _compress(data, level)
            if len(packed) < len(data):
                data, codec = packed, ZSTD
        name = t.name.encode()
        quant = t.scale is not None
        parts += [
            struct.pack("<H", len(name)),
            name,
            _FIXED.pack(
                DTYPE_CODES[dt],
                codec,
                arr.ndim,
                _HAS_QUANT if quant else 0,
                float(t.scale) if quant else 0.0,
                int(t.zero_point or 0),
            ),
            struct.pack(f"<{arr.ndim}I", *arr.shape),
            struct.pack("<I", len(data)),
            data,
        ]
    return b"".join(parts)


class _Reader:
    def __init__(self, buf: bytes, offset: int = 0) -> None:
        self.buf = buf
        self.pos = offset

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ProtocolError(ErrorCode.BAD_PAYLOAD, "tensor payload is shorter than its contents claim")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: struct.Struct | str) -> tuple:
        s = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        return s.unpack(self.take(s.size))


def decode_tensors(payload: bytes, offset: int = 0, max_bytes: int = MAX_DECODED_BYTES) -> list[Tensor]:
    """Inverse of encode_tensors (starting at `offset`); ProtocolError(BAD_PAYLOAD) on anything off."""
    r = _Reader(payload, offset)
    (count,) = r.unpack("<H")
    if count > MAX_TENSORS:
        raise ProtocolError(ErrorCode.BAD_PAYLOAD, f"{count} tensors in one message (at most {MAX_TENSORS})")
    out, total = [], 0
    for _ in range(count):
        (name_len,) = r.unpack("<H")
        try:
            name = r.take(name_len).decode()
        except UnicodeDecodeError:
            raise ProtocolError(ErrorCode.BAD_PAYLOAD, "tensor name is not UTF-8") from None
        code, codec, ndim, flags, scale, zero_point = r.unpack(_FIXED)
        if code not in DTYPES or codec not in (RAW, ZSTD) or ndim > MAX_NDIM or flags & ~_HAS_QUANT:
            raise ProtocolError(ErrorCode.BAD_PAYLOAD, f"tensor {name!r}: unknown dtype, codec or flags")
        shape = r.unpack(f"<{ndim}I")
        (stored,) = r.unpack("<I")
        data = r.take(stored)
        dt = DTYPES[code]
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        total += nbytes
        if total > max_bytes:
            raise ProtocolError(ErrorCode.BAD_PAYLOAD, f"tensors decode to more than {max_bytes} bytes")
        if codec == ZSTD:
            data = _decompress(data, nbytes, name)
        if len(data) != nbytes:
            raise ProtocolError(
                ErrorCode.BAD_PAYLOAD, f"tensor {name!r}: {len(data)} data bytes for shape {shape} of {dt}"
            )
        arr = np.frombuffer(data, dtype=dt).reshape(shape).astype(dt.newbyteorder("="), copy=True)
        quant = bool(flags & _HAS_QUANT)
        if quant and not np.isfinite(scale):
            raise ProtocolError(ErrorCode.BAD_PAYLOAD, f"tensor {name!r}: scale is not finite")
        out.append(Tensor(name, arr, scale if quant else None, zero_point if quant else None))
    if r.pos != len(payload):
        raise ProtocolError(ErrorCode.BAD_PAYLOAD, f"{len(payload) - r.pos} stray bytes after the tensors")
    return out


def _decompress(data: bytes, nbytes: int, name: str) -> bytes:
    if not zstd_available():
        raise ProtocolError(
            ErrorCode.BAD_PAYLOAD, f"tensor {name!r} is zstd-coded; this side has no zstandard"
        )
    import zstandard

    try:
        # zstd trusts the content size in the frame header for its allocation: check it against the
        # declared tensor size first, so a decompression bomb is refused before anything is allocated.
        if zstandard.frame_content_size(data) != nbytes:
            raise ProtocolError(
                ErrorCode.BAD_PAYLOAD, f"tensor {name!r}: zstd frame size disagrees with its shape"
            )
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=max(nbytes, 1))
    except zstandard.ZstdError as exc:
        raise ProtocolError(ErrorCode.BAD_PAYLOAD, f"tensor {name!r}: bad zstd data ({exc})") from None
