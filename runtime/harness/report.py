"""The Markdown summary: one table per model and target, a row per backend x compression, with ratios
against the uncompressed PyTorch reference measured on the same target."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

REFERENCE_BACKEND = "torch"
DENSE = "dense"
BACKEND_ORDER = ("torch", "onnxruntime", "native", "tflite", "tvm", "board")


def _order(record: dict[str, Any]) -> tuple:
    b = record["backend"]
    comp = record["compression"]
    return (BACKEND_ORDER.index(b) if b in BACKEND_ORDER else 99, b, comp != DENSE, comp)


def reference_for(record: dict[str, Any], records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The uncompressed reference on the same target: PyTorch dense, else this backend's dense row."""
    same = [r for r in records if r["model"] == record["model"] and r["target"] == record["target"]]
    for backend in (REFERENCE_BACKEND, record["backend"]):
        for r in same:
            if r["backend"] == backend and r["compression"] == DENSE:
                return r
    return None


def median_ms(record: dict[str, Any]) -> float | None:
    lat = record.get("latency")
    return None if not lat else lat["stats"]["median"] * 1e3


def energy_mj(record: dict[str, Any]) -> float | None:
    e = record.get("energy")
    return None if not e else e["energy_per_inference_j"] * 1e3


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    for scale, unit in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _ratio(ref: float | None, value: float | None) -> str:
    if not ref or not value:
        return "—"
    return f"{ref / value:.2f}x"


def markdown(records: list[dict[str, Any]], notes: Iterable[str] = (), incidents: Iterable[str] = ()) -> str:
    """The summary as Markdown: accuracy, drop, latency median (IQR), energy/inference, size, ratios."""
    lines = ["# edgefit benchmark", ""]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["model"], r["target"]), []).append(r)
    for (model, target), rows in sorted(groups.items()):
        rows.sort(key=_order)
        dataset = next((r["accuracy"]["dataset"] for r in rows if r.get("accuracy")), "—")
        lines += [
            f"## {model} on {target}",
            "",
            f"Accuracy on {dataset}. Latency: median of the rounds (IQR), batch 1. "
            "Ratios: the uncompressed PyTorch reference on this target (torch, dense) divided by the row "
            "(size: smaller is more; latency: higher is faster); rows marked † use their own backend's dense row.",
            "",
            "| backend | compression | accuracy % | drop (pts) | top-1 agree % | latency ms (IQR) | energy/inf mJ "
            "| size | size ratio | speed ratio | outcome |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            acc = r.get("accuracy") or {}
            ref = reference_for(r, rows)
            dagger = "" if ref is None or ref["backend"] == REFERENCE_BACKEND else " †"
            lat = r.get("latency")
            latency = "—"
            if lat:
                s = lat["stats"]
                where = "" if lat.get("measured_on", "host") == "host" else f" ({lat['measured_on']})"
                latency = f"{s['median'] * 1e3:.3f} ({s['iqr'] * 1e3:.3f}){where}"
            energy = r.get("energy")
            energy_txt = "—"
            if energy:
                energy_txt = f"{energy['energy_per_inference_j'] * 1e3:.3f}" + (
                    " (est.)" if energy["kind"] == "estimated" else ""
                )
            outcome = "; ".join(r.get("failures", [])) or ("ok" if r.get("passed", True) else "failed")
            lines.append(
                f"| {r['backend']} | {r['compression']} | {_fmt(acc.get('accuracy'), '.2f')} "
                f"| {_fmt(acc.get('drop'), '+.2f')} | {_fmt(acc.get('agreement'), '.1f')} | {latency} | {energy_txt} "
                f"| {_size(r.get('size_bytes'))} | {_ratio(ref and ref.get('size_bytes'), r.get('size_bytes'))}{dagger} "
                f"| {_ratio(ref and median_ms(ref), median_ms(r))}{dagger} | {outcome} |"
            )
        lines.append("")
        engines = sorted({f"{r['backend']}: {r['engine']}" for r in rows if r.get("engine")})
        if engines:
            lines += ["Engines: " + "; ".join(engines) + ".", ""]
    notes = list(notes)
    if notes:
        lines += ["Notes:", "", *(f"- {n}" for n in notes), ""]
    incidents = list(incidents)
    if incidents:
        lines += ["Board connection incidents (retried):", "", *(f"- {i}" for i in incidents), ""]
    return "\n".join(lines)
