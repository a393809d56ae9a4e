"""BottleFit ResNet-50 trains in both stages against a ResNet-50 teacher (slow: two ResNet-50s)."""

import pytest
import torch
from torch.utils.data import TensorDataset

from edgefit import models
from edgefit.compiler.compress.bottleneck import train_bottleneck


@pytest.mark.slow
def test_bottlefit_two_stages_train_the_right_parts() -> None:
    torch.manual_seed(0)
    teacher = models.create("resnet50", num_classes=10)
    student = models.create("bottlefit_resnet50", channels=3, num_classes=10).load_teacher(teacher)
    # 64x64 keeps this quick; every stage still sees a feature map (encoder output 3x8x8).
    data = TensorDataset(torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3]))
    enc = student.encoder[-1].weight.clone()
    tail = student.layer3[0].conv1.weight.clone()
    train_bottleneck(student, teacher, data, stage1_epochs=1, stage2_epochs=0, batch_size=2, progress=False)
    assert not torch.equal(student.encoder[-1].weight, enc)
    assert torch.equal(student.layer3[0].conv1.weight, tail)  # tail frozen in stage 1
    enc = student.encoder[-1].weight.clone()
    dec = student.decoder[2].weight.clone()
    train_bottleneck(student, teacher, data, stage1_epochs=0, stage2_epochs=1, batch_size=2, progress=False)
    assert torch.equal(student.encoder[-1].weight, enc)  # encoder frozen in stage 2
    assert not torch.equal(student.decoder[2].weight, dec)
    assert not torch.equal(student.layer3[0].conv1.weight, tail)
