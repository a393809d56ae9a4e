"""A link model in the transport (tc/netem is not available here): token-bucket bandwidth plus one-way
latency (and optional jitter) applied to a client socket's sends and receives, with link presets."""

from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass

from edgefit.errors import UserError

#: Typical links: (bandwidth bit/s, one-way latency s, jitter s). Round numbers in the range that field
#: measurements of each technology report; the comparison sweeps bandwidth explicitly anyway.
PRESETS: dict[str, tuple[float, float, float]] = {
    "wifi": (20e6, 0.005, 0.001),
    "lte": (5e6, 0.030, 0.005),
    "3g": (1e6, 0.100, 0.010),
}


@dataclass(frozen=True)
class Shaper:
    """Link parameters; `wrap(sock)` gives a socket whose traffic obeys them in both directions.

    Each direction is a token bucket filling at bandwidth/8 bytes per second up to `burst_bytes`; a
    chunk of n bytes waits for n tokens (the bucket may go into debt, which is the serialisation delay
    of a chunk larger than the bucket), then takes `latency_s` (+ uniform jitter in [-j, j]) to arrive;
    arrivals keep their order, as on one TCP connection."""

    bandwidth_bps: float
    latency_s: float = 0.0
    jitter_s: float = 0.0
    # 0: every byte pays its serialisation time (a plain link); > 0 lets that many bytes through at once
    # after an idle period, as a policing token bucket does.
    burst_bytes: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.bandwidth_bps > 0:
            raise UserError(f"bandwidth must be > 0 bit/s, got {self.bandwidth_bps}")
        if self.latency_s < 0 or self.jitter_s < 0 or self.jitter_s > self.latency_s:
            raise UserError("latency and jitter must be >= 0, and jitter at most the latency")
        if self.burst_bytes < 0:
            raise UserError("the token bucket's burst must be >= 0 bytes")

    @staticmethod
    def preset(name: str, **overrides: float) -> Shaper:
        if name not in PRESETS:
            raise UserError(f"unknown link preset {name!r}; choose one of {', '.join(PRESETS)}")
        bw, lat, jit = PRESETS[name]
        return Shaper(**{"bandwidth_bps": bw, "latency_s": lat, "jitter_s": jit, **overrides})

    @staticmethod
    def parse(spec: str) -> Shaper:
        """A preset name ("lte") or "BANDWIDTH[,LATENCY[,JITTER]]" with units, e.g. "20mbit,5ms,1ms"
        (a CLI flag such as `edgefit run --split --link lte` can pass its value straight here)."""
        spec = spec.strip().lower()
        if spec in PRESETS:
            return Shaper.preset(spec)
        parts = [p.strip() for p in spec.split(",")]
        if not 1 <= len(parts) <= 3:
            raise UserError(
                f"link {spec!r}: expected a preset ({', '.join(PRESETS)}) or 'BW[,LATENCY[,JITTER]]'"
            )
        bw = _with_unit(parts[0], {"gbit": 1e9, "mbit": 1e6, "kbit": 1e3, "bit": 1.0}, "bandwidth")
        times = [_with_unit(p, {"ms": 1e-3, "us": 1e-6, "s": 1.0}, "latency") for p in parts[1:]]
        return Shaper(
            bandwidth_bps=bw,
            latency_s=times[0] if times else 0.0,
            jitter_s=times[1] if len(times) > 1 else 0.0,
        )

    def describe(self) -> str:
        return f"{self.bandwidth_bps / 1e6:g} Mbit/s, {self.latency_s * 1e3:g} ms one-way (+-{self.jitter_s * 1e3:g} ms)"

    def wrap(self, sock: socket.socket) -> ShapedSocket:
        return ShapedSocket(sock, self)


def _with_unit(text: str, units: dict[str, float], what: str) -> float:
    for unit, factor in units.items():  # longest units first: "mbit" before "bit", "ms" before "s"
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * factor
            except ValueError:
                break
    raise UserError(f"cannot read the {what} {text!r} (units: {', '.join(units)})")


class _Link:
    """One direction: token bucket + propagation delay; returns when a chunk is delivered."""

    def __init__(self, shaper: Shaper, rng: random.Random) -> None:
        self.rate = shaper.bandwidth_bps / 8.0
        self.burst = float(shaper.burst_bytes)
        self.latency = shaper.latency_s
        self.jitter = shaper.jitter_s
        self.rng = rng
        self.tokens = self.burst
        self.stamp = time.perf_counter()
        self.last_delivery = 0.0
        self.lock = threading.Lock()

    def delivery_time(self, nbytes: int, handed_over: float) -> float:
        """When `nbytes` handed to the link at `handed_over` reach the other end."""
        with self.lock:
            # handed_over may lie before the last stamp (a chunk that waited in a buffer): the bucket
            # then stays in debt and the chunk queues behind the previous one, as on a real link.
            self.tokens = min(self.burst, self.tokens + max(0.0, handed_over - self.stamp) * self.rate)
            self.stamp = max(self.stamp, handed_over)
            self.tokens -= nbytes
            sent = self.stamp + max(0.0, -self.tokens / self.rate)  # the last byte leaves the sender
            delay = self.latency + (self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
            self.last_delivery = max(self.last_delivery, sent + delay)
            return self.last_delivery


def _sleep_until(t: float) -> None:
    while (left := t - time.perf_counter()) > 0:
        time.sleep(left)


class ShapedSocket:
    """Blocking-socket stand-in (sendall/recv/settimeout/close) that delays traffic like the link.

    Sends: each chunk is held back until the link would have delivered it, then written. Receives:
    bytes the peer sent are released when the downlink would have delivered them. Either way the
    application sees the timing of the shaped link; loopback adds next to nothing."""

    CHUNK = 1448  # a TCP segment's payload on Ethernet: the granularity of the delays

    def __init__(self, sock: socket.socket, shaper: Shaper) -> None:
        self.sock = sock
        self.shaper = shaper
        rng = random.Random(shaper.seed)
        self.up = _Link(shaper, rng)
        self.down = _Link(shaper, rng)
        self.bytes_sent = 0
        self.bytes_received = 0
        self._woke = float("-inf")
        self._last_arrival = 0.0

    def connect_delay(self) -> None:
        """TCP's SYN / SYN-ACK cost one round trip before the first byte."""
        time.sleep(2 * self.shaper.latency_s)

    def sendall(self, data: bytes) -> None:
        # Every chunk is handed over now; chunk i is written when the link would deliver it.
        handed_over = time.perf_counter()
        view = memoryview(data)
        for i in range(0, len(view), self.CHUNK):
            chunk = view[i : i + self.CHUNK]
            _sleep_until(self.up.delivery_time(len(chunk), handed_over))
            self.sock.sendall(chunk)
            self.bytes_sent += len(chunk)

    def recv(self, n: int) -> bytes:
        data = self.sock.recv(n)
        if data:
            now = time.perf_counter()
            # Bytes read straight after we slept for the previous chunk were waiting in the buffer:
            # they arrived with that chunk, not now (else each read would pay the latency again).
            arrived = self._last_arrival if now - self._woke < 1e-3 else now
            self._last_arrival = arrived
            _sleep_until(self.down.delivery_time(len(data), arrived))
            self._woke = time.perf_counter()
            self.bytes_received += len(data)
        return data

    def settimeout(self, t: float | None) -> None:
        self.sock.settimeout(t)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def close(self) -> None:
        self.sock.close()

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)
