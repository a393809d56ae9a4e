"""NEON kernels under qemu-aarch64: each against its scalar reference over edge shapes, the GEMM
inner loop's register allocation and llvm-mca cost, and exact guest instruction counts per call."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.qemu

NEON_KERNELS = (
    "f32_gemm_ukernel_8x8__neonfma",
    "f32_gemv_ukernel_4x4__neonfma",
    "f32_spmm_ukernel_32x1__neonfma",
    "f32_spmm_ukernel_32x2__neonfma",
    "f32_spmm_ukernel_32x4__neonfma",
    "cb_gemm_ukernel_4x16__neonfma",
    "f32_dwconv_ukernel_3x3s1__neonfma",
    "f32_dwconv_ukernel_3x3s2__neonfma",
    "f32_dwconv_ukernel_5x5s1__neonfma",
    "f32_dwconv_ukernel_5x5s2__neonfma",
    # The depthwise kernels' unpadded entry points (what the executor calls), input at a guard page.
    "f32_dwconv_ukernel_3x3s1__neonfma/unpadded",
    "f32_dwconv_ukernel_3x3s2__neonfma/unpadded",
    "f32_dwconv_ukernel_5x5s1__neonfma/unpadded",
    "f32_dwconv_ukernel_5x5s2__neonfma/unpadded",
    "f32_vclamp__neon",
    "f32_vhswish__neon",
    "f32_vadd__neon",
    "f32_vaffine__neon",
    "f32_global_avgpool__neon",
)


@pytest.fixture(scope="module")
def measure(h: SimpleNamespace) -> ModuleType:
    return h.load_script("tools/arm/measure_neon.py")


@pytest.fixture(scope="module")
def build_dir(measure: ModuleType) -> Path:
    if missing := measure.missing_tools():
        pytest.skip(f"{', '.join(missing)} not on PATH (Debian: g++-aarch64-linux-gnu, qemu-user)")
    return measure.build(REPO / "build" / "neon-tests")


def _run(build_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["qemu-aarch64", "-cpu", "cortex-a72", str(build_dir / "neon-kernel-tests"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_neon_kernel_matches_its_scalar_reference(build_dir: Path) -> None:
    res = _run(build_dir)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1] == "ALL PASSED"
    for name in NEON_KERNELS:
        (line,) = [ln for ln in lines if ln.split()[1] == f"{name}:"]
        assert line.startswith("PASS"), line
        assert int(re.search(r"(\d+) cases", line).group(1)) >= 30, line


def test_driver_rejects_an_unknown_kernel_filter(build_dir: Path) -> None:
    # The filter is how a single kernel is debugged; a typo must not read as "nothing failed".
    res = _run(build_dir, "no_such_kernel")
    assert res.returncode == 2
    assert "no kernel matches" in res.stderr


def test_gemm_keeps_accumulators_in_registers(build_dir: Path, measure: ModuleType) -> None:
    loop = measure.innermost_fma_loop(
        measure.kernel_asm(build_dir, "f32-gemm-8x8-neonfma", measure.GEMM_SYMBOL)
    )
    # The inline-assembly loop: two 8x8 k steps (16 q accumulators) per iteration, 4 ldp and 4
    # scalar instructions besides the 32 fmla.
    assert sum(x.startswith("fmla") for x in loop) == 32, loop
    assert len(loop) <= 40, loop
    assert not [x for x in loop if "[sp" in x], loop
    assert measure.stack_vector_accesses(build_dir) == 0


def test_no_kernel_inner_loop_touches_the_stack(build_dir: Path, measure: ModuleType) -> None:
    # GCC 12 keeps an accumulator array on the stack when it is indexed by a run-time value.
    for asm_file, symbol in measure.KERNEL_LOOPS:
        loop = measure.innermost_fma_loop(measure.kernel_asm(build_dir, asm_file, symbol))
        assert not [x for x in loop if "[sp" in x], (symbol, loop)


@pytest.mark.skipif(shutil.which("llvm-mca") is None, reason="llvm-mca not on PATH (Debian: llvm)")
def test_gemm_inner_loop_runs_at_the_fma_bound_of_the_a57_model(build_dir: Path, measure: ModuleType) -> None:
    cost = measure.gemm_loop_cost(build_dir)
    assert cost.fmla == 32
    assert cost.model_fma_bound > 0
    assert cost.efficiency >= 0.9, cost


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc (to build the QEMU plugin) not on PATH")
def test_one_gemm_call_executes_the_fmla_floor_and_little_else(build_dir: Path, measure: ModuleType) -> None:
    if not measure.PLUGIN_SRC.exists():
        pytest.skip(f"{measure.PLUGIN_SRC} (QEMU insncount plugin source) not present")
    plugin = measure.build_plugin(build_dir)
    neon = measure.call_count(build_dir, plugin, "gemm")
    scalar = measure.call_count(build_dir, plugin, "gemm-scalar")
    assert neon.fmla == neon.fmla_floor == neon.macs // 4  # every fmla does 4 useful MACs
    assert neon.insns < 1.4 * neon.fmla, neon  # loads, loop and tile overhead < 0.4 per fmla
    assert scalar.fmla == 0 and scalar.insns > 10 * neon.insns, scalar
