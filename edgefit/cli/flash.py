"""`edgefit flash BUNDLE --board USER@HOST[:PORT]`: atomic, verified deploy over SSH; `--rollback`."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flash", help="deploy a compiled bundle to a board over SSH (or roll back)")
    p.add_argument("bundle", nargs="?", help="compiled bundle directory (edgefit compile -o OUT)")
    p.add_argument("--board", help="USER@HOST[:PORT]")
    p.add_argument("--boards", metavar="FILE", help="boards inventory (TOML with [boards.NAME] tables)")
    p.add_argument("--name", help="board name in the --boards inventory")
    p.add_argument("--identity", "-i", help="SSH private key for the board")
    p.add_argument(
        "--accept-new", action="store_true", help="trust the host key of a board never seen before"
    )
    p.add_argument(
        "--force", action="store_true", help="flash even if the board does not match the bundle's target"
    )
    p.add_argument("--rollback", action="store_true", help="make the previous version current again")
    p.add_argument("--limit-kbps", type=float, help="cap the upload bandwidth (KiB/s)")
    p.add_argument(
        "--no-runtime", action="store_true", help="upload the bundle without the cross-built runtime"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=drive)


def drive(args: argparse.Namespace) -> int:
    from edgefit.errors import UserError
    from edgefit.runtime.deploy import boards, flash

    conn, entry = boards.resolve(args.board, args.boards, args.name, args.identity, args.accept_new)
    if args.rollback:
        if args.bundle:
            raise UserError("--rollback takes no bundle")
        result = flash.rollback(conn)
        print(
            json.dumps(result) if args.json else f"rolled back {conn.address}: current -> {result['current']}"
        )
        return 0
    if not args.bundle:
        raise UserError("which bundle? edgefit flash OUT/ --board USER@HOST")
    if args.limit_kbps is not None and args.limit_kbps <= 0:
        raise UserError("--limit-kbps must be positive")
    log = (lambda s: None) if args.json else (lambda s: print(s, file=sys.stderr))
    res = flash.flash(
        args.bundle, conn, force=args.force, expected_target=entry.target if entry else None,
        limit_kbps=args.limit_kbps, with_runtime=not args.no_runtime, log=log,
    )  # fmt: skip
    if args.json:
        print(json.dumps(vars(res), indent=2, default=str))
        return 0
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    smoke = res.smoke
    print(
        f"flashed {res.board}: current -> versions/{res.version} ({res.bytes_sent / 1024:.0f} KiB, "
        f"{res.seconds.get('total', 0):.1f} s); smoke test on the board: {smoke.get('engine')} "
        f"max relative error {smoke.get('max_error', 0):.2e} <= {smoke.get('tolerance', 0):.0e}"
    )
    if res.previous:
        print(f"previous version kept: {res.previous} (edgefit flash --rollback --board {res.board})")
    return 0
