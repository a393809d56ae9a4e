"""Int8: symmetric per-output-channel weights (w = q * scale[o]) and activation ranges measured on
calibration batches with the reference interpreter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from edgefit.compiler.compress.policy import ALL_LAYERS, LayerPolicy, select_weights
from edgefit.compiler.encodings import Int8PerChannel
from edgefit.compiler.ir import Graph
from edgefit.errors import UserError


@torch.no_grad()
def quantize_weights_int8(model: nn.Module, *, policy: LayerPolicy = ALL_LAYERS) -> dict[str, Int8PerChannel]:
    """Round each selected weight to int8 with one symmetric scale per output channel, in place."""
    plan: dict[str, Int8PerChannel] = {}
    for name, p in select_weights(model, policy).items():
        enc = Int8PerChannel.from_dense(p.detach().cpu().float().numpy())
        p.copy_(torch.from_numpy(enc.to_dense()))
        plan[name] = enc
    return plan


def calibrate_activations(
    graph: Graph, batches: Iterable[Mapping[str, np.ndarray]]
) -> dict[str, tuple[float, float]]:
    """(min, max) of every graph input and node output over all `batches` (graph input name -> array)."""
    from edgefit.compiler.reference import run

    ranges: dict[str, tuple[float, float]] = {}
    n = 0
    for batch in batches:
        n += 1
        for name, arr in run(graph, batch, keep_all=True).items():
            if arr.size == 0:
                continue
            lo, hi = float(np.min(arr)), float(np.max(arr))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise UserError(f"calibration: tensor {name!r} has non-finite values (inf/nan) in batch {n}")
            old = ranges.get(name)
            ranges[name] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    if n == 0:
        raise UserError("calibration needs at least one batch of inputs")
    return ranges
