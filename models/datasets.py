"""Datasets available offline: scikit-learn's 8x8 digits (shipped with scikit-learn), and users' image folders."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from edgefit.errors import UserError

SPLITS = ("train", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# torchvision's ImageNet normalisation, which the zoo's ImageNet models (and stored weights) expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@lru_cache(maxsize=8)
def _digits_arrays(seed: int, test_fraction: float) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None]  # pixel values are 0..16
    labels = data.target.astype(np.int64)
    return tuple(
        train_test_split(images, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    )


def digits(split: str = "train", seed: int = 0, test_fraction: float = 0.25) -> TensorDataset:
    """The 8x8 digits as (images float32 [N,1,8,8] in 0..1, labels int64); a stratified, seeded split."""
    if split not in SPLITS:
        raise UserError(f"unknown digits split {split!r}; valid splits: {', '.join(SPLITS)}")
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test_fraction must be in (0, 1), got {test_fraction}")
    x_train, x_test, y_train, y_test = _digits_arrays(seed, test_fraction)
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    return TensorDataset(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()))


class ImageFolder(Dataset):
    """An ImageNet-style folder (one sub-folder per class, sorted names = class indices), read lazily.

    Images are resized (shorter side to image_size * 8/7), centre-cropped to image_size and normalised
    as torchvision's ImageNet models expect.
    """

    def __init__(self, path: str | Path, image_size: int = 224) -> None:
        root = Path(path)
        if not root.is_dir():
            raise UserError(f"image folder {root} does not exist or is not a directory")
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.samples = [
            (f, i)
            for i, c in enumerate(self.classes)
            for f in sorted((root / c).rglob("*"))
            if f.suffix.lower() in IMAGE_EXTENSIONS
        ]
        if not self.samples:
            raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in class sub-folders of {root}")
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image, UnidentifiedImageError

        path, label = self.samples[index]
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                short = round(self.image_size * 8 / 7)
                scale = short / min(im.size)
                size = (max(short, round(im.width * scale)), max(short, round(im.height * scale)))
                im = im.resize(size, Image.Resampling.BILINEAR)
                left, top = (im.width - self.image_size) // 2, (im.height - self.image_size) // 2
                im = im.crop((left, top, left + self.image_size, top + self.image_size))
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (OSError, UnidentifiedImageError) as e:
            raise UserError(f"cannot read image {path}: {e}") from e
        arr = (arr - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
        return torch.from_numpy(arr.transpose(2, 0, 1).copy()), label


def image_folder(path: str | Path, image_size: int = 224) -> ImageFolder:
    """A user's ImageNet-style folder of labelled images (nothing is ever downloaded)."""
    return ImageFolder(path, image_size)
