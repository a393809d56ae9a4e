"""Energy per inference from power samples: trapezoidal integral over the window, minus the idle baseline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any, NamedTuple

from edgefit.errors import UserError


class Sample(NamedTuple):
    t: float  # time.monotonic() seconds
    watts: float


@dataclass(frozen=True)
class EnergyReport:
    energy_per_inference_j: float  # (gross - idle_w * duration) / n_inferences
    net_energy_j: float  # energy above the idle baseline over the whole window
    gross_energy_j: float  # integral of total board power over the window
    idle_w: float
    mean_w: float  # gross / duration: the time-weighted mean, not the mean of the samples
    peak_w: float
    duration_s: float
    n_samples: int
    n_inferences: int
    kind: str  # "measured" | "estimated"
    source: str = ""
    # Energy from the sensor's own cumulative counter over the same window (RAPL, NVML), before the
    # idle baseline is taken off; None where the sensor has no counter.
    counter_energy_j: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.energy_per_inference_j * 1e3:.3f} mJ/inference ({self.kind}, {self.source}): "
            f"mean {self.mean_w:.3f} W, peak {self.peak_w:.3f} W, idle {self.idle_w:.3f} W, "
            f"{self.duration_s:.3f} s, {self.n_samples} samples, {self.n_inferences} inferences"
        )


def integrate(samples: Sequence[Sample]) -> float:
    """Trapezoidal integral of watts over time in joules (samples sorted by time)."""
    return sum((b.t - a.t) * (a.watts + b.watts) / 2.0 for a, b in pairwise(samples))


def energy_per_inference(
    samples: Sequence[Sample] | Sequence[tuple[float, float]],
    n_inferences: int,
    idle_w: float,
    *,
    kind: str = "measured",
    source: str = "",
    counter_energy_j: float | None = None,
) -> EnergyReport:
    """Energy attributable to the inferences run inside the sampled window.

    The net figure can come out slightly negative when the window's power sits at the idle level
    (sensor noise); it is reported as measured rather than clamped, so a broken baseline shows.
    """
    if n_inferences < 1:
        raise UserError(f"energy per inference needs at least one inference, got {n_inferences}")
    pts = sorted((Sample(float(t), float(w)) for t, w in samples), key=lambda s: s.t)
    if len(pts) < 2 or pts[-1].t <= pts[0].t:
        raise UserError(
            f"energy needs at least two power samples spanning some time, got {len(pts)}; "
            "run the benchmark longer or sample faster"
        )
    duration = pts[-1].t - pts[0].t
    gross = integrate(pts)
    net = gross - idle_w * duration
    return EnergyReport(
        energy_per_inference_j=net / n_inferences,
        net_energy_j=net,
        gross_energy_j=gross,
        idle_w=idle_w,
        mean_w=gross / duration,
        peak_w=max(p.watts for p in pts),
        duration_s=duration,
        n_samples=len(pts),
        n_inferences=n_inferences,
        kind=kind,
        source=source,
        counter_energy_j=counter_energy_j,
    )
