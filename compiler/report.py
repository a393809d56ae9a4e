"""Size and compute statistics of a compiled graph: what `edgefit compile` and `inspect` print.

Computed from the IR alone (weights in their encodings, activation shapes), so the figures hold
for any model, zoo or user's, and match what the artifact really stores.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from edgefit.compiler.encodings import BlockSparse, bits_per_weight
from edgefit.compiler.ir import Graph, Node


@dataclass(frozen=True)
class WeightRow:
    """One weight tensor of a conv2d/linear node."""

    node: str
    name: str
    encoding: str
    shape: tuple[int, ...]
    params: int
    nnz: int
    bytes: int
    bits_per_weight: float
    macs_dense: int
    macs_effective: int


def _macs_per_weight(graph: Graph, node: Node) -> int:
    """How many times each weight element is used by one inference of this node."""
    out = graph.values[node.outputs[0]].shape
    if node.op == "conv2d":
        n, _, ho, wo = out
        return n * ho * wo
    return int(math.prod(out[:-1]))  # linear: once per row of x


def weight_rows(graph: Graph) -> list[WeightRow]:
    rows = []
    for node in graph.nodes:
        if node.op not in ("conv2d", "linear"):
            continue
        enc = graph.constants.get(node.inputs[1])
        if enc is None:
            continue
        params = int(math.prod(enc.shape))
        nnz = enc.nnz
        uses = _macs_per_weight(graph, node)
        # Only sparse kernels skip zeros; dense and codebook kernels multiply every weight.
        effective = (enc.values.size if isinstance(enc, BlockSparse) else params) * uses
        rows.append(
            WeightRow(
                node.name,
                node.inputs[1],
                enc.kind,
                tuple(enc.shape),
                params,
                nnz,
                enc.nbytes,
                round(bits_per_weight(enc), 3),
                params * uses,
                effective,
            )
        )
    return rows


def summarize(graph: Graph) -> dict:
    """Totals over all constants (weights, biases, BN leftovers) and the conv/linear MACs."""
    rows = weight_rows(graph)
    params = sum(int(math.prod(c.shape)) for c in graph.constants.values())
    nnz = sum(c.nnz for c in graph.constants.values())
    nbytes = sum(c.nbytes for c in graph.constants.values())
    fp32 = 4 * params
    kinds: dict[str, int] = {}
    for c in graph.constants.values():
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    return {
        "parameters": params,
        "nonzeros": nnz,
        "bytes": nbytes,
        "fp32_bytes": fp32,
        "bits_per_weight": round(8 * nbytes / max(1, params), 3),
        "size_vs_fp32": round(fp32 / max(1, nbytes), 3),
        "weight_bytes": sum(r.bytes for r in rows),
        "weight_size_vs_fp32": round(4 * sum(r.params for r in rows) / max(1, sum(r.bytes for r in rows)), 3),
        "macs_dense": sum(r.macs_dense for r in rows),
        "macs_effective": sum(r.macs_effective for r in rows),
        "encodings": kinds,
        "layers": [asdict(r) for r in rows],
    }


def _human(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def format_summary(summary: dict, title: str = "") -> str:
    """The compile table: per-layer rows (shortened for big models) and a totals line."""
    lines = [title] if title else []
    header = f"{'layer':<36}{'encoding':<10}{'params':>10}{'nonzero':>10}{'bytes':>10}{'bits/w':>8}{'MACs':>10}{'eff.MACs':>10}"
    lines.append(header)
    lines.append("-" * len(header))
    layers = summary["layers"]
    shown = layers if len(layers) <= 24 else [*layers[:10], None, *layers[-10:]]
    for row in shown:
        if row is None:
            lines.append(f"{'... ' + str(len(layers) - 20) + ' more layers':<36}")
            continue
        name = row["node"] if len(row["node"]) <= 35 else "…" + row["node"][-34:]
        lines.append(
            f"{name:<36}{row['encoding']:<10}{_human(row['params']):>10}{_human(row['nnz']):>10}"
            f"{_human(row['bytes'], 'B'):>10}{row['bits_per_weight']:>8.2f}{_human(row['macs_dense']):>10}{_human(row['macs_effective']):>10}"
        )
    lines.append("-" * len(header))
    s = summary
    lines.append(
        f"{'total (all constants)':<36}{'':<10}{_human(s['parameters']):>10}{_human(s['nonzeros']):>10}"
        f"{_human(s['bytes'], 'B'):>10}{s['bits_per_weight']:>8.2f}{_human(s['macs_dense']):>10}{_human(s['macs_effective']):>10}"
    )
    lines.append(
        f"size vs fp32: {s['size_vs_fp32']:.2f}x smaller ({_human(s['fp32_bytes'], 'B')} -> {_human(s['bytes'], 'B')}), "
        f"conv/linear weights alone {s['weight_size_vs_fp32']:.2f}x; "
        f"MACs dense {_human(s['macs_dense'])}, effective {_human(s['macs_effective'])}"
    )
    return "\n".join(lines)
