"""The edge server of split computing (`edgefit serve`): authenticates devices, runs the tail on the
bottleneck tensors they send (or the whole model on raw inputs: full offloading), batches requests that
arrive together, and survives hostile or broken clients by closing only their connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import struct
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from edgefit.runtime.split import codec
from edgefit.runtime.split.codec import Tensor
from edgefit.runtime.split.engine import BatchedParts, Part, SplitModel
from edgefit.runtime.split.protocol import (
    DEFAULT_MAX_PAYLOAD,
    FATAL,
    NONCE_SIZE,
    PROOF_SIZE,
    ErrorCode,
    MsgType,
    ProtocolError,
    as_secret,
    client_proof,
    encode_error,
    encode_frame,
    new_nonce,
    read_frame,
    server_proof,
    verify_proof,
)

log = logging.getLogger("edgefit.split.server")

MODES = {0: "tail", 1: "full"}
MODE_CODES = {v: k for k, v in MODES.items()}
REQUEST = struct.Struct("<B")  # mode
RESULT = struct.Struct("<IIH")  # queue µs, compute µs, batch size the request ran in


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (see SplitServer.port)
    threads: int = 1  # worker threads running the model
    max_batch: int = 8  # requests run as one batch at most
    batch_window_s: float = 0.0  # extra wait for more requests to batch (0: only those already queued)
    handshake_timeout_s: float = 5.0
    idle_timeout_s: float = 60.0  # a connected device may stay silent this long between requests
    frame_timeout_s: float = 10.0  # a started frame must be complete within this
    max_payload: int = DEFAULT_MAX_PAYLOAD
    max_clients: int = 256
    backend: str = "auto"  # "native", "reference" or "auto" (native when built)
    ssl_context: ssl.SSLContext | None = None


@dataclass
class _Job:
    mode: str
    feeds: dict[str, np.ndarray]
    future: asyncio.Future
    queued: float


class SplitServer:
    """Serves one split bundle's tail (and its full model, for full offloading)."""

    def __init__(
        self, bundle_dir: str | os.PathLike[str], secret: bytes | str, config: ServerConfig | None = None
    ):
        from edgefit.errors import UserError

        self.config = config or ServerConfig()
        if self.config.threads < 1 or self.config.max_batch < 1 or self.config.max_clients < 1:
            raise UserError("--threads, --max-batch and the client limit must be >= 1")
        self.secret = as_secret(secret)
        self.model = SplitModel(bundle_dir, backend=self.config.backend)
        self._head = BatchedParts(self.model.head_part, self.config.max_batch)
        self._tail = BatchedParts(self.model.tail_part, self.config.max_batch)
        self.stats: Counter[str] = Counter()
        # No valid request is larger than the raw model input plus headers: refusing anything bigger
        # bounds what a (hostile) client can make the server buffer, per connection.
        largest = sum(self.model.head_part.spec(n).numel * 4 for n in self.model.inputs)
        self.max_payload = min(self.config.max_payload, largest + 4096)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._pool = ThreadPoolExecutor(self.config.threads, thread_name_prefix="edgefit-split")
        self._pending: deque[_Job] = deque()
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._slots: asyncio.Semaphore | None = None

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._slots = asyncio.Semaphore(self.config.threads)
        self._wakeup = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._dispatch()))
        tls = self.config.ssl_context
        self._server = await asyncio.start_server(
            self._handle,
            self.config.host,
            self.config.port,
            ssl=tls,
            ssl_handshake_timeout=self.config.handshake_timeout_s if tls else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("serving %s on %s:%d", self.model.model, self.config.host, self.port)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._head.close()
        self._tail.close()

    def info(self) -> dict:
        """What READY tells a device: model, its tensors, limits (JSON)."""
        m = self.model
        split = m.tail_part.spec(m.split_name)
        return {
            "model": m.model,
            "head_sha256": m.head_sha256,
            "backend": m.backend,
            "modes": list(MODES.values()),
            "split": {"name": split.name, "shape": list(split.shape), "dtype": split.dtype},
            "scale": m.scale,
            "zero_point": m.zero_point,
            "inputs": [
                {"name": n, "shape": list(m.head_part.spec(n).shape), "dtype": m.head_part.spec(n).dtype}
                for n in m.inputs
            ],
            "outputs": list(m.outputs),
            "max_payload": self.max_payload,
            "max_batch": self.config.max_batch,
        }

    # --- one connection -------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self.stats["connections"] += 1
        self._writers.add(writer)
        try:
            if len(self._writers) > self.config.max_clients:
                raise ProtocolError(
                    ErrorCode.BUSY, f"the server has {self.config.max_clients} clients already"
                )
            if not await self._handshake(reader, writer):
                return
            self.stats["authenticated"] += 1
            await self._serve_requests(reader, writer)
        except ProtocolError as exc:
            self.stats[f"error.{exc.code.name}"] += 1
            log.info("%s: %s (%s); closing", peer, exc, exc.code.name)
            await self._send(writer, MsgType.ERROR, 0, encode_error(exc.code, str(exc)))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError) as exc:
            self.stats["disconnects"] += 1
            log.debug("%s: connection lost (%s)", peer, exc)
        except asyncio.CancelledError:  # server shutdown: just close this connection
            pass
        except Exception:  # a bug must cost one connection, never the server
            self.stats["error.INTERNAL"] += 1
            log.exception("%s: internal error", peer)
            await self._send(
                writer, MsgType.ERROR, 0, encode_error(ErrorCode.INTERNAL, "internal server error")
            )
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(TimeoutError, ConnectionError, OSError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        t = self.config.handshake_timeout_s
        hello = await read_frame(reader, 256, t, t)
        if hello is None:
            return False
        if hello.type != MsgType.HELLO or len(hello.payload) != NONCE_SIZE:
            raise ProtocolError(ErrorCode.UNEXPECTED, "the conversation must start with HELLO(nonce)")
        client_nonce, server_nonce = hello.payload, new_nonce()
        challenge = server_nonce + server_proof(self.secret, client_nonce, server_nonce)
        await self._send(writer, MsgType.CHALLENGE, hello.request_id, challenge)
        auth = await read_frame(reader, 256, t, t)
        if auth is None:
            return False
        if auth.type != MsgType.AUTH or len(auth.payload) != PROOF_SIZE:
            raise ProtocolError(ErrorCode.UNEXPECTED, "expected AUTH(proof) after CHALLENGE")
        if not verify_proof(client_proof(self.secret, client_nonce, server_nonce), auth.payload):
            raise ProtocolError(ErrorCode.AUTH_FAILED, "authentication failed (wrong shared secret)")
        await self._send(writer, MsgType.READY, auth.request_id, json.dumps(self.info()).encode())
        return True

    async def _serve_requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cfg = self.config
        while True:
            frame = await read_frame(reader, self.max_payload, cfg.idle_timeout_s, cfg.frame_timeout_s)
            if frame is None or frame.type == MsgType.BYE:
                return
            if frame.type != MsgType.INFER:
                raise ProtocolError(ErrorCode.UNEXPECTED, f"unexpected {frame.type.name} frame")
            self.stats["requests"] += 1
            try:
                mode, feeds = self._parse_request(frame.payload)
            except ProtocolError as exc:
                if exc.code in FATAL:
                    raise
                # A well-framed request for something we cannot do: answer it, keep the connection.
                self.stats[f"error.{exc.code.name}"] += 1
                await self._send(writer, MsgType.ERROR, frame.request_id, encode_error(exc.code, str(exc)))
                continue
            job = _Job(mode, feeds, asyncio.get_running_loop().create_future(), time.perf_counter())
            self._pending.append(job)
            self._wakeup.set()
            outputs, queue_s, compute_s, batch = await job.future
            tensors = [Tensor(n, a) for n, a in outputs.items()]
            for name, arr in outputs.items():
                if arr.ndim == 2:  # logits: the device gets top-1 without decoding anything else
                    tensors.append(Tensor(f"{name}.top1", arr.argmax(axis=1).astype(np.int64)))
            head = RESULT.pack(
                min(int(queue_s * 1e6), 2**32 - 1), min(int(compute_s * 1e6), 2**32 - 1), batch
            )
            await self._send(writer, MsgType.RESULT, frame.request_id, head + codec.encode_tensors(tensors))
            self.stats["answered"] += 1

    def _parse_request(self, payload: bytes) -> tuple[str, dict[str, np.ndarray]]:
        if len(payload) < REQUEST.size:
            raise ProtocolError(ErrorCode.BAD_PAYLOAD, "empty INFER payload")
        (code,) = REQUEST.unpack_from(payload)
        if code not in MODES:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown mode {code}")
        mode = MODES[code]
        tensors = codec.decode_tensors(payload, REQUEST.size, max_bytes=self.max_payload)
        part = self.model.tail_part if mode == "tail" else self.model.head_part
        got = {t.name: t for t in tensors}
        if set(got) != set(part.inputs):
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, f"{mode} expects tensors {list(part.inputs)}, got {list(got)}"
            )
        feeds = {}
        for name in part.inputs:
            spec, t = part.spec(name), got[name]
            want = np.dtype(_NP[spec.dtype])
            if t.array.shape != spec.shape or t.array.dtype != want:
                raise ProtocolError(
                    ErrorCode.BAD_REQUEST,
                    f"{name}: got {t.array.dtype}{list(t.array.shape)}, expected {spec.dtype}{list(spec.shape)}",
                )
            # Another bundle's head quantizes differently: its bytes would mean other numbers here.
            if (
                mode == "tail"
                and self.model.scale is not None
                and (
                    t.scale is None
                    or not np.isclose(t.scale, self.model.scale, rtol=1e-6)
                    or t.zero_point != self.model.zero_point
                )
            ):
                raise ProtocolError(
                    ErrorCode.BAD_REQUEST,
                    f"{name}: quantization (scale {t.scale}, zero point {t.zero_point}) differs from the "
                    f"served tail's ({self.model.scale}, {self.model.zero_point}): different bundle",
                )
            feeds[name] = t.array
        return mode, feeds

    async def _send(
        self, writer: asyncio.StreamWriter, kind: MsgType, request_id: int, payload: bytes
    ) -> None:
        if writer.is_closing():
            return
        try:
            writer.write(encode_frame(kind, request_id, payload))
            # A device that stops reading must not hold the server's buffers forever.
            await asyncio.wait_for(writer.drain(), self.config.frame_timeout_s)
        except (TimeoutError, ConnectionError, OSError, ssl.SSLError):
            writer.close()

    # --- batching and running ---------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        """Runs queued requests; those of one mode that arrived together run as one batch. A free worker
        slot is taken first, so requests arriving while every worker is busy pile up and batch."""
        loop = asyncio.get_running_loop()
        assert self._slots is not None
        while True:
            await self._slots.acquire()
            try:
                while not self._pending:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                if self.config.batch_window_s > 0 and len(self._pending) < self.config.max_batch:
                    await asyncio.sleep(self.config.batch_window_s)
            except BaseException:
                self._slots.release()
                raise
            mode = self._pending[0].mode
            jobs, keep = [], deque()
            while self._pending:
                job = self._pending.popleft()
                if job.future.done():  # its connection went away meanwhile
                    continue
                (jobs if job.mode == mode and len(jobs) < self.config.max_batch else keep).append(job)
            self._pending = keep
            if not jobs:
                self._slots.release()
                continue
            fut = loop.run_in_executor(self._pool, self._run_batch, mode, [j.feeds for j in jobs])
            fut.add_done_callback(lambda f, jobs=jobs: self._finish(f, jobs))

    def _finish(self, fut: asyncio.Future, jobs: list[_Job]) -> None:
        assert self._slots is not None
        self._slots.release()
        exc = ConnectionAbortedError("the server is shutting down") if fut.cancelled() else fut.exception()
        if exc is not None:
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(exc)
            return
        results, started, compute_s = fut.result()
        self.stats["batches"] += 1
        self.stats[f"batched.{len(jobs)}"] += 1
        for j, result in zip(jobs, results, strict=True):
            if not j.future.done():  # its connection may have gone meanwhile
                j.future.set_result((result, started - j.queued, compute_s, len(jobs)))

    def _run_batch(
        self, mode: str, feeds: list[dict[str, np.ndarray]]
    ) -> tuple[list[dict[str, np.ndarray]], float, float]:
        """Outputs per request, the time the run started, the run's duration (worker thread)."""
        started = time.perf_counter()
        k = len(feeds)
        head, tail = self._head.get(k), self._tail.get(k)
        per = None
        if k > 1 and tail is not None and (mode == "tail" or head is not None):
            stacked = {n: np.concatenate([f[n] for f in feeds]) for n in feeds[0]}
            try:
                out = self._run_one(mode, stacked, head, tail)
                per = [{n: np.split(a, k)[i] for n, a in out.items()} for i in range(k)]
            except Exception:  # a runtime that cannot take the batched copy: one by one from now on
                log.warning("batch of %d failed; running requests one by one", k, exc_info=True)
                self._head.disable(k)
                self._tail.disable(k)
        if per is None:
            h, t = self._head.get(1), self._tail.get(1)
            per = [self._run_one(mode, f, h, t) for f in feeds]
        return per, started, time.perf_counter() - started

    @staticmethod
    def _run_one(
        mode: str, feeds: dict[str, np.ndarray], head: Part | None, tail: Part
    ) -> dict[str, np.ndarray]:
        if mode == "full":
            assert head is not None
            split = head.run(feeds)[head.outputs[0]]
            return tail.run({tail.inputs[0]: split})
        return tail.run(feeds)


_NP = {"f32": np.float32, "f16": np.float16, "i8": np.int8, "u8": np.uint8, "i32": np.int32}


class ServerThread:
    """A SplitServer on its own event loop in a background thread (tests, compare_modes, notebooks)."""

    def __init__(self, server: SplitServer) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="edgefit-split-server", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.server.config.host}:{self.server.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.server.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await self.server.close()

        asyncio.run(run())

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
