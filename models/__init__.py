"""The model zoo: ResNet-18/50, MobileNetV2, BottleFit ResNet-50 and a digits CNN, by name.

Architectures use torchvision's parameter names (torchvision itself does not import with our torch),
so users' stored torchvision state dicts load; nothing is ever downloaded.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

import torch
from torch import nn

from edgefit.errors import UserError

ZOO: tuple[str, ...] = ("resnet18", "resnet50", "mobilenet_v2", "bottlefit_resnet50", "digits_cnn")


def _factory(name: str) -> Callable[..., nn.Module]:
    if name not in ZOO:
        close = difflib.get_close_matches(name, ZOO, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown zoo model {name!r}{hint}; valid names: {', '.join(ZOO)}")
    # Imported here so `import edgefit.models` stays cheap.
    if name in ("resnet18", "resnet50"):
        from edgefit.models import resnet

        return getattr(resnet, name)
    if name == "mobilenet_v2":
        from edgefit.models.mobilenet_v2 import mobilenet_v2

        return mobilenet_v2
    if name == "bottlefit_resnet50":
        from edgefit.models.bottlefit import bottlefit_resnet50

        return bottlefit_resnet50
    from edgefit.models.digits_cnn import digits_cnn

    return digits_cnn


def create(name: str, **kwargs: object) -> nn.Module:
    """A freshly initialised zoo model (deterministic: `seed=0` unless given), in eval mode."""
    factory = _factory(name)
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise UserError(
            f"{name} does not take option(s) {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    model = factory(**kwargs)
    if name != "digits_cnn":  # the digits model is trained for real (models/pretrained.py)
        calibrate_batch_norm(model, int(kwargs.get("seed", 0)))  # type: ignore[call-overload]
    return model.eval()


@torch.no_grad()
def calibrate_batch_norm(model: nn.Module, seed: int = 0, batches: int = 1, batch_size: int = 4) -> None:
    """Set every BatchNorm's running statistics from forward passes on seeded random images.

    Freshly initialised BN layers hold mean 0 / variance 1, so in eval mode they pass the conv
    outputs through unnormalised and activations shrink layer after layer (a seeded MobileNetV2's
    logits come out near 1e-9): comparisons against such a model are degenerate. With statistics
    measured on data-like inputs each stage is normalised, as in a trained network. Loading real
    weights replaces these buffers."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    g = torch.Generator().manual_seed(seed + 1)
    model.train()
    for _ in range(batches):
        model(torch.randn(batch_size, 3, 224, 224, generator=g))
    for m in norms:
        m.momentum = 0.1
    model.eval()


def example_input(name: str, batch: int = 1) -> torch.Tensor:
    """A deterministic input of the zoo model's shape: 3x224x224 (ImageNet-normalised range) or 1x8x8 digits."""
    _factory(name)  # validates the name
    g = torch.Generator().manual_seed(0)
    if name == "digits_cnn":
        return torch.rand(batch, 1, 8, 8, generator=g)
    return torch.randn(batch, 3, 224, 224, generator=g)
