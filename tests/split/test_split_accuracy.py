"""Slow: a trained BottleFit digits model split across device and server keeps the single-process
model's accuracy on the digits test split (the CLI compile, then serve, then compare)."""

from __future__ import annotations

import numpy as np
import pytest

from edgefit.runtime.split import ServerThread, SplitServer
from edgefit.runtime.split.compare import compare_modes

from .conftest import SECRET


@pytest.mark.slow
def test_trained_split_keeps_accuracy(tmp_path) -> None:
    from edgefit.cli.main import main
    from edgefit.models import datasets

    out = tmp_path / "bundle"
    args = ["compile", "digits_cnn", "--target", "rpi4", "--bottleneck", "4", "--split-after", "features.2"]
    assert main([*args, "--split", "-o", str(out), "--no-progress"]) == 0
    test = datasets.digits("test")
    x, y = test.tensors[0][:120].numpy(), test.tensors[1][:120].numpy()
    with ServerThread(SplitServer(out, SECRET)) as server:
        table = compare_modes(out, server.address, x, [5e6], secret=SECRET, labels=y, latency_s=0.001)
    rows = {r.mode: r for r in table.rows}
    assert rows["local"].accuracy >= 0.9
    for mode in ("split", "full-offload"):
        assert rows[mode].agreement == 1.0 and rows[mode].fallbacks == 0
        assert np.isclose(rows[mode].accuracy, rows["local"].accuracy)
    assert rows["split"].bytes_sent <= 0.25 * 2048  # vs the fp32 features.2 output
