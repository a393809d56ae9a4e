"""Issue 4's comparison table: every zoo model x compression x backend compiled through the CLI, then run
with `edgefit run --compare-reference --repeat N` (1 thread) and tabulated: file size, max error of output
scale, median host latency. Bundles are cached under --work, so a second call only measures.

    .venv/bin/python tools/backend_table.py --work /tmp/table --out table.md [--compile-only]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

EDGEFIT = str(Path(sys.executable).with_name("edgefit"))
#: (row label, zoo model, extra compile arguments): the BottleFit head is compiled as a split bundle.
MODELS = {
    "digits_cnn": ("digits_cnn", []),
    "resnet18": ("resnet18", []),
    "mobilenet_v2": ("mobilenet_v2", []),
    "bottlefit_head": ("bottlefit_resnet50", ["--split"]),
}
COMPRESSIONS = {
    "dense": [],
    "sparse90": ["--sparsity", "0.9", "--block", "1x4"],
    "cb4": ["--codebook-bits", "4"],
    "int8": ["--int8"],
}
BACKENDS = ("native", "tflite", "tvm")
MEDIAN = re.compile(r"median ([0-9.]+) ms over")
#: `edgefit run --compare-reference` prints the error already relative to the output scale.
ERROR = re.compile(r"max abs error ([0-9.e+-]+) of the output scale .*top-1 agreement ([0-9.]+) % (\w+)")


@dataclass
class Row:
    model: str
    compression: str
    backend: str
    size: str = ""
    head_size: str = ""
    error: str = ""
    top1: str = ""
    latency: str = ""
    status: str = ""


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _compile(model: str, compression: str, backend: str, work: Path) -> tuple[Path, str]:
    out = work / f"{model}-{compression}-{backend}"
    if (out / "manifest.json").is_file():
        return out, ""
    zoo, extra = MODELS[model]
    cmd = [EDGEFIT, "compile", zoo, "--target", "x86_64", "--backend", backend, *extra]
    cmd += [*COMPRESSIONS[compression], "--no-progress", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return out, (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return out, ""


def _measure(row: Row, bundle: Path, repeat: int) -> None:
    import json

    manifest = json.loads((bundle / "manifest.json").read_text())
    files = manifest["artifacts"]
    row.size = _mb(sum((bundle / f).stat().st_size for f in files.values()))
    if "head" in files:
        row.head_size = _mb((bundle / files["head"]).stat().st_size)
    cmd = [EDGEFIT, "run", str(bundle), "--compare-reference", "--repeat", str(repeat), "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    if (m := MEDIAN.search(text)) is not None:
        row.latency = f"{float(m.group(1)):.2f}"
    if (m := ERROR.search(text)) is not None:
        row.error = f"{float(m.group(1)):.1e}"
        row.top1 = f"{float(m.group(2)):.0f} %"
    if proc.returncode in (0, 1):  # 1: ran, but the outputs disagree with the reference
        row.status = "ok" if proc.returncode == 0 else "DISAGREES"
    else:
        row.status = (proc.stderr.strip().splitlines() or ["failed"])[-1][:80]


def _table(rows: list[Row]) -> str:
    head = "| model | compression | backend | size | (head) | max err / scale | top-1 agree | ms (1 thr) | status |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        cells = (r.model, r.compression, r.backend, r.size, r.head_size, r.error, r.top1, r.latency, r.status)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="bundle cache directory")
    ap.add_argument("--out", type=Path, help="Markdown file to write (default: stdout)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--compressions", default=",".join(COMPRESSIONS))
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--compile-only", action="store_true")
    args = ap.parse_args()
    rows = []
    for model in args.models.split(","):
        for compression in args.compressions.split(","):
            for backend in args.backends.split(","):
                row = Row(model, compression, backend)
                bundle, failure = _compile(model, compression, backend, args.work)
                print(
                    f"{model} {compression} {backend}: {failure or 'compiled'}", file=sys.stderr, flush=True
                )
                if failure:
                    row.status = f"compile: {failure[:80]}"
                elif not args.compile_only:
                    _measure(row, bundle, args.repeat)
                rows.append(row)
    text = _table(rows)
    if args.out:
        from edgefit.compiler.artifact import atomic_write_bytes

        atomic_write_bytes(args.out, text.encode())
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
