"""Energy accounting: trapezoidal integral, idle baseline, the background sampler and the estimate."""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import pytest

from edgefit import targets
from edgefit.errors import UserError
from edgefit.runtime.harness.power import (
    EstimatedPower,
    PowerMeter,
    PowerSampler,
    Sample,
    energy_per_inference,
    measure_idle,
)


class ConstantMeter(PowerMeter):
    name = "constant"

    def __init__(self, watts: float) -> None:
        self.watts = watts
        self.reads = 0

    def read_watts(self) -> float:
        self.reads += 1
        return self.watts


class StepMeter(PowerMeter):
    """idle_w, plus step_w while `on` is set: power is known at every instant."""

    name = "step"

    def __init__(self, idle_w: float, step_w: float) -> None:
        self.idle_w, self.step_w = idle_w, step_w
        self.on = threading.Event()

    def read_watts(self) -> float:
        return self.idle_w + (self.step_w if self.on.is_set() else 0.0)


def test_five_watts_for_0_2_s_is_one_joule():
    samples = [Sample(10.0 + 0.01 * i, 5.0) for i in range(21)]  # 10.00 .. 10.20 s
    report = energy_per_inference(samples, n_inferences=4, idle_w=0.0)
    assert report.gross_energy_j == pytest.approx(1.0)
    assert report.energy_per_inference_j == pytest.approx(0.25)
    assert report.duration_s == pytest.approx(0.2)
    assert report.mean_w == pytest.approx(5.0) and report.peak_w == 5.0
    assert report.n_samples == 21 and report.kind == "measured"


def test_idle_baseline_is_taken_off():
    samples = [(0.0, 5.0), (0.1, 5.0), (0.2, 5.0)]
    report = energy_per_inference(samples, n_inferences=2, idle_w=2.0)
    assert report.net_energy_j == pytest.approx(0.6)  # (5 - 2) W x 0.2 s
    assert report.energy_per_inference_j == pytest.approx(0.3)


def test_trapezoid_is_exact_on_a_ramp_and_sorts_samples():
    samples = [(1.0, 10.0), (0.0, 0.0), (0.5, 5.0)]  # 0 -> 10 W over 1 s, out of order
    report = energy_per_inference(samples, n_inferences=1, idle_w=0.0)
    assert report.gross_energy_j == pytest.approx(5.0)
    assert report.peak_w == 10.0


def test_user_mistakes_are_user_errors():
    with pytest.raises(UserError):
        energy_per_inference([(0.0, 1.0), (1.0, 1.0)], n_inferences=0, idle_w=0.0)
    with pytest.raises(UserError):
        energy_per_inference([(0.0, 1.0)], n_inferences=1, idle_w=0.0)
    with pytest.raises(UserError):
        PowerSampler(ConstantMeter(1.0), period_s=0.0)


def test_sampler_on_a_constant_meter():
    meter = ConstantMeter(5.0)
    with PowerSampler(meter, period_s=0.005) as s:
        time.sleep(0.2)
    report = s.report(n_inferences=1, idle_w=0.0)
    # Entry and exit samples bracket the window, so the integral is 5 W x the window exactly.
    assert report.gross_energy_j == pytest.approx(5.0 * report.duration_s)
    assert 0.2 <= report.duration_s < 0.6
    assert report.gross_energy_j == pytest.approx(1.0, abs=0.5)
    assert report.n_samples >= 10  # the background thread did sample
    assert all(b.t > a.t for a, b in pairwise(s.samples))
    assert report.counter_energy_j is None


def test_sampler_integrates_a_known_step():
    meter = StepMeter(idle_w=2.0, step_w=5.0)
    with PowerSampler(meter, period_s=0.005) as s:
        time.sleep(0.03)
        t_on = time.monotonic()
        meter.on.set()
        time.sleep(0.2)
        meter.on.clear()
        t_off = time.monotonic()
        time.sleep(0.03)
    report = s.report(n_inferences=10, idle_w=2.0)
    expected = 5.0 * (t_off - t_on)  # ~1 J above idle
    # Each edge of the step can be off by half a sampling interval at 5 W.
    assert report.net_energy_j == pytest.approx(expected, abs=0.1)
    assert report.energy_per_inference_j == pytest.approx(expected / 10, abs=0.01)
    assert report.peak_w == 7.0


def test_sampler_surfaces_a_sensor_failure():
    class Failing(ConstantMeter):
        def read_watts(self) -> float:
            if self.reads >= 2:
                raise OSError("sensor gone")
            return super().read_watts()

    with pytest.raises(OSError, match="sensor gone"), PowerSampler(Failing(3.0), period_s=0.005):
        time.sleep(0.1)


def test_sampler_reports_an_energy_counter_where_the_meter_has_one():
    class Counter(ConstantMeter):
        def __init__(self) -> None:
            super().__init__(4.0)
            self.t0 = time.monotonic()

        def read_energy_j(self) -> float:
            return 4.0 * (time.monotonic() - self.t0)

    with PowerSampler(Counter(), period_s=0.005) as s:
        time.sleep(0.1)
    report = s.report(n_inferences=1, idle_w=0.0)
    assert report.counter_energy_j is not None
    assert report.counter_energy_j == pytest.approx(report.gross_energy_j, rel=0.1)


def test_measure_idle_is_the_time_weighted_mean():
    assert measure_idle(ConstantMeter(3.25), seconds=0.05) == pytest.approx(3.25)


def test_estimate_is_idle_outside_and_active_inside_a_window():
    target = targets.load("jetson-nano")
    meter = EstimatedPower(target)
    assert meter.kind == "estimated" and meter.source == target.power.source
    idle = measure_idle(meter, seconds=0.05)
    assert idle == pytest.approx(1.25)
    with PowerSampler(meter, period_s=0.005) as s:
        assert meter.read_watts() == pytest.approx(10.0)
        time.sleep(0.05)
    assert meter.read_watts() == pytest.approx(1.25)
    report = s.report(n_inferences=5, idle_w=idle)
    assert report.kind == "estimated"
    assert report.energy_per_inference_j == pytest.approx((10.0 - 1.25) * report.duration_s / 5)


def test_estimate_partial_utilisation_and_bad_fraction():
    meter = EstimatedPower(targets.load("rpi5"))
    meter.set_busy(0.5)
    assert meter.read_watts() == pytest.approx(3.3 + (8.8 - 3.3) * 0.5)
    with pytest.raises(UserError):
        meter.set_busy(1.5)


def test_sampler_respects_the_meters_minimum_period():
    class Slow(ConstantMeter):
        min_period_s = 0.1

    assert PowerSampler(Slow(1.0), period_s=0.01).period_s == 0.1
    assert PowerSampler(ConstantMeter(1.0), period_s=0.01).period_s == 0.01
