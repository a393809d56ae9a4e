"""Split computing end to end on 127.0.0.1: the split pipeline predicts what the single-process model
predicts with far fewer bytes than the fp32 split tensor; wrong secrets, garbage frames, dead or stalled
servers and 50 concurrent devices are all handled within bounded time."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgefit.errors import UserError
from edgefit.runtime.bundle import Bundle
from edgefit.runtime.split import SplitPipeline, run_split
from edgefit.runtime.split.client import AuthError
from edgefit.runtime.split.engine import SplitModel, rebatch
from edgefit.runtime.split.protocol import (
    HEADER,
    MAGIC,
    ErrorCode,
    MsgType,
    client_proof,
    decode_error,
    encode_frame,
    recv_frame,
    server_proof,
)

from .conftest import SECRET


def _feed(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"x": x[None].astype(np.float32)}


def test_split_matches_the_single_process_model(split_bundle, server, digits_x) -> None:
    model = SplitModel(split_bundle)
    bundle = Bundle.load(split_bundle)
    # Against PyTorch (float, no quantized bottleneck): same top-1, logits within the u8 step's effect.
    ref_in, ref_out = bundle.reference_inputs(), bundle.reference_outputs()
    out, report = run_split(split_bundle, server.address, ref_in, secret=SECRET, policy="fail")
    want = ref_out["classifier"]
    assert report.mode == "split" and not report.fell_back
    assert out["classifier"].argmax() == want.argmax() == report.top1[0]
    assert np.abs(out["classifier"] - want).max() <= 0.05 * np.abs(want).max()
    # Against the same model in one process (head + tail here): identical on every input.
    with SplitPipeline(split_bundle, server.address, secret=SECRET, policy="fail") as pipe:
        for x in digits_x:
            got, rep = pipe.run(_feed(x))
            local = model.full(_feed(x))["classifier"]
            np.testing.assert_allclose(got["classifier"], local, rtol=0, atol=1e-5)
            assert rep.top1 == [int(local.argmax())]
            # Full offloading (raw input, whole model on the server) gives the same answer.
            full, rep_full = pipe.run(_feed(x), mode="full-offload")
            np.testing.assert_allclose(full["classifier"], local, rtol=0, atol=1e-5)
            assert rep_full.mode == "full-offload"


def test_bytes_on_the_wire_are_75_percent_below_fp32_split(split_bundle, server) -> None:
    inputs = Bundle.load(split_bundle).reference_inputs()
    for compress in (False, True):
        _, rep = run_split(
            split_bundle, server.address, inputs, secret=SECRET, compress=compress, policy="fail"
        )
        assert (
            rep.fp32_split_bytes == 32 * 4 * 4 * 4
        )  # features.2's output, the tensor the bottleneck replaces
        assert rep.payload_bytes == 4 * 4 * 4  # u8 bottleneck
        assert rep.bytes_sent <= 0.25 * rep.fp32_split_bytes, rep
        assert rep.bytes_received > 0 and rep.head_ms > 0 and rep.total_ms >= rep.head_ms


def test_wrong_secret_is_refused(split_bundle, server) -> None:
    inputs = Bundle.load(split_bundle).reference_inputs()
    before = server.server.stats["error.AUTH_FAILED"]
    for policy in ("fallback", "fail"):
        with pytest.raises(AuthError, match="does not know our shared secret"):
            run_split(split_bundle, server.address, inputs, secret=b"wrong-secret-xyz", policy=policy)
    # The client stops at the server's proof: it never sends its own, the server sees a silent close.
    assert server.server.stats["error.AUTH_FAILED"] == before


def _handshake_raw(sock: socket.socket, secret: bytes) -> None:
    nonce = b"c" * 32
    sock.sendall(encode_frame(MsgType.HELLO, 1, nonce))
    challenge = recv_frame(sock)
    sock.sendall(encode_frame(MsgType.AUTH, 2, client_proof(secret, nonce, challenge.payload[:32])))
    return recv_frame(sock)


def test_client_proof_with_wrong_secret_gets_auth_failed(server) -> None:
    with socket.create_connection(("127.0.0.1", server.server.port), timeout=5) as sock:
        answer = _handshake_raw(sock, b"not-the-secret!!")
        assert answer.type == MsgType.ERROR and decode_error(answer.payload).code == ErrorCode.AUTH_FAILED
        assert sock.recv(1) == b""  # then the server closes


def _garbage_cases() -> list[tuple[str, bytes, ErrorCode | None]]:
    return [
        ("bad magic", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ErrorCode.BAD_MAGIC),
        ("huge length", HEADER.pack(MAGIC, 1, MsgType.HELLO, 0, 1, 0xFFFFFFF0, 0), ErrorCode.TOO_LARGE),
        (
            "bad checksum",
            HEADER.pack(MAGIC, 1, MsgType.HELLO, 0, 1, 32, 1234) + b"n" * 32,
            ErrorCode.BAD_CHECKSUM,
        ),
        ("truncated", encode_frame(MsgType.HELLO, 1, b"n" * 32)[:30], None),
        ("infer before auth", encode_frame(MsgType.INFER, 1, b"\x00\x00\x00"), ErrorCode.UNEXPECTED),
        (
            "random bytes",
            bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)),
            ErrorCode.BAD_MAGIC,
        ),
    ]


def test_garbage_frames_close_only_that_connection(split_bundle, server) -> None:
    inputs = Bundle.load(split_bundle).reference_inputs()
    with SplitPipeline(split_bundle, server.address, secret=SECRET, policy="fail") as good:
        good.run(inputs)  # a device connected throughout
        for name, data, code in _garbage_cases():
            with socket.create_connection(("127.0.0.1", server.server.port), timeout=5) as sock:
                sock.sendall(data)
                if code is None:
                    sock.shutdown(socket.SHUT_WR)  # truncated: the frame never completes
                    answer = recv_frame(sock)
                    assert (
                        answer.type == MsgType.ERROR
                        and decode_error(answer.payload).code == ErrorCode.TRUNCATED
                    )
                else:
                    answer = recv_frame(sock)
                    assert answer.type == MsgType.ERROR, name
                    assert decode_error(answer.payload).code == code, name
                t0 = time.perf_counter()
                while sock.recv(4096):  # the server closes the connection
                    assert time.perf_counter() - t0 < 5, name
            _, rep = good.run(inputs)  # the old connection still works
            assert rep.mode == "split"
        # And a brand-new client is served.
        out, rep = run_split(split_bundle, server.address, inputs, secret=SECRET, policy="fail")
        assert rep.mode == "split" and out["classifier"].shape == (1, 10)


def test_bad_request_is_answered_and_the_connection_kept(split_bundle, server) -> None:
    from edgefit.runtime.split import codec
    from edgefit.runtime.split.codec import Tensor

    with socket.create_connection(("127.0.0.1", server.server.port), timeout=5) as sock:
        assert _handshake_raw(sock, SECRET).type == MsgType.READY
        wrong = b"\x00" + codec.encode_tensors(
            [Tensor("features.2.encoder.2.q", np.zeros((1, 3), np.uint8), 0.1, 0)]
        )
        sock.sendall(encode_frame(MsgType.INFER, 5, wrong))
        answer = recv_frame(sock)
        assert answer.type == MsgType.ERROR and decode_error(answer.payload).code == ErrorCode.BAD_REQUEST
        assert answer.request_id == 5
        # Still connected: a frame over the server's request-size limit is refused (and closes it).
        too_big = server.server.max_payload + 1
        sock.sendall(HEADER.pack(MAGIC, 1, MsgType.INFER, 0, 6, too_big, 0))
        answer = recv_frame(sock)
        assert decode_error(answer.payload).code == ErrorCode.TOO_LARGE


def test_idle_unauthenticated_client_is_dropped(split_bundle, server) -> None:
    with socket.create_connection(("127.0.0.1", server.server.port), timeout=10) as sock:
        t0 = time.perf_counter()
        answer = recv_frame(sock)  # we never say HELLO: the handshake timeout (2 s here) ends it
        assert decode_error(answer.payload).code == ErrorCode.TIMEOUT
        assert time.perf_counter() - t0 < 5


class _FakeServer:
    """A listener on 127.0.0.1 that misbehaves: "stall" (never answers) or "die" (completes the handshake,
    then drops the connection in the middle of its answer)."""

    def __init__(self, behaviour: str) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.behaviour = behaviour
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.behaviour == "die":
                try:
                    hello = recv_frame(conn)
                    nonce = b"s" * 32
                    conn.sendall(
                        encode_frame(
                            MsgType.CHALLENGE,
                            hello.request_id,
                            nonce + server_proof(SECRET, hello.payload, nonce),
                        )
                    )
                    auth = recv_frame(conn)
                    conn.sendall(encode_frame(MsgType.READY, auth.request_id, b"{}"))
                    req = recv_frame(conn)
                    conn.sendall(encode_frame(MsgType.RESULT, req.request_id, b"x" * 100)[:40])
                finally:
                    conn.close()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("behaviour", ["stall", "die"])
def test_unresponsive_server_falls_back_or_fails_in_bounded_time(split_bundle, behaviour) -> None:
    inputs = Bundle.load(split_bundle).reference_inputs()
    local = SplitModel(split_bundle).full(inputs)["classifier"]
    fake = _FakeServer(behaviour)
    try:
        t0 = time.perf_counter()
        out, rep = run_split(split_bundle, fake.address, inputs, secret=SECRET, timeout_s=0.5)
        assert time.perf_counter() - t0 < 3
        assert rep.fell_back and rep.mode == "local-fallback" and rep.fallback_reason
        np.testing.assert_allclose(out["classifier"], local, atol=1e-6)
        t0 = time.perf_counter()
        with pytest.raises(UserError, match="split inference failed"):
            run_split(split_bundle, fake.address, inputs, secret=SECRET, timeout_s=0.5, policy="fail")
        assert time.perf_counter() - t0 < 3
    finally:
        fake.close()


def test_no_server_listening(split_bundle) -> None:
    inputs = Bundle.load(split_bundle).reference_inputs()
    with socket.create_server(("127.0.0.1", 0)) as s:
        address = f"127.0.0.1:{s.getsockname()[1]}"
    out, rep = run_split(split_bundle, address, inputs, secret=SECRET)
    assert rep.fell_back and "refused" in rep.fallback_reason and out["classifier"].shape == (1, 10)
    with pytest.raises(UserError, match="refused the connection"):
        run_split(split_bundle, address, inputs, secret=SECRET, policy="fail")


def test_server_killed_mid_stream(split_bundle, tmp_path, digits_x) -> None:
    import os
    import signal
    import subprocess
    import sys

    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgefit.cli.main",
            "serve",
            str(split_bundle),
            "--port",
            "0",
            "--secret-file",
            str(secret_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert " on 127.0.0.1:" in line, line
        address = line.split(" on ", 1)[1].split()[0]
        modes = []
        with SplitPipeline(split_bundle, address, secret=SECRET, timeout_s=1.0) as pipe:
            for i, x in enumerate(digits_x[:12]):
                if i == 4:
                    os.kill(proc.pid, signal.SIGKILL)
                t0 = time.perf_counter()
                out, rep = pipe.run(_feed(x))
                assert time.perf_counter() - t0 < 3
                assert out["classifier"].shape == (1, 10)
                modes.append(rep.mode)
        assert modes[:4] == ["split"] * 4 and modes[5:] == ["local-fallback"] * 7
    finally:
        proc.kill()
        proc.wait(10)


def test_fifty_concurrent_devices(split_bundle, server, digits_x) -> None:
    model = SplitModel(split_bundle)
    xs = [digits_x[i % len(digits_x)] for i in range(50)]
    expected = [model.full(_feed(x))["classifier"] for x in xs]
    start = threading.Barrier(50)

    def device(i: int):
        start.wait(10)
        return run_split(
            split_bundle, server.address, _feed(xs[i]), secret=SECRET, policy="fail", timeout_s=20
        )

    t0 = time.perf_counter()
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(device, range(50)))
    assert time.perf_counter() - t0 < 60
    for (out, rep), want in zip(results, expected, strict=True):
        assert rep.mode == "split"
        np.testing.assert_allclose(out["classifier"], want, atol=1e-5)


def test_rebatched_tail_equals_one_by_one(split_bundle, digits_x) -> None:
    from edgefit.compiler import reference

    model = SplitModel(split_bundle, backend="reference")
    splits = [model.head(_feed(x)) for x in digits_x[:4]]
    batched = rebatch(model.tail_part.graph, 4)
    out = reference.run(batched, {model.split_name: np.concatenate(splits)})["classifier"]
    for i, s in enumerate(splits):
        np.testing.assert_allclose(out[i : i + 1], model.tail(s)["classifier"], atol=1e-6)


def test_requests_arriving_together_run_as_one_batch(split_bundle, digits_x) -> None:
    import asyncio

    from edgefit.runtime.split import ServerConfig, SplitServer
    from edgefit.runtime.split.server import _Job

    srv = SplitServer(split_bundle, SECRET, ServerConfig(max_batch=4))
    model = SplitModel(split_bundle)
    splits = [model.head(_feed(x)) for x in digits_x[:6]]

    async def go():
        await srv.start()
        loop = asyncio.get_running_loop()
        jobs = [_Job("tail", {model.split_name: s}, loop.create_future(), 0.0) for s in splits]
        srv._pending.extend(jobs)  # six requests queued before the dispatcher looks
        srv._wakeup.set()
        results = await asyncio.gather(*(j.future for j in jobs))
        await srv.close()
        return results

    results = asyncio.run(go())
    assert [r[3] for r in results] == [4, 4, 4, 4, 2, 2]  # batch sizes: max_batch, then the rest
    for (outputs, *_), s in zip(results, splits, strict=True):
        np.testing.assert_allclose(outputs["classifier"], model.tail(s)["classifier"], atol=1e-5)


def test_tls_with_a_pinned_self_signed_certificate(split_bundle, tmp_path) -> None:
    from edgefit.runtime.split import ServerConfig, ServerThread, SplitServer, tls

    cert, key = tls.self_signed(tmp_path)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    inputs = Bundle.load(split_bundle).reference_inputs()
    srv = SplitServer(
        split_bundle, SECRET, ServerConfig(ssl_context=tls.server_context(cert, key), handshake_timeout_s=2)
    )
    with ServerThread(srv) as thread:
        out, rep = run_split(
            split_bundle,
            thread.address,
            inputs,
            secret=SECRET,
            policy="fail",
            ssl_context=tls.client_context(cert),
        )
        assert rep.mode == "split" and out["classifier"].shape == (1, 10)
        # A plain-TCP client gets no answer from a TLS server: it falls back in bounded time.
        t0 = time.perf_counter()
        _, rep = run_split(split_bundle, thread.address, inputs, secret=SECRET, timeout_s=1.0)
        assert rep.fell_back and time.perf_counter() - t0 < 4
        # A certificate we do not pin is refused.
        other, _ = tls.self_signed(tmp_path / "other")
        with pytest.raises(UserError, match="not trusted"):
            run_split(
                split_bundle, thread.address, inputs, secret=SECRET, ssl_context=tls.client_context(other)
            )


def test_serve_cli_errors_are_one_line(split_bundle, tmp_path, capsys) -> None:
    from edgefit.cli.main import main

    assert main(["serve", str(split_bundle), "--port", "0"]) == 2
    assert "shared secret is required" in capsys.readouterr().err
    (tmp_path / "s").write_text("short\n")
    assert main(["serve", str(split_bundle), "--port", "0", "--secret-file", str(tmp_path / "s")]) == 2
    assert "at least 8 bytes" in capsys.readouterr().err
    (tmp_path / "s").write_text("long-enough-secret\n")
    assert main(["serve", str(tmp_path), "--port", "0", "--secret-file", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "not a compiled bundle" in err and len(err.strip().splitlines()) == 1


def test_server_with_another_bundle_is_refused(split_bundle, server, tmp_path) -> None:
    import json
    import shutil

    other = tmp_path / "other"
    shutil.copytree(split_bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["checksums"]["head.efm"] = "0" * 64  # as if compiled separately
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="serves a different bundle"):
        run_split(other, server.address, Bundle.load(other).reference_inputs(), secret=SECRET)


def test_board_split_without_a_secret_is_one_line(monkeypatch, capsys) -> None:
    """`edgefit run --board B --split S` reaches its own checks (it used to die importing a name that
    `edgefit.cli.run` no longer had) and refuses a missing secret in one line."""
    from edgefit.cli.main import main

    monkeypatch.delenv("EDGEFIT_SPLIT_SECRET", raising=False)
    assert main(["run", "--board", "pi@127.0.0.1:1", "--split", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs the server's secret" in err, err
