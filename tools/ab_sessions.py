"""In-process A/B of two builds of the same bundle: session A made with an environment variable
unset (or set to --a-value), session B with it set to --b-value, then their runs alternate, each
timed right after an untimed one, with a pause between runs so the idle session's pool stops
spinning. The paired ratio B/A cancels this shared machine's drift far better than timing two
processes one after the other: a 300-pair run resolves about 0.5 %.

Only variables read when a Session is built (the executor's prepare step) can differ between the
two sessions; a kernel's `static` getenv would be read once per process. Toggles are temporary:
add one, measure, remove it before committing.

    python tools/ab_sessions.py BUNDLE_DIR VAR --threads 2 --pairs 300 [--b-value 1]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("var", help="environment variable the change reads when a Session is built")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--a-value", default=None, help="value for session A (default: unset)")
    ap.add_argument("--b-value", default="1")
    ap.add_argument("--show", type=int, default=8, help="nodes listed at each end of the change")
    args = ap.parse_args()

    from edgefit.runtime import Session

    def build(value: str | None) -> Session:
        os.environ.pop(args.var, None)
        if value is not None:
            os.environ[args.var] = value
        try:
            return Session(str(args.bundle / "model.efm"), threads=args.threads)
        finally:
            os.environ.pop(args.var, None)

    sessions = {"A": build(args.a_value), "B": build(args.b_value)}
    with np.load(args.bundle / "reference_inputs.npz") as data:
        feeds = {k: data[k] for k in data.files}
    totals: dict[str, list[float]] = {"A": [], "B": []}
    nodes: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    for i in range(args.pairs):
        for name in ("A", "B") if i % 2 == 0 else ("B", "A"):
            s = sessions[name]
            time.sleep(0.0005)  # the other session's workers stop spinning
            s.run(feeds)
            t0 = time.perf_counter()
            s.run(feeds)
            totals[name].append(time.perf_counter() - t0)
            for d in s.profile():
                nodes[name].setdefault(d["name"], []).append(d["us"])
    ratio = np.array(totals["B"]) / np.array(totals["A"])
    print(
        f"A {np.median(totals['A']) * 1e3:.3f} ms  B {np.median(totals['B']) * 1e3:.3f} ms  "
        f"B/A paired median {np.median(ratio):.4f} (quartiles {np.percentile(ratio, 25):.3f}-"
        f"{np.percentile(ratio, 75):.3f})"
    )
    diffs = sorted(
        (float(np.median(nodes["B"][k]) - np.median(nodes["A"][k])), k) for k in nodes["A"] if k in nodes["B"]
    )
    shown = diffs if 2 * args.show >= len(diffs) else diffs[: args.show] + diffs[len(diffs) - args.show :]
    for delta, k in shown:
        print(
            f"  {k:40s} A {np.median(nodes['A'][k]):8.1f} us  B {np.median(nodes['B'][k]):8.1f} us  {delta:+7.1f}"
        )


if __name__ == "__main__":
    main()
