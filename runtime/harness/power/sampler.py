"""Sample a `PowerMeter` in a background thread during a benchmark window; measure the idle baseline."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from edgefit.errors import UserError
from edgefit.runtime.harness.power.energy import EnergyReport, Sample, energy_per_inference, integrate
from edgefit.runtime.harness.power.meter import PowerMeter


class PowerSampler:
    """`with PowerSampler(meter) as s: run()`, then `s.samples` / `s.report(n)`.

    One sample is taken synchronously on entry and one on exit, so the window's ends are exact and
    the integral covers the whole benchmark even when it is shorter than one period. `busy` is the
    utilisation an estimating meter should assume inside the window (1.0: the board is inferring).
    The period is raised to the meter's `min_period_s` where that is longer.
    """

    def __init__(self, meter: PowerMeter, period_s: float = 0.01, *, busy: float = 1.0) -> None:
        if period_s <= 0:
            raise UserError(f"sampling period must be positive, got {period_s}")
        self.meter = meter
        self.period_s = max(period_s, meter.min_period_s)
        self.busy = busy
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._counter_start: float | None = None
        self._counter: tuple[float, float] | None = None

    def _take(self) -> None:
        # Stamp the middle of the read: vcgencmd or an I2C read can take milliseconds.
        t0 = time.monotonic()
        watts = self.meter.read_watts()
        t = (t0 + time.monotonic()) / 2.0
        with self._lock:
            self.samples.append(Sample(t, watts))

    def _run(self) -> None:
        # Event.wait keeps the period without drifting into a busy loop, and returns at once on stop.
        while not self._stop.wait(self.period_s):
            try:
                self._take()
            except (
                BaseException
            ) as e:  # surfaced in __exit__: a sensor failing mid-run must not pass silently
                self._error = e
                return

    def __enter__(self) -> PowerSampler:
        set_busy = getattr(self.meter, "set_busy", None)
        if set_busy is not None:
            set_busy(self.busy)
        self.samples = []
        self._stop.clear()
        self._error = None
        self._counter = None
        self._counter_start = self._read_counter()
        self._take()
        self._thread = threading.Thread(target=self._run, name="edgefit-power-sampler", daemon=True)
        self._thread.start()
        return self

    def _read_counter(self) -> float | None:
        read = getattr(self.meter, "read_energy_j", None)
        if read is None or not getattr(self.meter, "has_energy_counter", True):
            return None
        return float(read())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        try:
            if self._error is None:
                self._take()
                end = self._read_counter()
                if self._counter_start is not None and end is not None:
                    self._counter = (self._counter_start, end)
        finally:
            set_busy = getattr(self.meter, "set_busy", None)
            if set_busy is not None:
                set_busy(0.0)
        if self._error is not None and exc_type is None:
            raise OSError(
                f"power meter {self.meter.name} failed during sampling: {self._error}"
            ) from self._error

    @property
    def counter_energy_j(self) -> float | None:
        """The meter's own energy counter over the window (RAPL, NVML), or None."""
        return None if self._counter is None else self._counter[1] - self._counter[0]

    def report(self, n_inferences: int, idle_w: float) -> EnergyReport:
        return energy_per_inference(
            self.samples,
            n_inferences,
            idle_w,
            kind=self.meter.kind,
            source=self.meter.name,
            counter_energy_j=self.counter_energy_j,
        )


def measure_idle(meter: PowerMeter, seconds: float = 2.0, period_s: float = 0.01) -> float:
    """Idle baseline in watts: the time-weighted mean power over `seconds` with nothing running."""
    sampler = PowerSampler(meter, period_s, busy=0.0)
    with sampler:
        time.sleep(seconds)
    samples = sampler.samples
    duration = samples[-1].t - samples[0].t
    if duration <= 0:
        return samples[-1].watts
    return integrate(samples) / duration
