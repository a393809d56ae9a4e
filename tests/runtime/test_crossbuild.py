"""The core and the standalone runner cross-compile for aarch64 (no Python) and pass the C++
tests and a model run under qemu-user; slow (a full build on 2 cores)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgefit.compiler import reference
from edgefit.compiler.artifact import write_artifact

REPO = Path(__file__).resolve().parents[2]
QEMU = ["qemu-aarch64", "-cpu", "cortex-a72", "-L", "/usr/aarch64-linux-gnu"]


@pytest.mark.slow
@pytest.mark.qemu
def test_aarch64_cross_build_runs_under_qemu(tmp_path, h):
    for tool in ("aarch64-linux-gnu-g++", "qemu-aarch64", "cmake"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    build = tmp_path / "build"
    subprocess.run(
        ["cmake", "-S", str(REPO), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         f"-DCMAKE_TOOLCHAIN_FILE={REPO / 'cmake' / 'aarch64-linux-gnu.cmake'}", "-DEDGEFIT_BUILD_PYTHON=OFF"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["cmake", "--build", str(build), "-j", "2", "--target", "edgefit_core_tests", "edgefit-run"],
        check=True,
        capture_output=True,
    )
    tests = subprocess.run(
        [*QEMU, str(build / "edgefit_core_tests")], capture_output=True, text=True, timeout=600
    )
    assert tests.returncode == 0, tests.stderr
    assert "neon kernels checked against scalar" in tests.stdout
    # A small graph through the aarch64 runner matches the reference.
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    graph = h.single_op(
        "conv2d",
        {"x": ((1, 4, 9, 9), "f32")},
        {"w": h.encode(w, "bsr2")},
        (1, 8, 9, 9),
        {"padding": (1, 1, 1, 1), "act": "relu"},
    )
    write_artifact(graph, tmp_path / "m.efm")
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run = subprocess.run(
        [*QEMU, str(build / "edgefit-run"), str(tmp_path / "m.efm"), "--input", str(tmp_path / "x.npy"),
         "--output", str(tmp_path / "y.npy")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert h.rel_err(np.load(tmp_path / "y.npy"), reference.run(graph, {"x": x})["y"]) < 2e-5
