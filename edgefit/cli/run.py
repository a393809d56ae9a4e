"""`edgefit run OUT/`: run a compiled bundle's native model through the C++ runtime; with
`--compare-reference`, check its outputs against the reference outputs stored in the bundle."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a compiled bundle with the native runtime")
    p.add_argument("bundle", help="bundle directory written by 'edgefit compile'")
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="X.npy",
        help="input array, in graph-input order (repeatable)",
    )
    p.add_argument("--output", metavar="Y.npy", help="write the (first) output here")
    p.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    p.add_argument("--repeat", type=int, default=1, help="run N times and report the median latency")
    p.add_argument(
        "--compare-reference",
        action="store_true",
        help="compare with the bundle's reference outputs; exit 1 if they disagree",
    )
    p.set_defaults(func=drive)


def load_inputs(paths: list[str], session: Any, bundle: Any) -> dict[str, Any]:
    """Graph inputs from .npy files (in graph-input order) or, without any, the bundle's reference inputs."""
    import numpy as np

    from edgefit.errors import UserError

    names = [spec["name"] for spec in session.inputs]
    if not paths:
        ref = bundle.reference_inputs()
        missing = [n for n in names if n not in ref]
        if missing:
            raise UserError(f"{bundle.path}: reference inputs lack {', '.join(missing)}; pass --input")
        return {n: ref[n] for n in names}
    if len(paths) != len(names):
        raise UserError(
            f"the model takes {len(names)} input(s) ({', '.join(names)}), got {len(paths)} --input"
        )
    feeds = {}
    for name, path in zip(names, paths, strict=True):
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: cannot read a .npy array ({exc})") from None
    return feeds


def compare(outputs: dict[str, Any], reference: dict[str, Any], tol: float = 1e-4) -> tuple[bool, list[str]]:
    """Max abs error relative to each output's scale (max |ref|) and top-1 agreement per output."""
    import numpy as np

    ok, lines = True, []
    for name, ref in reference.items():
        if name not in outputs:
            continue
        got = np.asarray(outputs[name], dtype=np.float64)
        want = np.asarray(ref, dtype=np.float64)
        if got.shape != want.shape:
            ok = False
            lines.append(f"{name}: shape {got.shape} != reference {want.shape}")
            continue
        scale = max(float(np.abs(want).max()), 1e-12)
        rel = float(np.abs(got - want).max()) / scale
        line = f"{name}: max abs error {rel:.3e} of output scale {scale:.4g}"
        bad = rel > tol
        if want.ndim == 2 and want.shape[1] > 1:
            agree = float((got.argmax(axis=1) == want.argmax(axis=1)).mean())
            line += f", top-1 agreement {agree * 100:.1f} %"
            bad = bad or agree < 1.0
        ok = ok and not bad
        lines.append(line + (" FAIL" if bad else " ok"))
    return ok, lines


def drive(args: argparse.Namespace) -> int:
    import numpy as np

    from edgefit.errors import UserError
    from edgefit.runtime.bundle import Bundle
    from edgefit.runtime.session import Session

    bundle = Bundle.load(args.bundle)
    if bundle.backend != "native":
        raise UserError(
            f"{args.bundle} was compiled for the {bundle.backend!r} backend; 'edgefit run' runs native bundles"
        )
    if args.threads < 1 or args.repeat < 1:
        raise UserError("--threads and --repeat must be >= 1")
    session = Session(bundle.artifact("model"), threads=args.threads)
    feeds = load_inputs(args.input, session, bundle)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        outputs = session.run(feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    print(
        f"ran {Path(args.bundle).name} on {session.isa} with {session.threads} thread(s): "
        f"median {float(np.median(times)):.3f} ms over {len(times)} run(s), peak {session.peak_bytes / 2**20:.2f} MiB"
    )
    if args.output:
        first = outputs[session.outputs[0]["name"]]
        out = Path(args.output)
        tmp = out.with_name(f".{out.name}.tmp.npy")
        np.save(tmp, first)
        tmp.replace(out)
    if args.compare_reference:
        ok, lines = compare(outputs, bundle.reference_outputs())
        for line in lines:
            print(line)
        if not ok:
            print("outputs disagree with the reference (tolerance 1e-4 of output scale, identical top-1)")
            return 1
    return 0
