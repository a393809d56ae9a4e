"""Executed guest instructions per function for one inference of a compiled bundle on the NEON
runtime under qemu-aarch64 (deterministic for a given binary and input): where the instructions
that `tests/runtime/test_neon_runner.py` counts for a whole model go.

    python tools/arm/insn_profile.py BUNDLE_DIR [--top 25] [--build build/aarch64-prof]

Runs `edgefit-run --isa neon --threads 1` with --repeat 1 and 2 under a per-block plugin
(tools/arm/qemu-tbcount.c) and subtracts, so loading and setup cancel out. The runner is built
without PIE (its own build directory) so the addresses qemu reports are the symbol table's.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SRC = ROOT / "tools" / "arm" / "qemu-tbcount.c"
QEMU = ("qemu-aarch64", "-cpu", "cortex-a72", "-L", "/usr/aarch64-linux-gnu")


@dataclass(frozen=True)
class FunctionCost:
    name: str
    insns: int
    fmla: int


def build(build_dir: Path) -> Path:
    """The non-PIE aarch64 runner and the plugin in build_dir (configured on first use)."""
    if not (build_dir / "build.ninja").exists():
        subprocess.run(
            ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
             "-DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake", "-DEDGEFIT_BUILD_PYTHON=OFF",
             "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_EXE_LINKER_FLAGS=-no-pie"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        )  # fmt: skip
    subprocess.run(["ninja", "-C", str(build_dir), "edgefit-run"], check=True, capture_output=True, text=True)
    plugin = build_dir / "libtbcount.so"
    if not plugin.exists() or plugin.stat().st_mtime < PLUGIN_SRC.stat().st_mtime:
        tmp = plugin.with_suffix(".tmp")
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(tmp), str(PLUGIN_SRC)], check=True)
        tmp.rename(plugin)
    return build_dir / "edgefit-run"


def _symbols(exe: Path) -> tuple[list[int], list[str]]:
    out = subprocess.run(
        ["aarch64-linux-gnu-nm", "-C", "--defined-only", "-n", str(exe)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    addrs, names = [], []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            addrs.append(int(parts[0], 16))
            names.append(parts[2])
    return addrs, names


def _blocks(path: Path) -> collections.Counter[tuple[int, int, int]]:
    """(address, instructions, fmla) -> executions, summed over retranslations."""
    c: collections.Counter[tuple[int, int, int]] = collections.Counter()
    for line in path.read_text().splitlines():
        vaddr, insns, fmla, execs = line.split()
        c[(int(vaddr, 16), int(insns), int(fmla))] += int(execs)
    return c


def profile(bundle: Path, build_dir: Path) -> list[FunctionCost]:
    """Per-function instructions and fmla of one inference, most expensive first."""
    exe = build(build_dir)
    plugin = build_dir / "libtbcount.so"
    addrs, names = _symbols(exe)
    with tempfile.TemporaryDirectory() as tmp:
        inputs: list[str] = []
        with np.load(bundle / "reference_inputs.npz") as npz:
            for i, key in enumerate(npz.files):
                path = Path(tmp) / f"in{i}.npy"
                np.save(path, npz[key])
                inputs += ["--input", str(path)]
        counts = []
        for repeat in (1, 2):
            out = Path(tmp) / f"tb{repeat}.txt"
            subprocess.run(
                [*QEMU, "-plugin", f"{plugin},out={out}", "-d", "plugin", str(exe), str(bundle / "model.efm"),
                 *inputs, "--output", str(Path(tmp) / "y.npy"), "--isa", "neon", "--threads", "1",
                 "--repeat", str(repeat)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            counts.append(_blocks(out))
    insns: collections.Counter[str] = collections.Counter()
    fmla: collections.Counter[str] = collections.Counter()
    for key, execs in counts[1].items():
        runs = execs - counts[0].get(key, 0)
        if runs == 0:
            continue
        vaddr, n, f = key
        i = bisect.bisect_right(addrs, vaddr) - 1
        # Blocks past the executable's symbols are the shared libraries' (libc, libstdc++).
        name = names[i] if i >= 0 and vaddr < addrs[-1] + (1 << 20) else "<shared libraries>"
        insns[name] += n * runs
        fmla[name] += f * runs
    return sorted((FunctionCost(k, v, fmla[k]) for k, v in insns.items()), key=lambda c: -c.insns)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path, help="a compiled bundle directory (model.efm, reference_inputs.npz)")
    ap.add_argument("--top", type=int, default=25, help="functions to list (default 25)")
    ap.add_argument(
        "--build", type=Path, default=ROOT / "build" / "aarch64-prof", help="non-PIE build directory"
    )
    args = ap.parse_args(argv)
    if not (args.bundle / "model.efm").is_file() or not (args.bundle / "reference_inputs.npz").is_file():
        print(
            f"error: {args.bundle} is not a compiled bundle (model.efm, reference_inputs.npz)",
            file=sys.stderr,
        )
        return 2
    missing = [t for t in ("cmake", "ninja", "gcc", "qemu-aarch64", "aarch64-linux-gnu-g++", "aarch64-linux-gnu-nm")
               if shutil.which(t) is None]  # fmt: skip
    if missing:
        print(f"error: {', '.join(missing)} not on PATH (scripts/setup.sh installs them)", file=sys.stderr)
        return 2
    try:
        costs = profile(args.bundle, args.build.resolve())
    except subprocess.CalledProcessError as e:
        last = (e.stderr or "").strip().splitlines()[-1:] or [f"exit status {e.returncode}"]
        print(f"error: {Path(e.cmd[0]).name} failed: {last[0]}", file=sys.stderr)
        return 1
    total, total_fmla = sum(c.insns for c in costs), sum(c.fmla for c in costs)
    print(f"per inference: {total / 1e6:.2f} M instructions, {total_fmla / 1e6:.2f} M fmla")
    print(f"{'M insns':>9} {'share':>6} {'M fmla':>8}  function")
    for c in costs[: args.top]:
        print(f"{c.insns / 1e6:9.3f} {100 * c.insns / total:5.1f}% {c.fmla / 1e6:8.3f}  {c.name[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
