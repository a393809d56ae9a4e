"""Repeatable ARM cost of the NEON kernels without hardware: llvm-mca cycles of the f32 GEMM inner
loop (Cortex-A57 model) and guest instruction counts of one kernel call under qemu-aarch64."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "tools" / "arm" / "build-neon-tests.sh"
PLUGIN_SRC = Path("/work/shared/tools/qemu-insncount.c")
GEMM_SYMBOL = "f32_gemm_ukernel_8x8__neonfma"
# Inputs of the cross build: a change to any of them invalidates the cached binaries.
BUILD_INPUTS = ("csrc/kernels", "csrc/tests/neon", "tools/arm/neon_bench.cc", "tools/arm/build-neon-tests.sh")
QEMU = ("qemu-aarch64", "-cpu", "cortex-a72")
BENCH_PAIRS = ("gemm", "gemv", "spmm", "cb4", "dw3x3")
# (assembly file in build/neon-tests/asm, symbol): the inner loop with the most fmla of each.
KERNEL_LOOPS = (
    ("f32-gemm-8x8-neonfma", GEMM_SYMBOL),
    ("f32-gemm-8x8-neonfma", "f32_gemv_ukernel_4x4__neonfma"),
    ("f32-spmm-32xn-neonfma", "f32_spmm_ukernel_32x1__neonfma"),
    ("f32-spmm-32xn-neonfma", "f32_spmm_ukernel_32x2__neonfma"),
    ("f32-spmm-32xn-neonfma", "f32_spmm_ukernel_32x4__neonfma"),
    ("cb-gemm-4x16-neonfma", "cb_gemm_ukernel_4x16__neonfma"),
    ("f32-dwconv-neonfma", "f32_dwconv_ukernel_3x3s1__neonfma"),
    ("f32-dwconv-neonfma", "f32_dwconv_ukernel_5x5s1__neonfma"),
)


def missing_tools() -> list[str]:
    """Host tools the cross build and emulated runs need that are not on PATH."""
    return [t for t in ("aarch64-linux-gnu-g++", "qemu-aarch64") if shutil.which(t) is None]


def _inputs_digest() -> str:
    h = hashlib.sha256()
    for rel in BUILD_INPUTS:
        path = ROOT / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def build(out: Path) -> Path:
    """Cross-builds the test driver and bench into `out` unless a build of the same sources is there."""
    stamp = out / ".inputs-sha256"
    digest = _inputs_digest()
    if (
        stamp.exists()
        and stamp.read_text() == digest
        and (out / "neon-kernel-tests").exists()
        and (out / "neon-bench").exists()
    ):
        return out
    subprocess.run(["bash", str(BUILD_SCRIPT), str(out)], check=True, capture_output=True, text=True)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(digest)
    tmp.rename(stamp)
    return out


# ---------------------------------------------------------------------------------------------
# llvm-mca over the GEMM inner loop


@dataclass(frozen=True)
class LoopCost:
    mcpu: str
    instructions: int  # in the loop body, branch included
    fmla: int
    cycles_per_iter: float  # llvm-mca steady state
    model_fma_bound: float  # sum of the fmla reciprocal throughputs in the model's own table
    two_pipe_bound: float  # fmla / 2: one q-form fmla per pipe per cycle, 2 pipes
    stack_accesses: int  # sp-relative loads/stores inside the loop (spills)

    @property
    def efficiency(self) -> float:
        return self.model_fma_bound / self.cycles_per_iter


def function_asm(asm: str, symbol_part: str) -> list[str]:
    """Instruction and label lines of the first function whose mangled name contains symbol_part;
    a wrapper that only tail-calls a template instance is followed into it."""
    lines = asm.splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(rf"^_Z\w*{re.escape(symbol_part)}\w*:", ln))
    body = []
    for ln in lines[start + 1 :]:
        s = ln.split("//")[0].strip()
        if s.startswith(".size") or s.startswith(".cfi_endproc"):
            break
        if not s or (s.startswith(".") and not s.endswith(":")):
            continue  # directives
        body.append(s)
    tail = [m.group(1) for x in body if (m := re.match(r"^b\s+(_Z\w+)$", x))]
    if tail and not any(x.startswith("fmla") for x in body):
        return function_asm(asm, tail[0])
    return body


def innermost_fma_loop(body: list[str]) -> list[str]:
    """The label-free loop (label ... backward branch to it) with the most fmla instructions; the
    label is the compiler's (.L...) or an inline-assembly local one (`1:` ... `b.ne 1b`)."""
    best: list[str] = []
    for i, ln in enumerate(body):
        m = re.match(r"^b(?:\.?\w+)?\s+(\.L\w+|\d+b)$|^(?:cbn?z|tbn?z)\s+.*,\s*(\.L\w+|\d+b)$", ln)
        if not m:
            continue
        target = m.group(1) or m.group(2)
        label = (target[:-1] if target[-1] == "b" and target[:-1].isdigit() else target) + ":"
        if label not in body[:i]:
            continue
        start = i - 1 - body[:i][::-1].index(label)  # the nearest one before the branch
        loop = body[start + 1 : i + 1]
        if any(x.endswith(":") for x in loop):
            continue
        if sum(x.startswith("fmla") for x in loop) > sum(x.startswith("fmla") for x in best):
            best = loop
    if not best:
        raise ValueError("no loop with fmla found")
    return best


def mca_loop_cost(loop: list[str], mcpu: str = "cortex-a57", iterations: int = 1000) -> LoopCost:
    """llvm-mca steady-state cycles per iteration of `loop` (its last line branches back)."""
    branch = re.sub(r"(\.L\w+|\d+b)$", ".Lloop", loop[-1])
    text = ".Lloop:\n" + "\n".join([*loop[:-1], branch]) + "\n"
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        out = subprocess.run(
            ["llvm-mca", "-mtriple=aarch64-linux-gnu", f"-mcpu={mcpu}", f"-iterations={iterations}", path],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        Path(path).unlink()
    iters = int(re.search(r"^Iterations:\s+(\d+)", out, re.M).group(1))
    cycles = int(re.search(r"^Total Cycles:\s+(\d+)", out, re.M).group(1))
    # Instruction info rows: "[uops] [latency] [rthroughput] [flags...] instruction".
    bound = 0.0
    for row in re.finditer(r"^\s*\d+\s+\d+\s+([\d.]+)\s+.*?\b(fmla\b.*)$", out, re.M):
        bound += float(row.group(1))
    fmla = sum(x.startswith("fmla") for x in loop)
    spills = sum(bool(re.search(r"\[sp\b", x)) for x in loop)
    return LoopCost(mcpu, len(loop), fmla, cycles / iters, bound, fmla / 2, spills)


def kernel_asm(build_dir: Path, asm_file: str, symbol: str) -> list[str]:
    return function_asm((build_dir / "asm" / f"{asm_file}.s").read_text(), symbol)


def loop_cost(build_dir: Path, asm_file: str, symbol: str, mcpu: str = "cortex-a57") -> LoopCost:
    return mca_loop_cost(innermost_fma_loop(kernel_asm(build_dir, asm_file, symbol)), mcpu)


def gemm_loop_cost(build_dir: Path, mcpu: str = "cortex-a57") -> LoopCost:
    return loop_cost(build_dir, "f32-gemm-8x8-neonfma", GEMM_SYMBOL, mcpu)


def stack_vector_accesses(
    build_dir: Path, asm_file: str = "f32-gemm-8x8-neonfma", symbol: str = GEMM_SYMBOL
) -> int:
    """q-register loads/stores to the stack anywhere in a kernel (accumulator spills)."""
    return sum(
        bool(re.match(r"^(ld|st)[rp]\s+q\d+.*\[sp\b", x)) for x in kernel_asm(build_dir, asm_file, symbol)
    )


# ---------------------------------------------------------------------------------------------
# QEMU guest instruction counts


@dataclass(frozen=True)
class CallCount:
    kernel: str
    macs: int
    insns: int  # guest instructions of one call
    fmla: int

    @property
    def fmla_floor(self) -> int:
        return -(-self.macs // 4)  # 4 fp32 lanes per fmla


def build_plugin(out: Path) -> Path:
    """Builds the insncount TCG plugin (it declares the QEMU 7.2 plugin API itself: Debian 12
    ships no qemu-plugin.h)."""
    lib = out / "libinsncount.so"
    if not lib.exists() or lib.stat().st_mtime < PLUGIN_SRC.stat().st_mtime:
        subprocess.run(
            ["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(PLUGIN_SRC)],
            check=True,
            capture_output=True,
        )
    return lib


def _count(build_dir: Path, plugin: Path, kernel: str, calls: int) -> tuple[int, int]:
    res = subprocess.run(
        [
            *QEMU,
            "-plugin",
            f"{plugin},match=fmla",
            "-d",
            "plugin",
            str(build_dir / "neon-bench"),
            kernel,
            str(calls),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    m = re.search(r"insns: (\d+)\s+fmla: (\d+)", res.stdout + res.stderr)
    if m is None:
        raise RuntimeError(f"no plugin output for {kernel}: {res.stdout + res.stderr}")
    return int(m.group(1)), int(m.group(2))


def call_count(build_dir: Path, plugin: Path, kernel: str) -> CallCount:
    """count(2 calls) - count(1 call): one call, with start-up, set-up and first-touch excluded."""
    i1, f1 = _count(build_dir, plugin, kernel, 1)
    i2, f2 = _count(build_dir, plugin, kernel, 2)
    shapes = subprocess.run(
        [*QEMU, str(build_dir / "neon-bench"), "--shapes"], check=True, capture_output=True, text=True
    )
    macs = dict(ln.split() for ln in shapes.stdout.splitlines())[kernel.removesuffix("-scalar")]
    return CallCount(kernel, int(macs), i2 - i1, f2 - f1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build" / "neon-tests")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    if missing := missing_tools():
        print(
            f"error: missing {', '.join(missing)} (apt-get install g++-aarch64-linux-gnu qemu-user)",
            file=sys.stderr,
        )
        return 2
    out = build(args.build_dir)
    report: dict[str, object] = {}
    if shutil.which("llvm-mca"):
        loops = {sym: loop_cost(out, f, sym) for f, sym in KERNEL_LOOPS}
        report["loops"] = {
            sym: {
                **asdict(c),
                "efficiency": c.efficiency,
                "q_stack_accesses": stack_vector_accesses(out, f, sym),
            }
            for (f, sym), c in zip(KERNEL_LOOPS, loops.values(), strict=True)
        }
    plugin = build_plugin(out)
    counts = [call_count(out, plugin, k) for base in BENCH_PAIRS for k in (base, f"{base}-scalar")]
    report["calls"] = [{**asdict(c), "fmla_floor": c.fmla_floor} for c in counts]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if "loops" in report:
        print(
            "inner loops, llvm-mca -mcpu=cortex-a57 (model FMA bound = sum of the fmla reciprocal throughputs):"
        )
        print(
            f"  {'kernel':36s} {'insns':>5s} {'fmla':>4s} {'cyc/iter':>8s} {'FMA bound':>9s} {'% peak':>6s} {'spills':>6s}"
        )
        for sym, c in report["loops"].items():
            print(
                f"  {sym:36s} {c['instructions']:5d} {c['fmla']:4d} {c['cycles_per_iter']:8.2f} "
                f"{c['model_fma_bound']:9.2f} {100 * c['efficiency']:6.1f} {c['q_stack_accesses']:6d}"
            )
    print("guest instructions per call (qemu-aarch64 -cpu cortex-a72, insncount plugin):")
    print(f"  {'kernel':14s} {'MACs':>8s} {'insns':>9s} {'fmla':>7s} {'fmla floor':>10s} {'insns/MAC':>9s}")
    for c in counts:
        print(
            f"  {c.kernel:14s} {c.macs:8d} {c.insns:9d} {c.fmla:7d} {c.fmla_floor:10d} {c.insns / c.macs:9.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
