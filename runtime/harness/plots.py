"""PNG plots (matplotlib, Agg): latency vs accuracy and energy vs accuracy per backend and compression
setting, one figure per model and target, with the PyTorch reference marked."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from edgefit.runtime.harness.report import DENSE, REFERENCE_BACKEND, energy_mj, median_ms
from edgefit.runtime.harness.results import write_text_atomic

COLORS = {"torch": "#444444", "onnxruntime": "#1f77b4", "native": "#d62728", "tflite": "#2ca02c",
          "tvm": "#9467bd", "board": "#ff7f0e"}  # fmt: skip
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">"]


def _quality(record: dict[str, Any]) -> tuple[float | None, str]:
    """Accuracy when the data has labels, else top-1 agreement with the reference."""
    acc = record.get("accuracy") or {}
    if acc.get("accuracy") is not None:
        return acc["accuracy"], "top-1 accuracy (%)"
    return acc.get("agreement"), "top-1 agreement with the reference (%)"


def figure_png(model: str, target: str, records: list[dict[str, Any]]) -> bytes | None:
    """One PNG with two panels; None when no record has both a quality and a latency."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    compressions = sorted({r["compression"] for r in records}, key=lambda c: (c != DENSE, c))
    marker = {c: MARKERS[i % len(MARKERS)] for i, c in enumerate(compressions)}
    panels = (
        ("latency", median_ms, "latency, median (ms, log)"),
        ("energy", energy_mj, "energy per inference (mJ, log)"),
    )
    usable = [r for r in records if _quality(r)[0] is not None and median_ms(r) is not None]
    if not usable:
        return None
    ylabel = _quality(usable[0])[1]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    estimated = any((r.get("energy") or {}).get("kind") == "estimated" for r in usable)
    for ax, (_, metric, xlabel) in zip(axes, panels, strict=True):
        plotted = False
        for r in usable:
            x, (y, _) = metric(r), _quality(r)
            if x is None or x <= 0:
                continue
            plotted = True
            is_ref = r["backend"] == REFERENCE_BACKEND and r["compression"] == DENSE
            ax.scatter(x, y, s=260 if is_ref else 70, marker="*" if is_ref else marker[r["compression"]],
                       color=COLORS.get(r["backend"], "black"), edgecolors="black", linewidths=0.6, zorder=3)  # fmt: skip
            if is_ref:
                # Colour = backend and marker = compression (legend); only the reference is named on the plot.
                ax.axhline(y, color="#444444", ls="--", lw=0.8, zorder=1)
                ax.annotate(
                    "PyTorch reference", (x, y), textcoords="offset points", xytext=(8, 8), fontsize=8
                )
        if plotted:
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax.set_xscale("log")
            # Ticks at 1-2-5 steps with plain numbers: the default 2x10^-2 labels collide.
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(
            xlabel
            + (" — estimated from the target's power model" if metric is energy_mj and estimated else "")
        )
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if not plotted:
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", color="gray")
    # One legend for both panels: colour = backend, marker = compression, star = reference.
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=COLORS.get(b, "black"), label=b)
               for b in sorted({r["backend"] for r in usable})]  # fmt: skip
    handles += [
        Line2D([], [], marker=marker[c], ls="", color="white", markeredgecolor="black", label=c)
        for c in compressions
    ]
    handles.append(
        Line2D([], [], marker="*", ls="", markersize=12, color="#444444", label="PyTorch reference (dense)")
    )
    axes[1].legend(handles=handles, loc="best", fontsize=8, title="backend / compression", title_fontsize=8)
    what = ylabel.split(" (")[0]
    fig.suptitle(f"{model} on {target}: {what} vs latency and energy (upper left is better)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_plots(records: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One `<model>-<target>.png` per model and target; returns the files written."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["model"], r["target"]), []).append(r)
    written = []
    for (model, target), rows in sorted(groups.items()):
        png = figure_png(model, target, rows)
        if png is None:
            continue
        path = out_dir / f"{Path(model).stem}-{target}.png"
        write_text_atomic(path, png)
        written.append(path)
    return written
