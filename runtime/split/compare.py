"""Local computing vs full offloading vs split computing over a sweep of link bandwidths: end-to-end
latency, bytes on the wire, accuracy and (estimated) device energy per inference, as a table and a plot."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefit.errors import UserError
from edgefit.runtime.split.client import SplitPipeline
from edgefit.runtime.split.engine import SplitModel
from edgefit.runtime.split.shaper import Shaper

MODES = ("local", "full-offload", "split")


@dataclass(frozen=True)
class Row:
    mode: str
    bandwidth_mbps: float
    latency_ms: float  # median end-to-end per inference
    latency_p90_ms: float
    device_compute_ms: float  # median time the device computes (full model, head, or nothing)
    bytes_sent: float  # per inference, frames included
    bytes_received: float
    accuracy: float | None  # top-1 vs labels, when labels were given
    agreement: float  # top-1 agreement with the local (single-process) model
    energy_mj: float  # device energy per inference, estimated (see ComparisonTable.energy_note)
    fallbacks: int


@dataclass
class ComparisonTable:
    rows: list[Row]
    link_latency_ms: float
    samples: int
    backend: str
    energy_note: str
    device_slowdown: float = 1.0
    plot: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rows]

    def format(self) -> str:
        head = (
            f"{'mode':<13} {'Mbit/s':>7} {'latency ms':>10} {'p90 ms':>8} {'device ms':>9} {'sent B':>8} "
            f"{'recv B':>7} {'acc %':>6} {'agree %':>7} {'energy mJ*':>10} {'fallbk':>6}"
        )
        lines = [head, "-" * len(head)]
        for r in self.rows:
            acc = f"{r.accuracy * 100:6.1f}" if r.accuracy is not None else f"{'-':>6}"
            bw = f"{r.bandwidth_mbps:7.2f}" if r.mode != "local" else f"{'-':>7}"
            lines.append(
                f"{r.mode:<13} {bw} {r.latency_ms:10.2f} {r.latency_p90_ms:8.2f} {r.device_compute_ms:9.3f} "
                f"{r.bytes_sent:8.0f} {r.bytes_received:7.0f} {acc} {r.agreement * 100:7.1f} {r.energy_mj:10.3f} "
                f"{r.fallbacks:6d}"
            )
        lines.append(f"* {self.energy_note}")
        lines.append(
            f"{self.samples} inputs per cell, one-way link latency {self.link_latency_ms:g} ms, "
            f"{self.backend} runtime"
            + (f", device compute x{self.device_slowdown:g}" if self.device_slowdown != 1 else "")
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _feeds(model: SplitModel, inputs: Any) -> list[dict[str, np.ndarray]]:
    """One feed dict per sample: an array of samples (single-input models) or a list of feed dicts."""
    if isinstance(inputs, np.ndarray):
        if len(model.inputs) != 1:
            raise UserError(f"the model takes {len(model.inputs)} inputs: pass a list of feed dicts")
        name = model.inputs[0]
        shape = model.head_part.spec(name).shape
        per = int(np.prod(shape[:1]))
        if inputs.shape[1:] != shape[1:] or len(inputs) % per:
            raise UserError(f"inputs of shape {inputs.shape} do not stack samples of {shape}")
        return [{name: inputs[i : i + per].astype(np.float32)} for i in range(0, len(inputs), per)]
    return [dict(f) for f in inputs]


def _top1(outputs: dict[str, np.ndarray], name: str) -> np.ndarray:
    return outputs[name].argmax(axis=-1).ravel()


def compare_modes(
    bundle: str | os.PathLike[str],
    server: str,
    inputs: Any,
    bandwidths: Sequence[float],
    *,
    secret: bytes | str,
    labels: Sequence[int] | np.ndarray | None = None,
    latency_s: float = 0.005,
    jitter_s: float = 0.0,
    target: str | None = None,
    plot: str | os.PathLike[str] | None = None,
    device_slowdown: float = 1.0,
    timeout_s: float = 10.0,
    compress: bool = True,
) -> ComparisonTable:
    """Run every input through the three modes at each bandwidth (bit/s) against `server` (serving
    the same bundle). Device compute is timed on this machine; `device_slowdown` scales it (e.g. to a
    board's measured speed ratio) and is printed with the table. Energy: the target's power model."""
    from edgefit import targets
    from edgefit.runtime.harness.power import EstimatedPower

    if not bandwidths or min(bandwidths) <= 0:
        raise UserError("bandwidths must be a non-empty list of positive bit/s values")
    if device_slowdown < 1:
        raise UserError("device_slowdown must be >= 1 (a multiple of this machine's compute time)")
    model = SplitModel(bundle)
    feeds = _feeds(model, inputs)
    out_name = model.outputs[0]
    y = None if labels is None else np.asarray(labels).ravel()
    meter = EstimatedPower(targets.load(target or model.bundle.target))
    idle_w = meter.read_watts()
    meter.set_busy(1.0)
    active_w = meter.read_watts()
    meter.set_busy(0.0)

    def energy_mj(device_s: float, total_s: float) -> float:
        # Board active while it computes, idle while it waits for the network (radio not modelled).
        return (active_w * device_s + idle_w * max(0.0, total_s - device_s)) * 1e3

    # Local: the whole model on the device; independent of the link.
    local_top1, times = [], []
    model.full(feeds[0])  # warm-up (first native run maps the weights)
    for f in feeds:
        t0 = time.perf_counter()
        out = model.full(f)
        times.append(time.perf_counter() - t0)
        local_top1.append(_top1(out, out_name))
    ref_top1 = np.concatenate(local_top1)
    local_t = [t * device_slowdown for t in times]
    rows: list[Row] = []
    acc = (lambda pred: float((pred == y).mean())) if y is not None else (lambda pred: None)

    def add(mode: str, bw: float, totals: list[float], device: list[float], sent, recv, pred, falls) -> None:
        rows.append(
            Row(
                mode=mode,
                bandwidth_mbps=bw / 1e6,
                latency_ms=statistics.median(totals) * 1e3,
                latency_p90_ms=float(np.percentile(totals, 90)) * 1e3,
                device_compute_ms=statistics.median(device) * 1e3,
                bytes_sent=float(np.mean(sent)),
                bytes_received=float(np.mean(recv)),
                accuracy=acc(pred),
                agreement=float((pred == ref_top1).mean()),
                energy_mj=statistics.mean(energy_mj(d, t) for d, t in zip(device, totals, strict=True)),
                fallbacks=falls,
            )
        )

    for bw in bandwidths:
        add("local", bw, local_t, local_t, [0], [0], ref_top1, 0)
        shaper = Shaper(bandwidth_bps=bw, latency_s=latency_s, jitter_s=jitter_s, seed=0)
        for mode in ("full-offload", "split"):
            with SplitPipeline(
                bundle,
                server,
                secret=secret,
                shaper=shaper,
                timeout_s=timeout_s,
                compress=compress,
                model=model,
            ) as pipe:
                pipe.run(feeds[0], mode=mode)  # connect + handshake outside the timed runs
                totals, device, sent, recv, preds, falls = [], [], [], [], [], 0
                for f in feeds:
                    out, rep = pipe.run(f, mode=mode)
                    extra = rep.head_ms * (device_slowdown - 1) / 1e3
                    totals.append(rep.total_ms / 1e3 + extra)
                    device.append(rep.head_ms / 1e3 + extra if not rep.fell_back else rep.total_ms / 1e3)
                    sent.append(rep.bytes_sent)
                    recv.append(rep.bytes_received)
                    preds.append(_top1(out, out_name))
                    falls += rep.fell_back
            add(mode, bw, totals, device, sent, recv, np.concatenate(preds), falls)
    rows.sort(key=lambda r: (MODES.index(r.mode), -r.bandwidth_mbps))
    # One local row is enough: it does not depend on the link.
    seen_local = False
    kept = []
    for r in rows:
        if r.mode == "local":
            if seen_local:
                continue
            seen_local = True
        kept.append(r)
    table = ComparisonTable(
        rows=kept,
        link_latency_ms=latency_s * 1e3,
        samples=len(feeds),
        backend=model.backend,
        energy_note=(
            f"energy estimated from the {meter.target.name} power model (active {active_w:g} W while computing, "
            f"idle {idle_w:g} W while waiting; radio power not modelled); compute timed on this host"
        ),
        device_slowdown=device_slowdown,
    )
    if plot is not None:
        table.plot = str(plot_comparison(table, plot))
    return table


def plot_comparison(table: ComparisonTable, path: str | os.PathLike[str]) -> Path:
    """Latency vs bandwidth per mode (log-log), like BottleFit's figure; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    bws = sorted({r.bandwidth_mbps for r in table.rows if r.mode != "local"})
    for mode, style in (("local", "k--"), ("full-offload", "s-"), ("split", "o-")):
        rows = sorted((r for r in table.rows if r.mode == mode), key=lambda r: r.bandwidth_mbps)
        if not rows:
            continue
        if mode == "local":
            ax.plot([bws[0], bws[-1]], [rows[0].latency_ms] * 2, style, label="local computing")
        else:
            label = "full offloading" if mode == "full-offload" else "split computing"
            ax.plot([r.bandwidth_mbps for r in rows], [r.latency_ms for r in rows], style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("link bandwidth (Mbit/s)")
    ax.set_ylabel("end-to-end latency per inference (ms)")
    slow = f", device compute x{table.device_slowdown:g}" if table.device_slowdown != 1 else ""
    if "emulated" in table.backend:
        slow += ",\ndevice = emulated board: its compute times are qemu emulation speed"
    ax.set_title(
        f"latency vs bandwidth ({table.link_latency_ms:g} ms one-way link latency{slow})", fontsize=10
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
