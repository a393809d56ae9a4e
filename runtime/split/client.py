"""The device side of split computing: run the head locally, send the u8 bottleneck to the edge server,
receive the prediction; when the server cannot be reached (refused, timed out, died mid-request) either
finish locally (policy "fallback") or fail with one clear line (policy "fail")."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgefit.errors import UserError
from edgefit.runtime.split import codec
from edgefit.runtime.split.codec import Tensor
from edgefit.runtime.split.engine import SplitModel
from edgefit.runtime.split.protocol import (
    DEFAULT_MAX_PAYLOAD,
    ErrorCode,
    MsgType,
    ProtocolError,
    RemoteError,
    as_secret,
    client_proof,
    decode_error,
    encode_frame,
    new_nonce,
    recv_frame,
    server_proof,
    verify_proof,
)
from edgefit.runtime.split.server import MODE_CODES, REQUEST, RESULT
from edgefit.runtime.split.shaper import ShapedSocket, Shaper

POLICIES = ("fallback", "fail")


class SplitUnavailable(Exception):
    """The server could not answer (unreachable, timed out, closed, broke the protocol, overloaded)."""


class AuthError(UserError):
    """The server refused our secret, or could not prove it holds the same one."""


@dataclass
class SplitReport:
    """What one split inference cost and where it ran. Times in ms; bytes on the wire, frames included."""

    mode: str  # "split" (head here, tail on the server), "full-offload", or "local-fallback"
    server: str
    backend: str  # runtime of the local part: "native" or "reference"
    bytes_sent: int = 0
    bytes_received: int = 0
    payload_bytes: int = 0  # the tensor data itself (u8 bottleneck or f32 input), before zstd
    fp32_split_bytes: int = 0  # the unmodified split tensor in fp32: what the bottleneck saves against
    compression: str = "raw"  # "zstd" when entropy coding made the tensor smaller
    head_ms: float = 0.0
    network_ms: float = 0.0  # round trip minus the server's queue and compute time
    tail_ms: float = 0.0  # tail compute (server-reported, or local in fallback)
    server_queue_ms: float = 0.0
    server_batch: int = 0
    total_ms: float = 0.0
    top1: list[int] = field(default_factory=list)
    fallback_reason: str = ""

    @property
    def fell_back(self) -> bool:
        return self.mode == "local-fallback"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fell_back": self.fell_back}

    def summary(self) -> str:
        where = (
            f"fell back to local ({self.fallback_reason})"
            if self.fell_back
            else f"{self.mode} via {self.server}"
        )
        return (
            f"{where}: sent {self.bytes_sent} B, received {self.bytes_received} B, head {self.head_ms:.2f} ms, "
            f"network {self.network_ms:.2f} ms, tail {self.tail_ms:.2f} ms, total {self.total_ms:.2f} ms"
        )


def parse_address(server: str) -> tuple[str, int]:
    host, sep, port = server.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UserError(f"server address {server!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class SplitClient:
    """One authenticated connection to an edge server; `infer` may be called many times on it."""

    def __init__(
        self,
        server: str,
        secret: bytes | str,
        *,
        timeout_s: float = 5.0,
        shaper: Shaper | None = None,
        ssl_context: ssl.SSLContext | None = None,
        compress: bool = True,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.server = server
        self.host, self.port = parse_address(server)
        self.secret = as_secret(secret)
        self.timeout_s = timeout_s
        self.shaper = shaper
        self.ssl_context = ssl_context
        self.compress = compress
        self.max_payload = max_payload
        self.sock: Any = None
        self.info: dict[str, Any] = {}
        self.handshake_bytes = 0
        self._next_id = 1

    # Each step below bounds its wait by timeout_s; every failure to get an answer is SplitUnavailable.
    def connect(self) -> SplitClient:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                raw = self.ssl_context.wrap_socket(raw, server_hostname=self.host)
            self.sock = self.shaper.wrap(raw) if self.shaper else raw
            if isinstance(self.sock, ShapedSocket):
                self.sock.connect_delay()
            self._handshake()
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise AuthError(f"TLS: the server's certificate is not trusted ({exc.verify_message})") from None
        except (OSError, ProtocolError, ConnectionError, RemoteError) as exc:
            self.close()
            raise SplitUnavailable(_describe(exc, self.server)) from None
        except BaseException:
            self.close()
            raise
        return self

    def _exchange(self, kind: MsgType, payload: bytes) -> tuple[Any, int, int]:
        """Send one frame, read the answer; (frame, bytes sent, bytes received)."""
        request_id = self._next_id
        self._next_id += 1
        data = encode_frame(kind, request_id, payload)
        self.sock.sendall(data)
        frame = recv_frame(self.sock, self.max_payload)
        if frame.type == MsgType.ERROR:
            err = decode_error(frame.payload)
            if err.code == ErrorCode.AUTH_FAILED:
                raise AuthError(f"the split server {self.server} refused our secret: {err.message}")
            raise err
        if frame.request_id != request_id:
            raise ProtocolError(
                ErrorCode.UNEXPECTED, f"answer to request {frame.request_id}, expected {request_id}"
            )
        return frame, len(data), frame.wire_size

    def _handshake(self) -> None:
        nonce = new_nonce()
        challenge, s1, r1 = self._exchange(MsgType.HELLO, nonce)
        if challenge.type != MsgType.CHALLENGE or len(challenge.payload) != 64:
            raise ProtocolError(ErrorCode.UNEXPECTED, f"expected CHALLENGE, got {challenge.type.name}")
        server_nonce, proof = challenge.payload[:32], challenge.payload[32:]
        if not verify_proof(server_proof(self.secret, nonce, server_nonce), proof):
            # Checked before we prove anything: an impostor learns nothing it could replay.
            raise AuthError(f"the split server {self.server} does not know our shared secret")
        ready, s2, r2 = self._exchange(MsgType.AUTH, client_proof(self.secret, nonce, server_nonce))
        if ready.type != MsgType.READY:
            raise ProtocolError(ErrorCode.UNEXPECTED, f"expected READY, got {ready.type.name}")
        try:
            self.info = json.loads(ready.payload)
        except ValueError:
            raise ProtocolError(ErrorCode.BAD_PAYLOAD, "READY does not carry JSON") from None
        self.handshake_bytes = s1 + s2 + r1 + r2

    def infer(self, mode: str, tensors: list[Tensor]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Run `mode` ("tail" or "full") on the server; (outputs by name, wire statistics)."""
        if self.sock is None:
            raise SplitUnavailable("not connected")
        payload = REQUEST.pack(MODE_CODES[mode]) + codec.encode_tensors(tensors, compress=self.compress)
        t0 = time.perf_counter()
        try:
            frame, sent, received = self._exchange(MsgType.INFER, payload)
            if frame.type != MsgType.RESULT or len(frame.payload) < RESULT.size:
                raise ProtocolError(ErrorCode.UNEXPECTED, f"expected RESULT, got {frame.type.name}")
            queue_us, compute_us, batch = RESULT.unpack_from(frame.payload)
            outputs = {t.name: t.array for t in codec.decode_tensors(frame.payload, RESULT.size)}
        except RemoteError as exc:
            if exc.code == ErrorCode.BAD_REQUEST:
                raise UserError(
                    f"the split server {self.server} rejected the request: {exc.message}"
                ) from None
            self.close()
            raise SplitUnavailable(f"the split server {self.server} answered with an error: {exc}") from None
        except (OSError, ProtocolError, ConnectionError, struct.error) as exc:
            self.close()
            raise SplitUnavailable(_describe(exc, self.server)) from None
        rtt = time.perf_counter() - t0
        stats = {
            "bytes_sent": sent,
            "bytes_received": received,
            "round_trip_s": rtt,
            "server_queue_s": queue_us * 1e-6,
            "server_compute_s": compute_us * 1e-6,
            "server_batch": batch,
            "compression": "zstd" if _uses_zstd(payload) else "raw",
        }
        return outputs, stats

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.settimeout(0.5)
                self.sock.sendall(encode_frame(MsgType.BYE, 0))
            except (OSError, AttributeError):
                pass
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    def __enter__(self) -> SplitClient:
        return self.connect() if self.sock is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _uses_zstd(payload: bytes) -> bool:
    try:
        return any(t for t in _codecs(payload) if t == codec.ZSTD)
    except (struct.error, IndexError):
        return False


def _codecs(payload: bytes) -> list[int]:
    """The codec byte of each tensor in a request payload (without decoding the data)."""
    pos = REQUEST.size
    (count,) = struct.unpack_from("<H", payload, pos)
    pos += 2
    out = []
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", payload, pos)
        pos += 2 + name_len
        _, codec_id, ndim, _, _, _ = codec._FIXED.unpack_from(payload, pos)
        pos += codec._FIXED.size + 4 * ndim
        (stored,) = struct.unpack_from("<I", payload, pos)
        pos += 4 + stored
        out.append(codec_id)
    return out


def _describe(exc: BaseException, server: str) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"the split server {server} did not answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return f"the split server {server} refused the connection (is 'edgefit serve' running?)"
    if isinstance(exc, RemoteError):
        return f"the split server {server} answered with an error: {exc}"
    if isinstance(exc, ProtocolError):
        return f"the split server {server} broke the protocol: {exc}"
    if isinstance(exc, ConnectionError):
        return f"the connection to the split server {server} was lost: {exc}"
    return (
        f"the split server {server} is unreachable: {exc.strerror or exc}"
        if isinstance(exc, OSError)
        else str(exc)
    )


class SplitPipeline:
    """Head here, tail there, one connection kept open across inferences (reconnecting when it broke).

    policy "fallback": when the server cannot answer, the tail runs here on the head's output (head + tail
    is exactly the full model) and the report says so; "fail": UserError. A wrong secret or a request the
    server rejects is the user's mistake and raises UserError under either policy."""

    def __init__(
        self,
        bundle_dir: str | os.PathLike[str],
        server: str,
        *,
        secret: bytes | str,
        policy: str = "fallback",
        shaper: Shaper | None = None,
        timeout_s: float = 5.0,
        compress: bool = True,
        backend: str = "auto",
        threads: int = 1,
        ssl_context: ssl.SSLContext | None = None,
        model: SplitModel | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise UserError(f"unknown split policy {policy!r}; choose one of {', '.join(POLICIES)}")
        self.model = model or SplitModel(bundle_dir, backend=backend, threads=threads)
        self.policy = policy
        self.client = SplitClient(
            server, secret, timeout_s=timeout_s, shaper=shaper, ssl_context=ssl_context, compress=compress
        )

    def _connected(self) -> SplitClient:
        if self.client.sock is None:
            self.client.connect()
            info = self.client.info
            if (
                info.get("head_sha256")
                and self.model.head_sha256
                and info["head_sha256"] != self.model.head_sha256
            ):
                self.client.close()
                raise UserError(
                    f"the split server {self.client.server} serves a different bundle "
                    f"({info.get('model')}, head {info['head_sha256'][:12]}); compile and serve the same bundle"
                )
        return self.client

    def run(
        self, inputs: dict[str, np.ndarray], mode: str = "split"
    ) -> tuple[dict[str, np.ndarray], SplitReport]:
        """mode "split": head here, tail on the server; "full-offload": raw inputs to the server's full model."""
        if mode not in ("split", "full-offload"):
            raise UserError(f"unknown split mode {mode!r}")
        m = self.model
        missing = [n for n in m.inputs if n not in inputs]
        if missing:
            raise UserError(f"inputs lack {', '.join(missing)} (the model takes {', '.join(m.inputs)})")
        feeds = {n: _as_input(inputs[n], m.head_part.spec(n), n) for n in m.inputs}
        report = SplitReport(mode=mode, server=self.client.server, backend=m.backend)
        t0 = time.perf_counter()
        split = None
        if mode == "split":
            split = m.head(feeds)
            report.head_ms = (time.perf_counter() - t0) * 1e3
            tensors = [Tensor(m.split_name, split, m.scale, m.zero_point)]
            report.payload_bytes = split.nbytes
            report.fp32_split_bytes = m.split_fp32_bytes()
        else:
            tensors = [Tensor(n, feeds[n]) for n in m.inputs]
            report.payload_bytes = sum(a.nbytes for a in feeds.values())
        try:
            client = self._connected()
            outputs, stats = client.infer("tail" if mode == "split" else "full", tensors)
        except SplitUnavailable as exc:
            if self.policy == "fail":
                raise UserError(f"split inference failed: {exc}") from None
            t1 = time.perf_counter()
            if split is None:
                split = m.head(feeds)
            outputs = m.tail(split)
            report.mode, report.fallback_reason = "local-fallback", str(exc)
            report.tail_ms = (time.perf_counter() - t1) * 1e3
            report.total_ms = (time.perf_counter() - t0) * 1e3
            report.top1 = _top1(outputs)
            return outputs, report
        report.bytes_sent, report.bytes_received = stats["bytes_sent"], stats["bytes_received"]
        report.compression = stats["compression"]
        report.tail_ms = stats["server_compute_s"] * 1e3
        report.server_queue_ms = stats["server_queue_s"] * 1e3
        report.server_batch = stats["server_batch"]
        report.network_ms = (
            max(0.0, stats["round_trip_s"] - stats["server_compute_s"] - stats["server_queue_s"]) * 1e3
        )
        report.total_ms = (time.perf_counter() - t0) * 1e3
        result = {n: outputs[n] for n in m.outputs if n in outputs}
        if set(result) != set(m.outputs):
            raise UserError(
                f"the split server {self.client.server} answered without outputs {list(m.outputs)}"
            )
        report.top1 = [int(v) for n in m.outputs if f"{n}.top1" in outputs for v in outputs[f"{n}.top1"]]
        return result, report

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SplitPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_input(arr: Any, spec: Any, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if tuple(a.shape) != spec.shape:
        raise UserError(f"input {name!r} has shape {tuple(a.shape)}, the model expects {spec.shape}")
    return np.ascontiguousarray(a, dtype=np.float32 if spec.dtype == "f32" else a.dtype)


def _top1(outputs: dict[str, np.ndarray]) -> list[int]:
    return [int(v) for a in outputs.values() if a.ndim == 2 for v in a.argmax(axis=1)]


def run_split(
    bundle_dir: str | os.PathLike[str],
    server: str,
    inputs: dict[str, np.ndarray],
    *,
    secret: bytes | str,
    policy: str = "fallback",
    shaper: Shaper | None = None,
    timeout_s: float = 5.0,
    compress: bool = True,
    backend: str = "auto",
    threads: int = 1,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[dict[str, np.ndarray], SplitReport]:
    """One split inference of a split bundle: head here, tail on `server` ("HOST:PORT").

    Returns the model's outputs (by graph output name, as the single-process model names them) and a
    SplitReport. policy "fallback" finishes locally when the server cannot answer within `timeout_s`
    (the report's mode is then "local-fallback"); "fail" raises UserError instead."""
    with SplitPipeline(
        bundle_dir,
        server,
        secret=secret,
        policy=policy,
        shaper=shaper,
        timeout_s=timeout_s,
        compress=compress,
        backend=backend,
        threads=threads,
        ssl_context=ssl_context,
    ) as pipe:
        return pipe.run(inputs)
