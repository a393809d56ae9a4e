"""Which weights a compression pass touches: conv/linear weights, minus the first conv and the
classifier by default (Fast Sparse ConvNets keeps both dense), filtered by module-path patterns.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch

from torch import nn

# Weights viewed as [O, K] with O first: ConvTranspose weights are [I, O/groups, ...] and do not fit.
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class LayerPolicy:
    """`include`/`exclude` are fnmatch patterns on the module path ("features.3.conv.*");
    an empty `include` means every layer. `pointwise_only` keeps only 1x1 ungrouped convs;
    `skip_grouped` leaves grouped (depthwise) convs alone."""

    skip_first_conv: bool = True
    skip_classifier: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    pointwise_only: bool = False
    skip_grouped: bool = False


#: Every conv/linear weight (codebooks and int8 suit all layers).
ALL_LAYERS = LayerPolicy(skip_first_conv=False, skip_classifier=False)
#: Sparsity's default, as Fast Sparse ConvNets: first conv, classifier and depthwise convs stay
#: dense (a 9-weight depthwise filter has little to skip, and no sparse kernel runs grouped convs).
SPARSE_DEFAULT = LayerPolicy(skip_grouped=True)


def _is_pointwise(m: nn.Module) -> bool:
    return isinstance(m, _CONVS) and all(k == 1 for k in m.kernel_size) and m.groups == 1


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every conv/linear module that owns a weight parameter, in module order."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, (*_CONVS, nn.Linear)) and isinstance(getattr(m, "weight", None), nn.Parameter)
    ]


def fqn(module_path: str, param: str = "weight") -> str:
    return f"{module_path}.{param}" if module_path else param


def select_weights(model: nn.Module, policy: LayerPolicy = LayerPolicy()) -> dict[str, nn.Parameter]:
    """The weights `policy` selects, keyed by their state_dict name, in module order."""
    layers = weight_layers(model)
    first_conv = next((n for n, m in layers if isinstance(m, nn.Conv2d)), None)
    classifier = next((n for n, m in reversed(layers) if isinstance(m, nn.Linear)), None)
    out: dict[str, nn.Parameter] = {}
    seen: set[int] = set()
    for name, m in layers:
        if policy.skip_first_conv and name == first_conv:
            continue
        if policy.skip_classifier and name == classifier:
            continue
        if policy.include and not any(fnmatch(name, p) for p in policy.include):
            continue
        if any(fnmatch(name, p) for p in policy.exclude):
            continue
        if policy.pointwise_only and not _is_pointwise(m):
            continue
        if policy.skip_grouped and isinstance(m, _CONVS) and m.groups > 1:
            continue
        if id(m.weight) in seen:  # a tied weight is compressed once, under its first name
            continue
        seen.add(id(m.weight))
        out[fqn(name)] = m.weight
    return out
