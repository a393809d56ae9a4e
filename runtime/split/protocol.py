"""The split-computing wire format: framed binary messages (magic, version, type, request id, length,
CRC-32 of the payload) and the HMAC-SHA256 challenge-response that opens every connection.

Frame = 20-byte little-endian header + payload:

    magic "EFSC" | version u8 | type u8 | flags u16 (0) | request id u32 | payload length u32 | crc32 u32

Conversation: client HELLO(client nonce) -> server CHALLENGE(server nonce, server proof) -> client
AUTH(client proof) -> server READY(JSON: model and tensor specs) -> INFER/RESULT pairs -> BYE. Any
error is an ERROR frame (code u16 + UTF-8 message); framing errors also close the connection. The
secret itself never crosses the wire: each side proves it holds it with an HMAC over both nonces.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import socket
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

MAGIC = b"EFSC"
VERSION = 1
HEADER = struct.Struct("<4sBBHIII")
HEADER_SIZE = HEADER.size  # 20 bytes
NONCE_SIZE = 32
PROOF_SIZE = 32  # HMAC-SHA256
#: Largest payload either side accepts unless configured otherwise (a 224x224x3 f32 image is 0.6 MB).
DEFAULT_MAX_PAYLOAD = 16 << 20
MIN_SECRET_BYTES = 8


class MsgType(IntEnum):
    HELLO = 1
    CHALLENGE = 2
    AUTH = 3
    READY = 4
    INFER = 5
    RESULT = 6
    ERROR = 7
    BYE = 8


class ErrorCode(IntEnum):
    BAD_MAGIC = 1
    BAD_VERSION = 2
    TOO_LARGE = 3
    BAD_CHECKSUM = 4
    TRUNCATED = 5
    BAD_PAYLOAD = 6  # the frame is intact but its content is not a valid message
    UNEXPECTED = 7  # a message type not allowed at this point of the conversation
    AUTH_FAILED = 8
    TIMEOUT = 9
    BAD_REQUEST = 10  # a valid message asking for something the server cannot do (wrong shape, mode)
    BUSY = 11
    INTERNAL = 12


#: Errors after which the byte stream cannot be trusted: the connection is closed.
FATAL = frozenset(
    {
        ErrorCode.BAD_MAGIC,
        ErrorCode.BAD_VERSION,
        ErrorCode.TOO_LARGE,
        ErrorCode.BAD_CHECKSUM,
        ErrorCode.TRUNCATED,
        ErrorCode.BAD_PAYLOAD,
        ErrorCode.UNEXPECTED,
        ErrorCode.AUTH_FAILED,
        ErrorCode.TIMEOUT,
        ErrorCode.BUSY,
    }
)


class ProtocolError(Exception):
    """A frame or message that breaks the protocol; `code` says how (sent back in an ERROR frame)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)


class RemoteError(Exception):
    """The peer answered with an ERROR frame."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Frame:
    type: MsgType
    request_id: int
    payload: bytes

    @property
    def wire_size(self) -> int:
        return HEADER_SIZE + len(self.payload)


def encode_frame(msg_type: MsgType, request_id: int, payload: bytes = b"") -> bytes:
    crc = zlib.crc32(payload) & 0xFFFFFFFF
    return HEADER.pack(MAGIC, VERSION, int(msg_type), 0, request_id & 0xFFFFFFFF, len(payload), crc) + payload


def parse_header(raw: bytes, max_payload: int) -> tuple[MsgType, int, int, int]:
    """(type, request id, payload length, crc) of a 20-byte header; ProtocolError on anything off."""
    magic, version, msg_type, flags, request_id, length, crc = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ProtocolError(ErrorCode.BAD_MAGIC, f"bad magic {magic!r} (expected {MAGIC!r})")
    if version != VERSION:
        raise ProtocolError(ErrorCode.BAD_VERSION, f"protocol version {version} (this side speaks {VERSION})")
    if length > max_payload:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"payload of {length} bytes exceeds the {max_payload}-byte limit"
        )
    try:
        kind = MsgType(msg_type)
    except ValueError:
        raise ProtocolError(ErrorCode.BAD_PAYLOAD, f"unknown message type {msg_type}") from None
    if flags:
        raise ProtocolError(ErrorCode.BAD_PAYLOAD, f"unknown flags {flags:#x}")
    return kind, request_id, length, crc


def check_payload(payload: bytes, crc: int) -> None:
    if zlib.crc32(payload) & 0xFFFFFFFF != crc:
        raise ProtocolError(ErrorCode.BAD_CHECKSUM, "payload checksum (CRC-32) mismatch")


def encode_error(code: ErrorCode, message: str) -> bytes:
    return struct.pack("<H", int(code)) + message.encode("utf-8", "replace")[:1024]


def decode_error(payload: bytes) -> RemoteError:
    if len(payload) < 2:
        return RemoteError(0, "malformed error frame")
    (code,) = struct.unpack_from("<H", payload)
    return RemoteError(code, payload[2:].decode("utf-8", "replace"))


# --- reading frames ------------------------------------------------------------------------------


async def read_frame(
    reader: asyncio.StreamReader, max_payload: int, idle_timeout: float, frame_timeout: float
) -> Frame | None:
    """The next frame, or None on a clean end of stream before a header starts. The header must
    start within `idle_timeout`; the rest of the frame must follow within `frame_timeout`."""
    try:
        first = await asyncio.wait_for(reader.read(1), idle_timeout)
    except TimeoutError:
        raise ProtocolError(ErrorCode.TIMEOUT, f"no request within {idle_timeout:g} s") from None
    if not first:
        return None
    try:
        rest = await asyncio.wait_for(reader.readexactly(HEADER_SIZE - 1), frame_timeout)
        kind, request_id, length, crc = parse_header(first + rest, max_payload)
        payload = await asyncio.wait_for(reader.readexactly(length), frame_timeout) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            ErrorCode.TRUNCATED, f"connection closed inside a frame ({len(exc.partial)} bytes)"
        ) from None
    except TimeoutError:
        raise ProtocolError(ErrorCode.TIMEOUT, f"frame not completed within {frame_timeout:g} s") from None
    check_payload(payload, crc)
    return Frame(kind, request_id, payload)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """n bytes from a blocking socket (its timeout applies to each recv); ConnectionError on EOF."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 16))
        if not chunk:
            raise ConnectionError(f"connection closed by the peer ({len(buf)} of {n} bytes received)")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Frame:
    """The next frame from a blocking socket (ConnectionError on EOF, socket.timeout on a stall)."""
    kind, request_id, length, crc = parse_header(recv_exactly(sock, HEADER_SIZE), max_payload)
    payload = recv_exactly(sock, length) if length else b""
    check_payload(payload, crc)
    return Frame(kind, request_id, payload)


# --- authentication --------------------------------------------------------------------------------


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def proof(secret: bytes, role: bytes, first: bytes, second: bytes) -> bytes:
    """HMAC-SHA256 over a role label and both nonces; the label keeps a server proof from ever being
    replayed as a client proof (and vice versa)."""
    return hmac.new(secret, b"edgefit-split/1 " + role + b" " + first + second, hashlib.sha256).digest()


def server_proof(secret: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    return proof(secret, b"server", client_nonce, server_nonce)


def client_proof(secret: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    return proof(secret, b"client", server_nonce, client_nonce)


def verify_proof(expected: bytes, got: bytes) -> bool:
    return hmac.compare_digest(expected, got)


def as_secret(secret: bytes | str) -> bytes:
    """The shared secret as bytes; too short a secret is refused rather than silently weak."""
    from edgefit.errors import UserError

    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(raw) < MIN_SECRET_BYTES:
        raise UserError(f"the shared secret must be at least {MIN_SECRET_BYTES} bytes (got {len(raw)})")
    return raw


def read_secret_file(path: str | os.PathLike[str]) -> bytes:
    """The secret in a file (surrounding whitespace and the trailing newline dropped)."""
    from edgefit.errors import UserError

    try:
        raw = Path(path).read_bytes().strip()
    except OSError as exc:
        raise UserError(f"cannot read the secret file {path}: {exc.strerror}") from None
    if not raw:
        raise UserError(f"the secret file {path} is empty")
    return as_secret(raw)
