"""BottleFit ResNet-50: encoder down to C channels at the split, decoder back to the teacher's tensor, ResNet-50 tail."""

import pytest
import torch

from edgefit import models
from edgefit.compiler.compress.bottleneck import bottleneck_report
from edgefit.errors import UserError
from edgefit.models.bottlefit import BottleFitResNet


@pytest.mark.parametrize(
    ("split", "channels", "enc", "dec"),
    [("layer2", 3, (3, 28, 28), (512, 28, 28)), ("layer1", 12, (12, 56, 56), (256, 56, 56))],
)
def test_encoder_and_decoder_shapes(split: str, channels: int, enc: tuple, dec: tuple) -> None:
    m = models.create("bottlefit_resnet50", channels=channels, split=split)
    assert m.split_after == "encoder"
    with torch.no_grad():
        z = m.encoder(models.example_input("bottlefit_resnet50"))
        assert z.shape[1:] == enc
        assert m.decoder(z).shape[1:] == dec
    head = sum(p.numel() for p in m.encoder.parameters())
    full = sum(p.numel() for p in m.parameters())
    assert full / head > 1000  # the head on the board is tiny next to the whole model


def test_tail_names_match_resnet50_and_teacher_weights_load() -> None:
    teacher = models.create("resnet50", seed=1)
    m = models.create("bottlefit_resnet50")
    assert m.distill_pairs == (("decoder", "layer2"), ("layer3", "layer3"), ("layer4", "layer4"))
    assert "layer2.0.conv1.weight" not in m.state_dict()
    m.load_teacher(teacher)
    assert torch.equal(m.layer3[5].conv3.weight, teacher.layer3[5].conv3.weight)
    assert torch.equal(m.fc.weight, teacher.fc.weight)
    assert torch.equal(m.encoder[0].weight, teacher.conv1.weight)
    assert torch.equal(m.encoder[1].running_var, teacher.bn1.running_var)
    with pytest.raises(UserError, match="not a ResNet-50"):
        m.load_teacher(models.create("resnet18"))


def test_bad_channels_or_split_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"one of \(1, 2, 3, 6, 9, 12\)"):
        BottleFitResNet(channels=4)
    with pytest.raises(UserError, match="split must be one of layer1, layer2"):
        BottleFitResNet(split="layer3")


@pytest.mark.slow
def test_full_forward_and_compression_vs_layer2() -> None:
    m = models.create("bottlefit_resnet50", channels=3)
    x = models.example_input("bottlefit_resnet50")
    with torch.no_grad():
        assert m(x).shape == (1, 1000)
    r = bottleneck_report(m, x, m.split_after)
    print("\nBottleFit ResNet-50 C=3:", r)
    assert r["split_shape"] == [512, 28, 28] and r["bottleneck_shape"] == [3, 28, 28]
    assert r["split_bytes_fp32"] == 4 * 512 * 28 * 28 and r["bottleneck_bytes_uint8"] == 3 * 28 * 28
    assert r["input_bytes_uint8"] == 3 * 224 * 224
    # BottleFit reports 77.1 % compression; the tensor alone is far smaller than both references here.
    assert r["compression_vs_split_pct"] > 99 and r["compression_vs_input_pct"] > 77.1
