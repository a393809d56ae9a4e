"""`edgefit` entry point: finds the subcommand modules in this package and dispatches.

Each module `edgefit/cli/<name>.py` (not starting with `_`, other than this one) defines
`register(subparsers) -> None`, which adds its parser and sets `func=drive`. Heavy imports
(torch, the native runtime) happen inside the drive functions so `edgefit --help` stays fast.
A UserError, or any error type listed in `USER_ERRORS`, becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import edgefit
import edgefit.cli
from edgefit.errors import UserError


def _user_errors() -> tuple[type[BaseException], ...]:
    from edgefit.compiler.artifact import ArtifactError

    return (UserError, ArtifactError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgefit", description="Compress PyTorch models and compile them for edge boards."
    )
    parser.add_argument("--version", action="version", version=f"edgefit {edgefit.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(edgefit.cli.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"edgefit.cli.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        print(f"edgefit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgefit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
