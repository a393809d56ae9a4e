"""The transport shaper: a message takes latency + size / bandwidth in each direction, latency is paid
once per message (not once per segment), and presets/arguments are checked."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from edgefit.errors import UserError
from edgefit.runtime.split.shaper import PRESETS, Shaper


def _timed_send(shaper: Shaper, nbytes: int) -> float:
    a, b = socket.socketpair()
    got = bytearray()
    done = threading.Event()

    def reader() -> None:
        while len(got) < nbytes:
            got.extend(b.recv(1 << 16))
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    shaped = shaper.wrap(a)
    t0 = time.perf_counter()
    shaped.sendall(bytes(nbytes))
    assert done.wait(10)
    elapsed = time.perf_counter() - t0
    a.close()
    b.close()
    assert len(got) == nbytes and shaped.bytes_sent == nbytes
    return elapsed


def _timed_recv(shaper: Shaper, nbytes: int) -> float:
    a, b = socket.socketpair()
    shaped = shaper.wrap(a)
    b.sendall(bytes(nbytes))  # already in the buffer: only the shaper's delay is measured
    t0 = time.perf_counter()
    got = 0
    while got < nbytes:
        got += len(shaped.recv(nbytes - got))
    elapsed = time.perf_counter() - t0
    a.close()
    b.close()
    return elapsed


def test_send_takes_latency_plus_serialisation() -> None:
    # 25 kB at 2 Mbit/s = 0.1 s; + 20 ms latency once.
    elapsed = _timed_send(Shaper(bandwidth_bps=2e6, latency_s=0.02), 25_000)
    assert 0.115 <= elapsed < 0.25, elapsed


def test_receive_is_shaped_too() -> None:
    elapsed = _timed_recv(Shaper(bandwidth_bps=2e6, latency_s=0.02), 25_000)
    assert 0.115 <= elapsed < 0.25, elapsed


def test_small_message_pays_latency_once() -> None:
    elapsed = _timed_send(Shaper(bandwidth_bps=1e9, latency_s=0.03), 10_000)  # 7 segments
    assert 0.029 <= elapsed < 0.08, elapsed


def test_bandwidth_orders_transfer_times() -> None:
    slow = _timed_send(Shaper(bandwidth_bps=1e6), 10_000)  # 80 ms
    fast = _timed_send(Shaper(bandwidth_bps=10e6), 10_000)  # 8 ms
    assert slow > 0.075 and fast < slow / 3


def test_presets_and_validation() -> None:
    assert set(PRESETS) == {"wifi", "lte", "3g"}
    lte = Shaper.preset("lte")
    assert lte.bandwidth_bps == 5e6 and lte.latency_s == 0.03
    assert Shaper.preset("wifi", jitter_s=0.0).jitter_s == 0.0
    with pytest.raises(UserError, match="unknown link preset"):
        Shaper.preset("5g")
    with pytest.raises(UserError):
        Shaper(bandwidth_bps=0)
    with pytest.raises(UserError):
        Shaper(bandwidth_bps=1e6, latency_s=0.001, jitter_s=0.01)


def test_parse_link_specs() -> None:
    assert Shaper.parse("LTE") == Shaper.preset("lte")
    s = Shaper.parse("20mbit,5ms,1ms")
    assert (s.bandwidth_bps, s.latency_s, s.jitter_s) == (20e6, 0.005, 0.001)
    assert Shaper.parse("500kbit").bandwidth_bps == 500e3 and Shaper.parse("500kbit").latency_s == 0.0
    for bad in ("fast", "20mb", "20mbit,5", "1mbit,1ms,1ms,1ms"):
        with pytest.raises(UserError):
            Shaper.parse(bad)
