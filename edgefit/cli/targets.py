"""`edgefit targets [NAME] [--json]`: list the boards edgefit compiles for, or show one."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("targets", help="list board targets or show one")
    p.add_argument("name", nargs="?", help="a target name (e.g. rpi4)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=drive)


def drive(args: argparse.Namespace) -> int:
    from edgefit import targets

    if args.name:
        t = targets.load(args.name)
        if args.json:
            print(json.dumps(t.as_dict(), indent=2))
            return 0
        for key, value in t.as_dict().items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            elif isinstance(value, (list, tuple)):
                value = ", ".join(value)
            print(f"{key:>13}: {value}")
        return 0
    rows = targets.all_targets()
    if args.json:
        print(json.dumps([t.as_dict() for t in rows], indent=2))
        return 0
    print(f"{'target':<18}{'cpu':<14}{'isa':<20}{'cuda':<7}{'python':<8}description")
    for t in rows:
        print(
            f"{t.name:<18}{t.mcpu:<14}{','.join(t.isa):<20}{t.cuda_arch or '-':<7}{t.python:<8}{t.description}"
        )
    return 0
