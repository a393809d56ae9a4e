"""Fold eval-mode batch norms into the convolutions before weights are palettized or quantized.

A codebook or int8 weight learned before folding would need a per-row scale afterwards (the BN
scale), costing 4 bytes per output channel and breaking the pure "index + table" form. Folding
first makes the compressed weights the deployed weights. Parameter names are kept (torch.fx
fusion), so plans keyed by state-dict names still match.
"""

from __future__ import annotations

from torch import nn


def fold_batch_norms(module: nn.Module) -> tuple[nn.Module, str | None]:
    """The module with conv->BN pairs fused (eval semantics), or the module unchanged and a note
    when it cannot be traced symbolically (data-dependent control flow)."""
    from torch.fx.experimental.optimization import fuse

    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return module, None
    try:
        fused = fuse(module.eval(), inplace=False)
    except Exception as exc:  # torch.fx raises many types for untraceable code
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return module, f"batch norms not folded before compression (model not traceable: {first})"
    return fused.eval(), None
