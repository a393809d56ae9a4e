"""Size and sparsity of a compressed model, layer by layer: what each weight costs as encoded
versus dense fp32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from edgefit.compiler.compress.policy import fqn, weight_layers
from edgefit.compiler.encodings import WeightEncoding


@dataclass(frozen=True)
class LayerStats:
    name: str  # state_dict name of the weight
    kind: str  # "dense", "bsr", "codebook" or "int8"
    params: int
    nnz: int
    bytes: int  # as encoded (dense: fp32)
    bits_per_weight: float
    dense_bytes: int  # as fp32

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nnz / max(1, self.params)


def layer_stats(model: nn.Module, plan: dict[str, WeightEncoding]) -> list[LayerStats]:
    """One row per conv/linear weight of `model`, in module order, encoded as `plan` says."""
    out = []
    for path, m in weight_layers(model):
        name = fqn(path)
        w: torch.Tensor = m.weight
        params = int(w.numel())
        enc = plan.get(name)
        if enc is None or enc.kind == "dense":
            kind, nnz, nbytes = "dense", int(torch.count_nonzero(w.detach())), params * 4
        else:
            kind, nnz, nbytes = enc.kind, int(enc.nnz), int(enc.nbytes)
        out.append(LayerStats(name, kind, params, nnz, nbytes, 8.0 * nbytes / max(1, params), params * 4))
    return out


def _totals(rows: list[LayerStats]) -> dict[str, Any]:
    params = sum(r.params for r in rows)
    nnz = sum(r.nnz for r in rows)
    nbytes = sum(r.bytes for r in rows)
    dense = sum(r.dense_bytes for r in rows)
    return {
        "layers": len(rows),
        "params": params,
        "nnz": nnz,
        "sparsity": 1.0 - nnz / max(1, params),
        "bytes": nbytes,
        "dense_bytes": dense,
        "bits_per_weight": 8.0 * nbytes / max(1, params),
        "compression": dense / max(1, nbytes),  # x smaller than fp32
    }


def summarize(stats: list[LayerStats]) -> dict[str, Any]:
    """Totals over all conv/linear weights ("all") and over the compressed ones only ("compressed")."""
    return {
        "all": _totals(stats),
        "compressed": _totals([r for r in stats if r.kind != "dense"]),
        "layers": [asdict(r) for r in stats],
    }
