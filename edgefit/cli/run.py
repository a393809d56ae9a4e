"""`edgefit run OUT/`: run a compiled bundle here (native C++ runtime, LiteRT or TVM), on a board over SSH
(`--board`), or split between this device and an edge server (`--split HOST:PORT`); with
`--compare-reference`, check the outputs against the reference outputs stored in the bundle."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a compiled bundle here, on a board, or split with a server")
    p.add_argument(
        "bundle", nargs="?", help="bundle directory written by 'edgefit compile' (optional with --board)"
    )
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
    b = p.add_argument_group("on a board (after 'edgefit flash')")
    b.add_argument("--board", metavar="USER@HOST[:PORT]", help="run the deployed model on this board")
    b.add_argument("--boards", metavar="FILE", help="boards inventory file (with --name)")
    b.add_argument("--name", help="board name in the inventory")
    b.add_argument("--identity", metavar="KEY", help="SSH private key")
    b.add_argument(
        "--accept-new", action="store_true", help="trust an unknown host key (shows its fingerprint)"
    )
    s = p.add_argument_group("split computing (a bundle compiled with --split)")
    s.add_argument(
        "--split",
        metavar="HOST:PORT",
        help="run the head here (or on --board) and the tail on 'edgefit serve'",
    )
    s.add_argument("--secret-file", help="shared secret of the server (or $EDGEFIT_SPLIT_SECRET)")
    s.add_argument("--policy", choices=("fallback", "fail"), default="fallback", help="when the server fails")
    s.add_argument("--link", help="shape the link: wifi, lte, 3g or BANDWIDTH[,LATENCY[,JITTER]]")
    p.set_defaults(func=drive)


def load_inputs(paths: list[str], names: list[str], bundle: Any) -> dict[str, Any]:
    """Graph inputs from .npy files (in graph-input order) or, without any, the bundle's reference inputs."""
    import numpy as np

    from edgefit.errors import UserError

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
        line = f"{name}: max abs error {rel:.3e} of the output scale ({scale:.4g})"
        bad = rel > tol
        if want.ndim == 2 and want.shape[1] > 1:
            agree = float((got.argmax(axis=1) == want.argmax(axis=1)).mean())
            line += f", top-1 agreement {agree * 100:.1f} %"
            bad = bad or agree < 1.0
        ok = ok and not bad
        lines.append(line + (" FAIL" if bad else " ok"))
    return ok, lines


def _report(outputs: dict[str, Any], reference: dict[str, Any] | None, tol: float) -> int:
    if reference is None:
        return 0
    ok, lines = compare(outputs, reference, tol)
    for line in lines:
        print(line)
    if not ok:
        print(f"outputs disagree with the reference (tolerance {tol:g} of output scale, identical top-1)")
        return 1
    return 0


def _save_output(outputs: dict[str, Any], name: str, path: str) -> None:
    import numpy as np

    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp.npy")
    np.save(tmp, outputs[name])
    tmp.replace(out)


def _drive_board(args: argparse.Namespace) -> int:
    """Run the model deployed on a board; the board compares with its own bundle's reference."""
    import numpy as np

    from edgefit.errors import UserError
    from edgefit.runtime.bundle import Bundle
    from edgefit.runtime.deploy import boards
    from edgefit.runtime.deploy.remote import remote_run

    inputs = None
    if args.input:
        if not args.bundle:
            raise UserError("--input with --board needs the bundle directory (for the input names)")
        names = [spec["name"] for spec in Bundle.load(args.bundle).manifest["inputs"]]
        if len(names) != len(args.input):
            raise UserError(
                f"the model takes {len(names)} input(s) ({', '.join(names)}), got {len(args.input)}"
            )
        inputs = {n: np.load(p, allow_pickle=False) for n, p in zip(names, args.input, strict=True)}
    conn, _ = boards.resolve(args.board, args.boards, args.name, args.identity, args.accept_new)
    outputs, report = remote_run(conn, inputs, compare_reference=args.compare_reference, threads=args.threads)
    print(f"ran {report.get('bundle', '?')} on {conn.address} with the {report.get('engine', '?')} engine")
    if args.output:
        _save_output(outputs, next(iter(outputs)), args.output)
    if args.compare_reference:
        for name, err in (report.get("errors") or {}).items():
            print(f"{name}: {err}")
        if not report.get("ok", False):
            print(f"outputs on the board disagree with the reference (max error {report.get('max_error')})")
            return 1
        print("board outputs match the reference")
    return 0


def _tolerance(bundle: Any) -> float:
    """What the compiler recorded the outputs may differ by (the board-side run reads it too): fp32
    round-off, or the quantization error of a u8 bottleneck / TFLite's int8 activations."""
    return float(bundle.manifest.get("tolerance", {}).get("relative", 1e-4))


def _drive_split(args: argparse.Namespace, bundle: Any) -> int:
    """Head here, tail on the edge server; split outputs carry the bottleneck's u8 quantization error."""
    import os

    from edgefit.errors import UserError
    from edgefit.runtime.split.client import run_split
    from edgefit.runtime.split.engine import SplitModel
    from edgefit.runtime.split.shaper import Shaper

    secret = os.environ.get("EDGEFIT_SPLIT_SECRET")
    if args.secret_file:
        try:
            secret = Path(args.secret_file).read_bytes().strip()
        except OSError as exc:
            raise UserError(f"{args.secret_file}: cannot read the secret ({exc.strerror})") from None
    if not secret:
        raise UserError("--split needs the server's secret: --secret-file F or $EDGEFIT_SPLIT_SECRET")
    model = SplitModel(bundle.path, threads=args.threads)
    feeds = {n: bundle.reference_inputs()[n] for n in model.inputs} if not args.input else None
    if feeds is None:
        import numpy as np

        feeds = {n: np.load(p, allow_pickle=False) for n, p in zip(model.inputs, args.input, strict=True)}
    shaper = Shaper.parse(args.link) if args.link else None
    outputs, report = run_split(
        bundle.path, args.split, feeds, secret=secret, policy=args.policy, shaper=shaper
    )
    print(report.summary())
    if args.output:
        _save_output(outputs, model.outputs[0], args.output)
    return _report(
        outputs,
        bundle.reference_outputs() if args.compare_reference else None,
        _tolerance(bundle),
    )


def _backend_engine(bundle: Any, threads: int) -> tuple[Any, list[str], str]:
    """(run(feeds) -> outputs, input names, label) for a tflite or tvm bundle on this host; a split
    bundle runs head then tail, as on a board."""
    from edgefit.errors import UserError

    artifacts = bundle.manifest["artifacts"]
    roles = ["model"] if "model" in artifacts else [r for r in ("head", "tail") if r in artifacts]
    if bundle.backend == "tflite":
        from edgefit.compiler.backends.tflite import run as engine

        loaded = [engine.load(bundle.artifact(r), threads) for r in roles]
        first = [d["name"] for d in loaded[0].get_input_details()]
        label = "LiteRT"
    elif bundle.backend == "tvm":
        from edgefit.compiler.backends.tvm import run as engine

        loaded = [engine.load(bundle.artifact(r), threads) for r in roles]
        first = [spec["name"] for spec in loaded[0][1]["inputs"]]
        label = f"TVM {loaded[0][1]['target_name']}"
    else:
        raise UserError(f"{bundle.path}: unknown backend {bundle.backend!r}")

    def run_once(feeds: dict[str, Any]) -> dict[str, Any]:
        values = dict(feeds)
        outputs: dict[str, Any] = {}
        for handle in loaded:
            outputs = engine.invoke(handle, values)
            values.update(outputs)
        return outputs

    return run_once, first, label


def drive(args: argparse.Namespace) -> int:
    import numpy as np

    from edgefit.errors import UserError
    from edgefit.runtime.bundle import Bundle

    if args.threads < 1 or args.repeat < 1:
        raise UserError("--threads and --repeat must be >= 1")
    if (args.board or args.boards) and args.split:
        from edgefit.runtime.split.onboard import cli_run  # head on the board, tail on the server

        return cli_run(args)
    if args.board or args.boards:
        return _drive_board(args)
    if not args.bundle:
        raise UserError("give the bundle directory to run (or --board to run what a board has deployed)")
    bundle = Bundle.load(args.bundle)
    if args.split:
        if bundle.backend != "native":
            raise UserError(f"--split runs native bundles; {args.bundle} is a {bundle.backend} bundle")
        return _drive_split(args, bundle)
    if bundle.backend != "native":
        run_once, names, label = _backend_engine(bundle, args.threads)
    elif "model" not in bundle.manifest["artifacts"]:
        # A split bundle run in one place: head then tail, exactly the single-process model.
        from edgefit.runtime.split.engine import SplitModel

        split = SplitModel(bundle.path, threads=args.threads)
        run_once, names, label = split.full, split.inputs, "head+tail"
    else:
        from edgefit.runtime.session import Session

        session = Session(bundle.artifact("model"), threads=args.threads)
        run_once, names, label = session.run, [spec["name"] for spec in session.inputs], session.isa
    tolerance = _tolerance(bundle)
    feeds = load_inputs(args.input, names, bundle)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        outputs = run_once(feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    print(
        f"ran {Path(args.bundle).name} ({label}, {args.threads} thread(s)): "
        f"median {float(np.median(times)):.3f} ms over {len(times)} run(s)"
    )
    if args.output:
        _save_output(outputs, next(iter(outputs)), args.output)
    return _report(outputs, bundle.reference_outputs() if args.compare_reference else None, tolerance)
