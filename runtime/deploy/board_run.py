"""Board-side runner: loads a deployed bundle, runs it, compares with the bundle's reference.

Runs on the board's own python3 with numpy only (no edgefit install): `flash` uploads it beside
the bundle. Engines, by backend: native -> the cross-built `_native` module in `runtime/` when it
is there, else the numpy reference interpreter shipped in `pylib/`; tflite -> LiteRT; tvm -> TVM.

    python3 board_run.py --smoke                 # reference inputs, compare, JSON report, exit 1 on mismatch
    python3 board_run.py --inputs - --npz-out -  # npz in on stdin, npz out on stdout (+ "__report__")
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPORT_KEY = "__report__"
DEFAULT_TOLERANCE = 1e-4


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Max abs error divided by the expected output's scale (as edgefit.compiler.pipeline)."""
    if actual.shape != expected.shape:
        return float("inf")
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-12)
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    return float(diff.max(initial=0.0)) / scale


class ReferenceEngine:
    """The numpy reference interpreter of edgefit (exact, slow) on a native `.efm` artifact."""

    name = "numpy-reference"

    def __init__(self, bundle: Path, artifact: str, threads: int) -> None:
        sys.path.insert(0, str(bundle / "pylib"))
        from edgefit.compiler import reference
        from edgefit.compiler.artifact import read_artifact

        self._reference = reference
        self.graph = read_artifact(bundle / artifact)
        self.inputs, self.outputs = list(self.graph.inputs), list(self.graph.outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._reference.run(self.graph, feeds)


class NativeEngine:
    """edgefit's C++ runtime through the cross-built pybind11 module in the bundle's runtime/."""

    name = "native"

    def __init__(self, bundle: Path, artifact: str, threads: int) -> None:
        import _native  # found via runtime/ on sys.path

        self.session = _native.Session(str(bundle / artifact), threads, None)
        self.inputs = [spec["name"] for spec in self.session.inputs]
        self.outputs = [spec["name"] for spec in self.session.outputs]
        self.name = f"native ({self.session.isa})"  # the kernels the runtime picked on this CPU

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.session.run({k: np.ascontiguousarray(v) for k, v in feeds.items()})
        if isinstance(result, dict):
            return {k: np.asarray(v) for k, v in result.items()}
        return dict(zip(self.outputs, (np.asarray(r) for r in result), strict=True))


class TFLiteEngine:
    """LiteRT (XNNPACK) through edgefit's own NCHW<->NHWC runner (shipped in pylib/)."""

    name = "litert"

    def __init__(self, bundle: Path, artifact: str, threads: int) -> None:
        sys.path.insert(0, str(bundle / "pylib"))
        from edgefit.compiler.backends.tflite import run

        self._run = run
        self.interp = run.load(bundle / artifact, threads)
        self.inputs = [d["name"] for d in self.interp.get_input_details()]
        self.outputs = [d["name"] for d in self.interp.get_output_details()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._run.invoke(self.interp, feeds)


class TVMEngine:
    """A TVM (Relax VM) module cross-compiled for the board, with its I/O sidecar."""

    name = "tvm"

    def __init__(self, bundle: Path, artifact: str, threads: int) -> None:
        sys.path.insert(0, str(bundle / "pylib"))
        from edgefit.compiler.backends.tvm import run

        self._run = run
        self.handle = run.load(bundle / artifact, threads)
        self.inputs = [spec["name"] for spec in self.handle[1]["inputs"]]
        self.outputs = list(self.handle[1]["outputs"])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._run.invoke(self.handle, feeds)


def load_engine(bundle: Path, manifest: dict[str, Any], artifact: str, threads: int, engine: str) -> Any:
    runtime = bundle / "runtime"
    for path in (runtime / "site", runtime):
        if path.is_dir():
            sys.path.insert(0, str(path))
    backend = manifest["backend"]
    if backend == "native":
        if engine in ("auto", "native"):
            try:
                return NativeEngine(bundle, artifact, threads)
            except (ImportError, AttributeError) as exc:
                if engine == "native":
                    raise SystemExit(f"board_run: the native runtime is not usable here: {exc}") from None
        return ReferenceEngine(bundle, artifact, threads)
    if backend == "tflite":
        return TFLiteEngine(bundle, artifact, threads)
    if backend == "tvm":
        return TVMEngine(bundle, artifact, threads)
    raise SystemExit(f"board_run: unknown backend {backend!r}")


def _load_npz(data: bytes | Path) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data) if isinstance(data, bytes) else data) as npz:
        return {k: npz[k] for k in npz.files}


def run_bundle(
    bundle: Path, feeds: dict[str, np.ndarray] | None, compare: bool, threads: int, engine: str
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    feeds = feeds if feeds is not None else _load_npz(bundle / "reference_inputs.npz")
    artifacts = manifest["artifacts"]
    # A split model runs head then tail on the board, so the smoke test covers both artifacts.
    roles = ["model"] if "model" in artifacts else [r for r in ("head", "tail") if r in artifacts]
    report: dict[str, Any] = {
        "bundle": bundle.resolve().name,
        "target": manifest.get("target"),
        "backend": manifest["backend"],
        "threads": threads,
    }
    values = dict(feeds)
    outputs: dict[str, np.ndarray] = {}
    for role in roles:
        t0 = time.perf_counter()
        eng = load_engine(bundle, manifest, artifacts[role], threads, engine)
        t1 = time.perf_counter()
        wanted = eng.inputs or list(values)
        outputs = eng.run({k: values[k] for k in wanted if k in values} if eng.inputs else values)
        t2 = time.perf_counter()
        values.update(outputs)
        report[role] = {"engine": eng.name, "load_ms": (t1 - t0) * 1e3, "run_ms": (t2 - t1) * 1e3}
        report["engine"] = eng.name
    names = [o["name"] for o in manifest.get("outputs", [])] or list(outputs)
    if len(outputs) == len(names) and not set(names) <= set(outputs):
        outputs = dict(zip(names, outputs.values(), strict=True))  # engines that number their outputs
    if compare:
        expected = _load_npz(bundle / "reference_outputs.npz")
        tolerance = float(manifest.get("tolerance", {}).get("relative", DEFAULT_TOLERANCE))
        errors = {
            k: relative_error(outputs[k], v) if k in outputs else float("inf") for k, v in expected.items()
        }
        report.update(
            errors=errors, tolerance=tolerance, ok=all(e <= tolerance for e in errors.values()),
            max_error=max(errors.values(), default=0.0),
        )  # fmt: skip
    return outputs, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--smoke", action="store_true", help="reference inputs, compare, JSON report")
    parser.add_argument("--inputs", help="npz of inputs ('-' for stdin); default: the reference inputs")
    parser.add_argument("--compare", action="store_true", help="compare outputs with reference_outputs.npz")
    parser.add_argument("--npz-out", help="write outputs (+ report) as npz ('-' for stdout)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--engine", default="auto", choices=["auto", "native", "reference"])
    args = parser.parse_args(argv)

    feeds = None
    if args.inputs:
        feeds = _load_npz(sys.stdin.buffer.read() if args.inputs == "-" else Path(args.inputs))
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # nothing an engine prints may corrupt the npz or JSON on stdout
    try:
        outputs, report = run_bundle(
            Path(args.bundle), feeds, args.compare or args.smoke, args.threads, args.engine
        )
    finally:
        sys.stdout = real_stdout
    if args.npz_out:
        payload = {**outputs, REPORT_KEY: np.frombuffer(json.dumps(report).encode(), dtype=np.uint8)}
        buf = io.BytesIO()
        np.savez(buf, **payload)
        if args.npz_out == "-":
            sys.stdout.buffer.write(buf.getvalue())
            sys.stdout.flush()
        else:
            Path(args.npz_out).write_bytes(buf.getvalue())
    else:
        print(json.dumps(report))
    return 0 if report.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
