"""`edgefit board up|down|status`: emulated boards (an aarch64 userland under qemu behind sshd)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("board", help="start, stop or list emulated boards (rpi4, rpi5, jetson-orin-nano...)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start an emulated board (builds its root once, cached)")
    up.add_argument("target", help="board target, e.g. rpi4")
    up.add_argument("--name", help="board name (default: the target); lets several boards of one target run")
    up.add_argument("--json", action="store_true", help="machine-readable output")
    down = actions.add_parser("down", help="stop an emulated board (every process it started)")
    down.add_argument("name", help="board name (the target unless --name was given to 'up')")
    status = actions.add_parser("status", help="list emulated boards")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=drive)


def drive(args: argparse.Namespace) -> int:
    from edgefit.runtime.board import lifecycle

    if args.action == "up":
        info = lifecycle.up(args.target, name=args.name)
        if args.json:
            print(json.dumps(info.as_json(), indent=2))
        else:
            print(f"board {info.name} ({info.target}) is up: --board {info.address}")
            print(f"  identity {info.identity}  (flash and run find it automatically)")
            print(f"  host key {info.known_hosts}  (first flash: --accept-new)")
        return 0
    if args.action == "down":
        pids = lifecycle.down(args.name)
        print(f"board {args.name}: " + (f"stopped ({len(pids)} processes)" if pids else "was not running"))
        return 0
    boards = lifecycle.all_boards()
    if args.json:
        print(json.dumps([b.as_json() for b in boards], indent=2))
        return 0
    if not boards:
        print("no emulated boards (start one with 'edgefit board up rpi4')")
    for b in boards:
        state = f"up   {b.address}  pid {b.pid}" if lifecycle.is_running(b) else "down"
        print(f"{b.name:<24}{b.target:<18}{state}")
    return 0
