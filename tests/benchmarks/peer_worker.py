"""Serves one runtime on one bundle from a process of its own (DESIGN.md: runtimes sharing a process
slow each other), so that the benchmark can interleave every runtime in the same time windows.

Protocol (one line each way): on start it loads the model, runs it once and prints a JSON line
(engine, resident bytes the model added, model file bytes, max error vs the bundle's reference);
then each `block N` line on stdin runs an untimed warm-up (paired.warm_up: the previous runtime's
data fills the caches, and the scheduler may still place our threads badly) and N timed runs, and
prints their times in ms as a JSON list.
End of input ends the process."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--model", required=True, help="zoo name of the PyTorch reference (torch, onnxruntime)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import numpy as np

    from edgefit.runtime.bundle import Bundle
    from edgefit.runtime.harness.paired import warm_up
    from edgefit.runtime.harness.runners import MODULE_BACKENDS, load_reference_module, make_host_runner

    bundle = Bundle.load(args.bundle)
    module = load_reference_module(args.model) if args.backend in MODULE_BACKENDS else None
    feeds = bundle.reference_inputs()
    before = _rss_bytes()
    runner = make_host_runner(args.backend, bundle, module, args.threads)
    out = runner.run(feeds)  # also allocates the activations
    loaded = _rss_bytes() - before
    ref = bundle.reference_outputs()
    err = max(float(np.max(np.abs(out[k] - ref[k])) / max(float(np.max(np.abs(ref[k]))), 1e-12)) for k in ref)
    info = {
        "backend": args.backend,
        "engine": runner.engine,
        "rss_added_bytes": loaded,
        "model_file_bytes": runner.size_bytes,
        "rel_err": err,
    }
    print(json.dumps(info), flush=True)
    once = runner.staged(feeds)  # inputs put once in the backend's own layout: its transpose is not timed
    for line in sys.stdin:
        command, _, count = line.partition(" ")
        if command != "block":
            raise SystemExit(f"peer_worker: unknown command {line.strip()!r}")
        warm_up(once)
        times = []
        for _ in range(int(count)):
            t0 = time.perf_counter()
            once()
            times.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps(times), flush=True)
    runner.close()


if __name__ == "__main__":
    main()
