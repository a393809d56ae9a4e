"""Generic BottleFit bottleneck: insertion, byte report, two-stage training (acceptance on digits)."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from edgefit import models
from edgefit.compiler.compress.bottleneck import (
    bottleneck_report,
    insert_bottleneck,
    later_stages,
    train_bottleneck,
)
from edgefit.compiler.compress.training import cross_entropy_loss, evaluate_accuracy, fit
from edgefit.errors import UserError
from edgefit.models.datasets import digits


def test_insert_wraps_the_split_module_and_leaves_the_teacher_alone() -> None:
    teacher = models.create("digits_cnn")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = insert_bottleneck(teacher, "features.2", 4)
    assert student.split_after == "features.2.encoder"
    assert student.distill_pairs == (("features.2", "features.2"), ("features.3", "features.3"))
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert not hasattr(teacher, "split_after")
    names = dict(student.named_modules())
    assert isinstance(names["features.2.inner"], nn.MaxPool2d)
    assert (
        names["features.2.encoder"][0].out_channels == 4 and names["features.2.decoder"][0].out_channels == 32
    )
    assert isinstance(names["features.2.decoder"][-1], nn.ReLU)  # the max-pooled tensor is post-ReLU
    x = models.example_input("digits_cnn", batch=2)
    student.eval()
    with torch.no_grad():
        assert student(x).shape == (2, 10)
        assert student.features[:2](x).shape == (2, 32, 8, 8)


def test_decoder_keeps_signed_tensors_signed_and_bad_points_are_user_errors() -> None:
    mnv2 = models.create("mobilenet_v2")
    s = insert_bottleneck(mnv2, "features.3", 6)  # a linear bottleneck block: no ReLU at its output
    dec = s.get_submodule("features.3.decoder")
    assert isinstance(dec[-1], nn.BatchNorm2d) and dec[-1].num_features == 24
    r50 = models.create("resnet50")
    assert isinstance(insert_bottleneck(r50, "layer2", 3).get_submodule("layer2.decoder")[-1], nn.ReLU)
    assert later_stages(r50, "layer2") == ["layer3", "layer4"]
    assert later_stages(mnv2, "features.16") == ["features.17", "features.18"]
    with pytest.raises(UserError, match=r"no module 'feature.2'.*did you mean features.2"):
        insert_bottleneck(models.create("digits_cnn"), "feature.2", 4)
    bad = insert_bottleneck(models.create("digits_cnn"), "classifier", 2)
    with pytest.raises(UserError, match="needs an"):
        bad(models.example_input("digits_cnn"))


def test_report_counts_bytes_per_inference() -> None:
    student = insert_bottleneck(models.create("digits_cnn"), "features.1", 4)
    r = bottleneck_report(student, models.example_input("digits_cnn", batch=3), student.split_after)
    assert (
        r["input_shape"] == [1, 8, 8]
        and r["split_shape"] == [32, 8, 8]
        and r["bottleneck_shape"] == [4, 8, 8]
    )
    assert (r["input_bytes_fp32"], r["input_bytes_uint8"]) == (256, 64)
    assert (r["split_bytes_fp32"], r["split_bytes_uint8"]) == (8192, 2048)
    assert (r["bottleneck_bytes_fp32"], r["bottleneck_bytes_uint8"]) == (1024, 256)
    assert r["compression_vs_split_pct"] == 87.5 and r["compression_vs_input_pct"] == -300.0
    plain = bottleneck_report(models.create("digits_cnn"), models.example_input("digits_cnn"), "features.1")
    assert plain["compression_vs_split_pct"] == 0.0  # no bottleneck there: nothing compressed


def _teacher(train, epochs: int = 15) -> nn.Module:
    teacher = models.create("digits_cnn")
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    fit(
        teacher,
        DataLoader(train, batch_size=64, shuffle=True),
        cross_entropy_loss,
        opt,
        epochs,
        progress=False,
    )
    return teacher.eval()


def test_stage1_freezes_the_tail_and_stage2_freezes_the_head(tmp_path) -> None:
    torch.manual_seed(0)
    train = torch.utils.data.Subset(digits("train"), range(256))
    teacher = _teacher(train, epochs=1)
    student = insert_bottleneck(teacher, "features.1", 4)
    tail0 = {
        k: v.clone() for k, v in student.state_dict().items() if k.startswith(("features.3", "classifier"))
    }
    enc0 = {k: v.clone() for k, v in student.state_dict().items() if k.startswith("features.1.encoder")}
    train_bottleneck(student, teacher, train, stage1_epochs=1, stage2_epochs=0, progress=False)
    sd = student.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in tail0.items())  # weights and BN statistics
    assert not torch.equal(sd["features.1.encoder.0.weight"], enc0["features.1.encoder.0.weight"])
    assert not torch.equal(sd["features.0.0.weight"], teacher.features[0][0].weight)  # the head learns too
    head1 = {
        k: v.clone()
        for k, v in sd.items()
        if k.startswith(("features.0", "features.1.inner", "features.1.encoder"))
    }
    ckpt = tmp_path / "ck"
    train_bottleneck(
        student, teacher, train, stage1_epochs=0, stage2_epochs=1, progress=False, checkpoint_dir=ckpt
    )
    sd = student.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in head1.items())
    assert not torch.equal(sd["classifier.weight"], tail0["classifier.weight"])
    assert all(p.requires_grad for p in student.parameters())  # flags restored for later passes
    assert (ckpt / "bottleneck_stage2.pt").is_file()
    # A rerun with the same checkpoint directory resumes: the finished stage is loaded, not retrained.
    again = insert_bottleneck(teacher, "features.1", 4)
    train_bottleneck(
        again, teacher, train, stage1_epochs=0, stage2_epochs=1, progress=False, checkpoint_dir=ckpt
    )
    assert all(torch.equal(v, sd[k]) for k, v in again.state_dict().items())


def test_digits_bottleneck_keeps_accuracy_with_75pct_fewer_bytes() -> None:
    """Acceptance: <= 1.0 point accuracy loss vs the teacher, >= 75 % fewer fp32 bytes than the split tensor."""
    torch.manual_seed(0)
    train, test = digits("train"), digits("test")
    teacher = _teacher(train)
    acc_teacher = evaluate_accuracy(teacher, test)
    student = insert_bottleneck(teacher, "features.2", 4)
    student = train_bottleneck(student, teacher, train, stage1_epochs=10, stage2_epochs=10, progress=False)
    acc_student = evaluate_accuracy(student, test)
    r = bottleneck_report(student, test.tensors[0][:1], student.split_after)
    print(
        f"\ndigits bottleneck at features.2, C=4: teacher {100 * acc_teacher:.2f} %, "
        f"student {100 * acc_student:.2f} %, split tensor {r['split_bytes_fp32']} B fp32 -> "
        f"transmitted {r['bottleneck_bytes_fp32']} B fp32 ({r['compression_vs_split_pct']} % smaller)"
    )
    assert acc_teacher >= 0.96
    assert acc_student >= acc_teacher - 0.010
    assert r["compression_vs_split_pct"] >= 75.0
