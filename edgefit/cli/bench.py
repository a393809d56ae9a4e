"""`edgefit bench MODEL --target T [--board ...] [--backends ...] [--compressions ...] [--report DIR]`:
the harness's accuracy/latency/energy comparison for users who do not write tests (pytest on a generated
module, each backend in its own process)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="compare accuracy, latency and energy of compiled backends against PyTorch",
        description="Compiles MODEL once per backend and compression (cached), validates accuracy against the "
        "PyTorch reference, benchmarks latency and energy, and writes a JSON report, a Markdown table and "
        "PNG plots. Exit 1 when a threshold (--max-drop) fails.",
    )
    p.add_argument("model", help="zoo name, file.py:factory or a .pt2 (as edgefit compile)")
    p.add_argument("--target", required=True, help="board target (see 'edgefit targets')")
    p.add_argument("--board", metavar="USER@HOST:PORT", help="also run on this board over SSH")
    p.add_argument("--accept-new", action="store_true", help="trust the board's unknown host key (shows it)")
    p.add_argument(
        "--backends",
        default="native,tflite,tvm,onnxruntime,torch",
        help="comma list (default: all host backends)",
    )
    p.add_argument(
        "--compressions", default="dense,sparse90,cb4", help="comma list: dense, sparseNN, cbB, int8"
    )
    p.add_argument(
        "--report",
        type=Path,
        default=Path("edgefit-bench"),
        help="report directory (default ./edgefit-bench)",
    )
    p.add_argument("--weights", help="a local state-dict file")
    p.add_argument(
        "--max-drop", type=float, default=0.6, help="largest accepted top-1 drop in points (default 0.6)"
    )
    p.add_argument("--dataset", help="digits, random, or an image folder (default: digits for digits_cnn)")
    p.add_argument("--samples", type=int, help="validate on the first N samples")
    p.add_argument("--rounds", type=int, default=30, help="timed rounds (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up rounds (default 3)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    p.add_argument(
        "--finetune-epochs", type=int, default=15, help="fine-tuning epochs with data (default 15)"
    )
    p.add_argument("--rebuild", action="store_true", help="recompile even when a cached bundle matches")
    p.add_argument("--same-process", action="store_true", help="run all backends in one pytest process")
    p.add_argument("-v", "--verbose", action="store_true", help="pytest's full output")
    p.set_defaults(func=drive)


def pytest_args(args: argparse.Namespace, backends: str, suite: Path) -> list[str]:
    out = [
        str(suite), *_plugin_args(), "-p", "no:cacheprovider", "-p", "no:logging", "--rootdir", str(suite.parent),
        "--edgefit-target", args.target, "--edgefit-model", args.model, "--edgefit-backends", backends,
        "--edgefit-compressions", args.compressions, "--edgefit-report", str(args.report),
        "--edgefit-max-drop", str(args.max_drop), "--edgefit-rounds", str(args.rounds),
        "--edgefit-warmup", str(args.warmup), "--edgefit-threads", str(args.threads),
        "--edgefit-finetune-epochs", str(args.finetune_epochs),
        "-q" if not args.verbose else "-v", "-rfEs",
    ]  # fmt: skip
    for flag, value in (("--edgefit-board", args.board), ("--edgefit-weights", args.weights),
                        ("--edgefit-dataset", args.dataset), ("--edgefit-samples", args.samples)):  # fmt: skip
        if value is not None:
            out += [flag, str(value)]
    if args.rebuild:
        out.append("--edgefit-rebuild")
    if args.accept_new and args.board:
        out.append("--edgefit-accept-new")
    return out


def _plugin_args() -> list[str]:
    from edgefit.runtime.harness.suite import plugin_args

    return plugin_args()


def drive(args: argparse.Namespace) -> int:
    import subprocess
    import sys
    import tempfile

    from edgefit import targets
    from edgefit.errors import UserError
    from edgefit.runtime.harness import compressions
    from edgefit.runtime.harness.plugin import MD_NAME
    from edgefit.runtime.harness.results import JSON_NAME
    from edgefit.runtime.harness.runners import parse_backends
    from edgefit.runtime.harness.suite import write_suite

    # Every user mistake is reported here in one line, before any pytest process starts.
    targets.load(args.target)
    backends = parse_backends(args.backends)
    compressions.parse_names(args.compressions)
    if args.board is not None:
        from edgefit.runtime.deploy.ssh import BoardAddress

        BoardAddress.parse(args.board)
        backends = [b for b in backends if b != "board"] + ["board"]
    elif "board" in backends:
        raise UserError("the board backend needs --board USER@HOST:PORT")
    for name in ("rounds", "threads", "samples"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.report.exists() and not args.report.is_dir():
        raise UserError(f"--report {args.report} exists and is not a directory")
    args.report.mkdir(parents=True, exist_ok=True)
    # The report merges the per-process runs; a previous bench's records must not leak into this one.
    (args.report / JSON_NAME).unlink(missing_ok=True)

    groups = [",".join(backends)] if args.same_process else backends
    failed = False
    with tempfile.TemporaryDirectory(prefix="edgefit-bench-") as tmp:
        suite = write_suite(Path(tmp))
        for group in groups:
            cmd = pytest_args(args, group, suite)
            print(f"edgefit bench: {args.model} on {args.target}: {group}", flush=True)
            # Each backend in its own process: runtimes' idle threads (ORT spins) never slow the others.
            rc = subprocess.run(
                [sys.executable, "-m", "pytest", *_board_only(cmd, group)], check=False
            ).returncode
            if rc not in (0, 1):  # 1: tests ran and some failed (a threshold); anything else is broken
                raise UserError(
                    f"the benchmark run for {group} did not complete (pytest exit {rc}); see above"
                )
            failed |= rc == 1
    md = args.report / MD_NAME
    if md.is_file():
        print(md.read_text())
    print(f"edgefit bench: report in {args.report}/ ({JSON_NAME}, {MD_NAME}, PNG plots)")
    return 1 if failed else 0


def _board_only(cmd: list[str], group: str) -> list[str]:
    """Pass --edgefit-board only to the process that runs the board backend."""
    if "board" in group.split(",") or "--edgefit-board" not in cmd:
        return cmd
    i = cmd.index("--edgefit-board")
    return cmd[:i] + cmd[i + 2 :]
