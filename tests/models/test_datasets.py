"""The digits data (offline, from scikit-learn) and users' image folders."""

import numpy as np
import pytest
import torch

from edgefit.errors import UserError
from edgefit.models.datasets import digits, image_folder


def test_digits_split_is_stratified_deterministic_and_disjoint() -> None:
    train, test = digits("train"), digits("test")
    x, y = train.tensors
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape[1:] == (1, 8, 8) and float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert len(train) + len(test) == 1797 and len(test) == 450
    # Stratified: every class is in the test set in about its overall proportion (~10 %).
    counts = torch.bincount(test.tensors[1], minlength=10)
    assert int(counts.min()) >= 43 and int(counts.max()) <= 47
    assert torch.equal(digits("test").tensors[0], test.tensors[0])
    assert not torch.equal(digits("test", seed=1).tensors[0], test.tensors[0])
    seen = {tuple(r.flatten().tolist()) for r in x}
    overlap = sum(tuple(r.flatten().tolist()) in seen for r in test.tensors[0])
    assert overlap < 5  # only the few duplicate images of the original data can appear in both


def test_digits_bad_arguments() -> None:
    with pytest.raises(UserError, match="valid splits: train, test"):
        digits("val")
    with pytest.raises(UserError, match="test_fraction"):
        digits(test_fraction=1.5)


def test_image_folder_reads_classes_resizes_and_normalises(tmp_path) -> None:
    from PIL import Image

    for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (40, 30), colour).save(tmp_path / cls / "a.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = image_folder(tmp_path, image_size=16)
    assert ds.classes == ["cat", "dog"] and len(ds) == 2
    x, label = ds[0]
    assert x.shape == (3, 16, 16) and label == 0
    # Pure red after ImageNet normalisation: channel 0 = (1 - 0.485) / 0.229.
    np.testing.assert_allclose(x[0].numpy(), (1 - 0.485) / 0.229, rtol=1e-5)
    assert ds[1][1] == 1


def test_image_folder_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        image_folder(tmp_path)
    (tmp_path / "empty" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read image"):
        image_folder(tmp_path)[0]
