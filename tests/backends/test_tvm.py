"""TVM backend: every op and encoding compiled for the host and run against the reference; cross builds
for the Pi (aarch64 ELF) and Jetson (CUDA + aarch64 host); clear errors for missing toolchains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefit import targets
from edgefit.compiler import reference
from edgefit.errors import UserError

pytest.importorskip("tvm", reason="apache-tvm is not installed")

from edgefit.compiler.backends.tvm import compile_tvm, run_tvm
from edgefit.compiler.backends.tvm.run import invoke, load

HOST = targets.load("x86_64")


def _elf_machine(path) -> int:
    head = Path(path).read_bytes()[:20]
    assert head[:4] == b"\x7fELF"
    return int.from_bytes(head[18:20], "little")


@pytest.fixture(scope="module")
def merged_module(merged_cases, tmp_path_factory):
    """All cases in one graph: a single compile (~20 s) instead of one per case."""
    graph, outs, feeds = merged_cases
    path = tmp_path_factory.mktemp("tvm") / "cases.so"
    stats = compile_tvm(graph, HOST, path)
    return stats, load(path), reference.run(graph, feeds), outs, feeds


def test_every_op_and_encoding_matches_reference(merged_module, relerr):
    stats, module, want, outs, feeds = merged_module
    got = invoke(module, feeds)
    assert stats["codebook_layers"] == 3 and stats["int8_layers"] == 2
    bad = {}
    for case, out in outs.items():
        if case == "quantize_dequantize":  # one quantization step at exact ties at most
            ok = np.abs(got[out] - want[out]).max() <= 0.05 + 1e-6
        else:
            ok = relerr(got[out], want[out]) <= 1e-4
            if want[out].ndim == 2 and want[out].shape[1] > 1:
                ok = ok and bool((got[out].argmax(1) == want[out].argmax(1)).all())
        if not ok:
            bad[case] = relerr(got[out], want[out])
    assert not bad, f"cases off the reference: {bad}"


def test_densified_codebooks_match_and_run_tvm(builder, relerr, tmp_path):
    from edgefit.compiler.encodings import Codebook

    b = builder(seed=2)
    x = b.input("x", (1, 4, 6, 6))
    idx = b.rng.integers(0, 8, (8, 36))
    cb = Codebook.from_indices(
        (8, 4, 3, 3), 3, idx, b.rng.standard_normal((2, 8)).astype(np.float32), np.arange(8) % 2
    )
    y = b.conv(x, cb, padding=(1, 1, 1, 1), act="relu")
    graph = b.graph(y)
    feeds = {"x": b.rng.standard_normal((1, 4, 6, 6)).astype(np.float32)}
    stats = compile_tvm(graph, HOST, tmp_path / "d.so", densify_codebooks=True)
    assert stats["codebook_layers"] == 0
    assert relerr(run_tvm(tmp_path / "d.so", feeds)[y], reference.run(graph, feeds)[y]) <= 1e-4


def _tiny(builder):
    b = builder(seed=1)
    x = b.input("x", (1, 3, 8, 8))
    y = b.conv(x, b.weight((8, 3, 3, 3)), padding=(1, 1, 1, 1), act="relu")
    return b.graph(b.op("global_avg_pool", [y], (1, 8, 1, 1)))


def test_pi_cross_compile_is_aarch64_elf(builder, tmp_path):
    import shutil

    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("aarch64-linux-gnu-g++ not installed (Debian package g++-aarch64-linux-gnu)")
    stats = compile_tvm(_tiny(builder), targets.load("rpi4"), tmp_path / "pi.so")
    assert stats["target"]["mtriple"] == "aarch64-linux-gnu" and stats["target"]["mcpu"] == "cortex-a72"
    assert _elf_machine(tmp_path / "pi.so") == 183  # EM_AARCH64
    with pytest.raises(UserError, match="x86_64"):
        run_tvm(tmp_path / "pi.so", {"x": np.zeros((1, 3, 8, 8), np.float32)})


def test_missing_cross_compiler_names_the_package(builder, tmp_path, monkeypatch):
    import shutil

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if "aarch64" in name else real(name))
    with pytest.raises(UserError, match="g\\+\\+-aarch64-linux-gnu"):
        compile_tvm(_tiny(builder), targets.load("rpi5"), tmp_path / "pi.so")
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "nvcc" else real(name))
    with pytest.raises(UserError, match="nvcc"):
        compile_tvm(_tiny(builder), targets.load("jetson-orin-nano"), tmp_path / "j.so")


def test_jetson_build_has_cuda_kernels_and_aarch64_host(builder, tmp_path):
    import shutil

    if shutil.which("nvcc") is None or shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("needs nvcc and aarch64-linux-gnu-g++ to build for Jetson")
    stats = compile_tvm(_tiny(builder), targets.load("jetson-orin-nano"), tmp_path / "j.so")
    assert stats["device"] == "cuda" and stats["target"]["arch"] == "sm_87"
    assert _elf_machine(tmp_path / "j.so") == 183
    # The CUDA module is embedded in the host library (its kernels carry the fused op names).
    assert b"__global__ void __launch_bounds__" in (tmp_path / "j.so").read_bytes()


def test_unsupported_op_names_op_and_backend(builder, tmp_path):
    from dataclasses import replace

    from edgefit.compiler.backends.tvm.build import build_module

    graph = _tiny(builder)
    node = replace(graph.nodes[-1], op="gelu")
    with pytest.raises(UserError, match="TVM backend cannot express op 'gelu'"):
        build_module(graph.with_nodes([*graph.nodes[:-1], node]))


def test_tuning_for_a_board_target_is_a_user_error(builder, tmp_path):
    """MetaSchedule measures on this host: tuning a Pi module here would time x86 code."""
    import shutil

    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("aarch64-linux-gnu-g++ not installed (Debian package g++-aarch64-linux-gnu)")
    with pytest.raises(UserError, match="tune for a host target"):
        compile_tvm(
            _tiny(builder), targets.load("rpi4"), tmp_path / "pi.so", tune_trials=2, tuning_db=tmp_path
        )
    assert not (tmp_path / "pi.so").exists()
