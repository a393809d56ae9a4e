"""Wire format: frames and tensor payloads round-trip; every malformed or hostile input is refused
with the right error code before anything large is allocated; HMAC proofs are bound to role and nonces."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from edgefit.errors import UserError
from edgefit.runtime.split import codec
from edgefit.runtime.split.codec import Tensor
from edgefit.runtime.split.protocol import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    ErrorCode,
    MsgType,
    ProtocolError,
    as_secret,
    check_payload,
    client_proof,
    decode_error,
    encode_error,
    encode_frame,
    parse_header,
    server_proof,
)


def test_frame_round_trip() -> None:
    frame = encode_frame(MsgType.INFER, 7, b"hello")
    kind, rid, length, crc = parse_header(frame[:HEADER_SIZE], 1 << 20)
    assert (kind, rid, length) == (MsgType.INFER, 7, 5) and HEADER_SIZE == 20
    check_payload(frame[HEADER_SIZE:], crc)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (HEADER.pack(b"HTTP", 1, 5, 0, 1, 0, 0), ErrorCode.BAD_MAGIC),
        (HEADER.pack(MAGIC, 9, 5, 0, 1, 0, 0), ErrorCode.BAD_VERSION),
        (HEADER.pack(MAGIC, 1, 5, 0, 1, 0xFFFFFFFF, 0), ErrorCode.TOO_LARGE),
        (HEADER.pack(MAGIC, 1, 99, 0, 1, 0, 0), ErrorCode.BAD_PAYLOAD),
        (HEADER.pack(MAGIC, 1, 5, 4, 1, 0, 0), ErrorCode.BAD_PAYLOAD),
    ],
)
def test_bad_headers_are_refused(header: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_header(header, 1 << 20)
    assert info.value.code == code


def test_checksum_mismatch() -> None:
    with pytest.raises(ProtocolError) as info:
        check_payload(b"payload", zlib.crc32(b"payloaX"))
    assert info.value.code == ErrorCode.BAD_CHECKSUM


def test_error_payload_round_trip() -> None:
    err = decode_error(encode_error(ErrorCode.AUTH_FAILED, "nope"))
    assert err.code == ErrorCode.AUTH_FAILED and err.message == "nope"


@pytest.mark.parametrize("compress", [False, True])
def test_tensors_round_trip(compress: bool) -> None:
    rng = np.random.default_rng(0)
    q = np.zeros((1, 4, 4, 4), np.uint8)
    q[0, :2] = rng.integers(0, 255, (2, 4, 4))
    tensors = [
        Tensor("split.q", q, 0.0123, 7),
        Tensor("logits", rng.standard_normal((2, 10)).astype(np.float32)),
    ]
    payload = codec.encode_tensors(tensors, compress=compress)
    back = codec.decode_tensors(payload)
    assert [t.name for t in back] == ["split.q", "logits"]
    np.testing.assert_array_equal(back[0].array, q)
    assert (
        back[0].array.dtype == np.uint8 and back[0].scale == pytest.approx(0.0123) and back[0].zero_point == 7
    )
    np.testing.assert_array_equal(back[1].array, tensors[1].array)
    assert back[1].scale is None


def test_zstd_only_where_it_helps() -> None:
    zeros = np.zeros((1, 64, 16, 16), np.uint8)
    noise = np.random.default_rng(1).integers(0, 256, 4096).astype(np.uint8)
    raw = codec.encode_tensors([Tensor("z", zeros)])
    packed = codec.encode_tensors([Tensor("z", zeros)], compress=True)
    assert len(packed) < len(raw) / 10
    # Incompressible data stays raw: compression never makes the payload bigger.
    assert len(codec.encode_tensors([Tensor("n", noise)], compress=True)) == len(
        codec.encode_tensors([Tensor("n", noise)])
    )


def _one_tensor(shape: tuple[int, ...], data: bytes, codec_id: int = codec.RAW, dtype: int = 0) -> bytes:
    return (
        struct.pack("<HH", 1, 1)
        + b"x"
        + codec._FIXED.pack(dtype, codec_id, len(shape), 0, 0.0, 0)
        + struct.pack(f"<{len(shape)}I", *shape)
        + struct.pack("<I", len(data))
        + data
    )


def test_hostile_payloads_are_refused() -> None:
    import zstandard

    bomb = zstandard.ZstdCompressor().compress(bytes(8 << 20))  # 8 MiB of zeros in a few hundred bytes
    cases = [
        b"",  # no count
        _one_tensor((4,), b"abc"),  # 3 bytes for 4 elements
        _one_tensor((4,), b"abcde"),  # too many bytes
        _one_tensor((4,), b"abcd")[:-2],  # truncated
        _one_tensor((4,), b"abcd") + b"junk",  # stray bytes
        _one_tensor((4,), b"abcd", dtype=42),  # unknown dtype
        _one_tensor((4,), bomb, codec_id=codec.ZSTD),  # frame size disagrees with the shape
        _one_tensor((1 << 30, 1 << 30), b""),  # declared size beyond the limit
        struct.pack("<H", 1000),  # too many tensors
    ]
    for payload in cases:
        with pytest.raises(ProtocolError) as info:
            codec.decode_tensors(payload)
        assert info.value.code == ErrorCode.BAD_PAYLOAD, payload[:40]


def test_proofs_depend_on_secret_role_and_nonces() -> None:
    a, b = b"n" * 32, b"m" * 32
    assert server_proof(b"secret-1", a, b) != client_proof(b"secret-1", a, b)
    assert server_proof(b"secret-1", a, b) != server_proof(b"secret-2", a, b)
    assert server_proof(b"secret-1", a, b) != server_proof(b"secret-1", b, a)
    assert len(client_proof(b"secret-1", a, b)) == 32


def test_short_secret_is_a_user_error() -> None:
    with pytest.raises(UserError, match="at least 8 bytes"):
        as_secret("short")
