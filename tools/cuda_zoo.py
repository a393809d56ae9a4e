"""Run compiled bundles on an NVIDIA GPU and check them: `Session(device="cuda")` against the
bundle's stored reference outputs (error relative to the output scale, top-1), then latency
against PyTorch running the same zoo model on the same GPU (cuDNN, fp32, batch 1), with the GPU's
board power from NVML while edgefit runs.

    python tools/cuda_zoo.py BUNDLE [BUNDLE ...] [--runs 300] [--json OUT.json]

Needs a runtime built with CUDA (`CMAKE_ARGS="-DEDGEFIT_CUDA=ON -DEDGEFIT_CUDA_ARCHS=90" pip
install .`) and a GPU; on a machine without one it says so and exits 2. Latencies are end to end
for both: the input copied from host memory, the outputs copied back (PyTorch's model also gets a
host tensor and returns one), so neither side is timed without its transfers. Rounds alternate
edgefit and PyTorch, so a clock or load change on the machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _check(bundle: Path, runs: int) -> dict:
    import torch

    from edgefit.cli.run import compare
    from edgefit.models import create
    from edgefit.runtime.bundle import Bundle
    from edgefit.runtime.harness.power.nvml import probe
    from edgefit.runtime.harness.power.sampler import PowerSampler, measure_idle
    from edgefit.runtime.session import Session

    b = Bundle.load(bundle)
    inputs = b.reference_inputs()
    gpu = Session(b.artifact("model"), device="cuda")
    # The same check as `edgefit run --compare-reference`: error relative to the output scale
    # (<= 1e-4) and top-1 agreement.
    matches, lines = compare(gpu.run(inputs), b.reference_outputs())

    model = create(b.manifest["model"]).eval().cuda()
    (x,) = inputs.values()  # zoo models take one image

    def torch_run() -> None:
        with torch.no_grad():
            model(torch.from_numpy(x).cuda()).cpu()

    for _ in range(20):  # warm-up: cuDNN picks its algorithms, edgefit's buffers are touched
        gpu.run(inputs)
        torch_run()
    edgefit_ms, torch_ms = [], []
    for _ in range(5):
        edgefit_ms.append(_median_ms(lambda: gpu.run(inputs), runs // 5))
        torch_ms.append(_median_ms(torch_run, runs // 5))

    meter, why = probe()
    power = {"unavailable": why}
    if meter is not None:
        idle_w = measure_idle(meter, 1.0)
        sampler = PowerSampler(meter, 0.01)
        n = 0
        with sampler:
            t_end = time.monotonic() + 2.0
            while time.monotonic() < t_end:
                gpu.run(inputs)
                n += 1
        power = sampler.report(n, idle_w).as_dict()
    return {
        "bundle": str(bundle),
        "model": b.manifest["model"],
        "isa": gpu.isa,
        "matches_reference": matches,
        "reference": lines,
        "edgefit_ms": statistics.median(edgefit_ms),
        "pytorch_ms": statistics.median(torch_ms),
        "edgefit_vs_pytorch": statistics.median(edgefit_ms) / statistics.median(torch_ms),
        "power": power,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundles", nargs="+", type=Path)
    p.add_argument("--runs", type=int, default=300, help="timed runs per side (default 300)")
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args(argv)

    from edgefit.errors import UserError

    results = []
    for bundle in args.bundles:
        try:
            r = _check(bundle, args.runs)
        except UserError as e:
            print(f"cuda_zoo: {bundle}: {e}", file=sys.stderr)
            return 2
        results.append(r)
        pw = r["power"]
        watts = (
            f"{pw['mean_w']:.1f} W mean (idle {pw['idle_w']:.1f} W), "
            f"{pw['energy_per_inference_j'] * 1e3:.2f} mJ/inference above idle"
            if "mean_w" in pw
            else f"power: {pw['unavailable']}"
        )
        print(
            f"{bundle.name}: {'; '.join(r['reference'])}; edgefit {r['edgefit_ms']:.3f} ms, PyTorch "
            f"{r['pytorch_ms']:.3f} ms ({r['edgefit_vs_pytorch']:.2f}x); {watts}"
        )
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2))
        tmp.replace(args.json)
    return 0 if all(r["matches_reference"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
