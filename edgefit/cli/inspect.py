"""`edgefit inspect OUT/|model.efm`: print an artifact's graph, weights and the bundle manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="print a compiled bundle or .efm artifact")
    p.add_argument("path", type=Path, help="a bundle directory or a .efm file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=drive)


def drive(args: argparse.Namespace) -> int:
    from edgefit.compiler.artifact import read_artifact
    from edgefit.compiler.ir import format_graph
    from edgefit.compiler.report import format_summary, summarize
    from edgefit.errors import UserError
    from edgefit.runtime.bundle import Bundle

    path: Path = args.path
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    manifest = None
    if path.is_dir():
        bundle = Bundle.load(path)
        manifest = bundle.manifest
        files = [bundle.path / f for f in manifest["artifacts"].values()]
        bad = bundle.verify_checksums()
        if bad:
            raise UserError(f"{path}: checksum mismatch for {', '.join(bad)} (the bundle is corrupt)")
    else:
        files = [path]
    efms = [f for f in files if f.suffix == ".efm"]
    graphs = {f.name: read_artifact(f) for f in efms}
    if args.json:
        out = {"manifest": manifest, "artifacts": {n: summarize(g) for n, g in graphs.items()}}
        print(json.dumps(out, indent=2, default=str))
        return 0
    if manifest:
        print(
            f"bundle {path}: model {manifest['model']}, target {manifest['target']}, backend {manifest['backend']}"
        )
        for f in files:
            print(f"  {f.name}: {f.stat().st_size} bytes")
    for name, graph in graphs.items():
        print(f"\n== {name} ==")
        print(format_graph(graph))
        print()
        print(format_summary(summarize(graph)))
    return 0
