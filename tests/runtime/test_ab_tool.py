"""tools/ab_sessions.py: the in-process A/B of two sessions runs on a bundle and reports a paired ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

TOOL = Path(__file__).resolve().parents[2] / "tools" / "ab_sessions.py"


def test_ab_sessions_reports_paired_ratio(h, artifact, tmp_path):
    rng = np.random.default_rng(3)
    w = h.encode(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "dense")
    attrs = {"stride": (1, 1), "padding": (1, 1, 1, 1), "dilation": (1, 1), "groups": 1, "act": "relu"}
    graph = h.single_op("conv2d", {"x": ((1, 4, 8, 8), "f32")}, {"w": w}, (1, 8, 8, 8), attrs)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    artifact(graph).rename(bundle / "model.efm")
    np.savez(bundle / "reference_inputs.npz", x=rng.standard_normal((1, 4, 8, 8)).astype(np.float32))

    def run(show: int) -> str:
        out = subprocess.run(
            [
                sys.executable,
                str(TOOL),
                str(bundle),
                "EDGEFIT_AB_TEST_UNUSED",
                "--pairs",
                "4",
                "--show",
                str(show),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert "B/A paired median" in out.stdout
        return out.stdout

    assert "n0" in run(1)  # the conv node is listed
    assert "n0" not in run(0)  # --show 0: the totals only
