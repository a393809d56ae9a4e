"""Times one runtime on one bundle in a process of its own (DESIGN.md: runtimes sharing a process slow
each other) and prints one JSON line: median / min ms, the engine, resident bytes the model added."""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()

    import numpy as np

    from edgefit.runtime.bundle import Bundle
    from edgefit.runtime.harness.runners import MODULE_BACKENDS, load_reference_module, make_host_runner

    bundle = Bundle.load(args.bundle)
    module = load_reference_module(args.model) if args.backend in MODULE_BACKENDS else None
    feeds = bundle.reference_inputs()
    before = _rss_bytes()
    runner = make_host_runner(args.backend, bundle, module, args.threads)
    out = runner.run(feeds)  # warm-up; also allocates the activations
    loaded = _rss_bytes() - before
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        runner.run(feeds)
        times.append(time.perf_counter() - t0)
    ref = bundle.reference_outputs()
    err = max(float(np.max(np.abs(out[k] - ref[k])) / max(float(np.max(np.abs(ref[k]))), 1e-12)) for k in ref)
    print(
        json.dumps(
            {
                "backend": args.backend,
                "engine": runner.engine,
                "median_ms": statistics.median(times) * 1e3,
                "min_ms": min(times) * 1e3,
                "rss_added_bytes": loaded,
                "model_file_bytes": runner.size_bytes,
                "rel_err": err,
            }
        )
    )
    runner.close()


if __name__ == "__main__":
    main()
