"""Named compression settings the harness compares ("dense", "sparse90", "cb4", "int8") and their configs."""

from __future__ import annotations

import re

from edgefit.compiler.compress.config import CompressionConfig
from edgefit.errors import UserError

DENSE = "dense"
_PATTERNS = (
    (re.compile(r"dense"), lambda m, e: CompressionConfig()),
    (
        re.compile(r"sparse(\d{1,2})"),
        lambda m, e: CompressionConfig(sparsity=int(m[1]) / 100, finetune_epochs=e),
    ),
    (re.compile(r"cb([2-8])"), lambda m, e: CompressionConfig(codebook_bits=int(m[1]), finetune_epochs=e)),
    (re.compile(r"int8"), lambda m, e: CompressionConfig(int8=True, finetune_epochs=e)),
)
HELP = "dense, sparseNN (NN percent zeros, e.g. sparse90), cbB (B-bit codebook, e.g. cb4), int8"


def parse_names(text: str) -> list[str]:
    """'dense, sparse90,cb4' -> ['dense', 'sparse90', 'cb4'], each checked, duplicates dropped."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise UserError(f"no compression settings given; choose from: {HELP}")
    for name in names:
        config(name)
    return names


def config(name: str, finetune_epochs: int = 0) -> CompressionConfig:
    """The CompressionConfig for one setting name; fine-tuning applies only where data exists."""
    for pattern, make in _PATTERNS:
        m = pattern.fullmatch(name)
        if m:
            return make(m, finetune_epochs).validate()
    raise UserError(f"unknown compression setting {name!r}; choose from: {HELP}")
