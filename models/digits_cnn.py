"""A small CNN for scikit-learn's 8x8 digits; its stages are named so a split point can be given.

Stages (output shapes for one 1x8x8 image): features.0 16x8x8, features.1 32x8x8, features.2 (max
pool) 32x4x4, features.3 64x4x4, then global average pooling and `classifier` (64 -> 10).
"""

from __future__ import annotations

from torch import Tensor, nn

from edgefit.models._seed import seeded


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class DigitsCNN(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn_relu(1, 16), _conv_bn_relu(16, 32), nn.MaxPool2d(2), _conv_bn_relu(32, 64)
        )
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def digits_cnn(num_classes: int = 10, seed: int = 0) -> DigitsCNN:
    with seeded(seed):
        return DigitsCNN(num_classes)
