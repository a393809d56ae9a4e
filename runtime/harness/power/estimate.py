"""Estimated board power from a target's power model when no sensor is reachable: idle + (active - idle) x busy."""

from __future__ import annotations

from edgefit.errors import UserError
from edgefit.runtime.harness.power.meter import PowerMeter
from edgefit.targets import Target


class EstimatedPower(PowerMeter):
    """Utilisation model over `targets/<name>.toml` [power]; busy is 1 inside a benchmark window.

    `PowerSampler` calls `set_busy(busy)` on entry and `set_busy(0.0)` on exit, so an idle baseline
    reads idle_w and a benchmark window reads active_w: the energy per inference then comes out as
    (active_w - idle_w) x latency, which is all a data-sheet model can say.
    """

    kind = "estimated"

    def __init__(self, target: Target, busy: float = 0.0) -> None:
        self.target = target
        self.idle_w = target.power.idle_w
        self.active_w = target.power.active_w
        self.source = target.power.source
        self.name = f"{target.name} power model"
        self.busy = 0.0
        self.set_busy(busy)

    def set_busy(self, fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise UserError(f"busy fraction must be within [0, 1], got {fraction}")
        self.busy = fraction

    def read_watts(self) -> float:
        return self.idle_w + (self.active_w - self.idle_w) * self.busy

    def describe(self) -> str:
        return f"the {self.target.name} power model (estimated): {self.source}"
