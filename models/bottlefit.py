"""BottleFit ResNet-50 (Matsubara et al.): a small encoder/decoder bottleneck replaces ResNet-50's first stages.

The encoder (head, runs on the board) ends in C channels — the transmitted tensor; the decoder (tail, on
the server) restores the teacher's tensor at the split (layer2: 512x28x28, layer1: 256x56x56), and the
rest is ResNet-50 with its module names, so a teacher's state dict loads into the tail.
"""

from __future__ import annotations

import itertools

from torch import Tensor, nn

from edgefit.errors import UserError
from edgefit.models._seed import seeded
from edgefit.models.resnet import Bottleneck, ResNet, init_weights, make_layer

CHANNELS = (1, 2, 3, 6, 9, 12)
# Split -> (channels of ResNet-50's tensor there, later ResNet-50 stages kept as the tail).
SPLITS = {"layer1": (256, ("layer2", "layer3", "layer4")), "layer2": (512, ("layer3", "layer4"))}
_STAGE = {"layer1": (64, 3, 1), "layer2": (128, 4, 2), "layer3": (256, 6, 2), "layer4": (512, 3, 2)}
_STAGE_IN = {"layer2": 256, "layer3": 512, "layer4": 1024}


def _bn_relu_conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 3, padding=1, bias=False)]


class BottleFitResNet(nn.Module):
    """ResNet-50 whose stem..`split` is replaced by encoder (-> C channels) + decoder (-> split tensor)."""

    def __init__(self, channels: int = 3, split: str = "layer2", num_classes: int = 1000) -> None:
        super().__init__()
        if channels not in CHANNELS:
            raise UserError(f"BottleFit channels must be one of {CHANNELS}, got {channels}")
        if split not in SPLITS:
            raise UserError(f"BottleFit split must be one of {', '.join(SPLITS)}, got {split!r}")
        out_channels, tail = SPLITS[split]
        # The paper's encoder: ResNet stem, then BN-ReLU and a 2x2/2 conv down to C channels (224 -> 28).
        # For a layer1 split the resolution stays at 56, so the last conv is 3x3/1 instead.
        last = nn.Conv2d(64, channels, 2, stride=2, bias=False)
        if split == "layer1":
            last = nn.Conv2d(64, channels, 3, padding=1, bias=False)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            last,
        )
        # Decoder: widen C -> 64 -> 128 -> 256 (-> 512) with BN-ReLU-conv3x3 at the encoder's resolution,
        # ending in BN-ReLU like a ResNet stage's output (the teacher's tensor is post-ReLU).
        widths = [channels, 64, 128, 256] + ([512] if out_channels == 512 else [])
        dec: list[nn.Module] = []
        for cin, cout in itertools.pairwise(widths):
            dec += _bn_relu_conv(cin, cout)
        dec += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        self.decoder = nn.Sequential(*dec)
        for name in tail:
            planes, blocks, stride = _STAGE[name]
            setattr(self, name, make_layer(Bottleneck, _STAGE_IN[name], planes, blocks, stride))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, num_classes)
        self.split = split
        self.tail = tail
        self.split_after = "encoder"
        # (student module, teacher module) whose outputs stage-1 distillation matches (BottleFit: the
        # decoder vs the teacher's split tensor, and each later stage).
        self.distill_pairs = (("decoder", split), *((t, t) for t in tail))
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.decoder(self.encoder(x))
        for name in self.tail:
            x = getattr(self, name)(x)
        return self.fc(self.avgpool(x).flatten(1))

    def load_teacher(self, teacher: ResNet) -> BottleFitResNet:
        """Copy a ResNet-50 teacher's tail (later stages, fc) and stem (conv1, bn1 -> encoder.0/1) weights."""
        own = self.state_dict()
        src = teacher.state_dict()
        renamed = {k.replace("conv1.", "encoder.0.", 1): v for k, v in src.items() if k.startswith("conv1.")}
        renamed |= {k.replace("bn1.", "encoder.1.", 1): v for k, v in src.items() if k.startswith("bn1.")}
        renamed |= {k: v for k, v in src.items() if k.split(".")[0] in (*self.tail, "fc")}
        bad = [k for k, v in renamed.items() if k not in own or own[k].shape != v.shape]
        if bad:
            raise UserError(f"teacher is not a ResNet-50 matching this BottleFit model: {', '.join(bad[:4])}")
        self.load_state_dict(renamed, strict=False)
        return self


def bottlefit_resnet50(
    channels: int = 3, split: str = "layer2", num_classes: int = 1000, seed: int = 0
) -> BottleFitResNet:
    with seeded(seed):
        return BottleFitResNet(channels, split, num_classes)
