"""`compile_tvm`: IR -> Relax -> legalized TIR -> default schedules (or MetaSchedule tuning) -> shared library.

Our pipeline is TVM's CPU/GPU default minus FoldConstant (which would decode codebook weights back to
dense constants at compile time); untuned TIR gets schedules (dlight rules plus `schedule.py`'s CPU
rule) because unscheduled TVM code is 25-100x slower than ONNX Runtime.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from edgefit.compiler.backends.tvm import target as tgt
from edgefit.compiler.backends.tvm import tuning
from edgefit.compiler.backends.tvm.build import DTYPES, build_module
from edgefit.compiler.backends.tvm.run import io_path
from edgefit.compiler.ir import Graph, verify
from edgefit.errors import UserError
from edgefit.targets import Target


def legalize(mod, target):
    import tvm
    from tvm import relax

    seq = tvm.transform.Sequential(
        [
            relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
        ]
    )
    with target:
        return seq(mod)


def default_schedules(mod, target):
    """dlight rules for GPUs (required: unscheduled TIR does not build for CUDA) and for CPUs our
    parallel + vectorized loop-nest rule, then dlight's GEMV/reduction rules where ours declines."""
    from tvm.s_tir import dlight as dl

    from edgefit.compiler.backends.tvm.schedule import CPULoopNest

    if target.kind.name == "cuda":
        rules = [
            dl.gpu.Matmul(),
            dl.gpu.GEMV(),
            dl.gpu.Reduction(),
            dl.gpu.GeneralReduction(),
            dl.gpu.Fallback(),
        ]
    else:
        rules = [CPULoopNest(), dl.cpu.GEMV(), dl.cpu.Reduction()]
    with target:
        return dl.ApplyDefaultSchedule(*rules)(mod)


def compile_tvm(
    graph: Graph,
    target: Target,
    path: str | os.PathLike,
    *,
    tune_trials: int = 0,
    tuning_db: Path | None = None,
    densify_codebooks: bool = False,
    progress: bool = True,
) -> dict:
    """Compile `graph` for `target` into the shared library `path` (+ `path.io.json` naming its I/O);
    `tune_trials` > 0 tunes with MetaSchedule, records in `tuning_db` (default: `tuning.default_db`).

    Host x86-64 builds run with `run_tvm`; Pi targets cross-compile with aarch64-linux-gnu-g++;
    Jetson targets build CUDA kernels for the board's arch with an aarch64 host side."""
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline

    if tune_trials < 0:
        raise UserError(f"tune_trials must be >= 0, got {tune_trials}")
    if tune_trials > 0 and tuning_db is None:
        tuning_db = tuning.default_db(target.name)
    if tune_trials > 0:
        tuning.check_host(tgt.is_host(target))  # before the slow steps
    verify(graph)
    if target.cuda_arch:
        tgt.check_cuda(target)
    fcompile = tgt.export_compiler(target)
    target_dict = tgt.target_dict(target)
    if tuning_db is not None:
        # MetaSchedule sizes its parallel loops by the target's core count and refuses targets without.
        target_dict = {**target_dict, "num-cores": tuning.physical_cores()}
    tvm_target = tvm.target.Target(target_dict)
    start = time.time()
    relax_mod, stats = build_module(graph, densify_codebooks)
    mod = legalize(relax_mod, tvm_target)
    if tuning_db is not None:
        mod = tuning.tune(
            mod, tvm_target, tune_trials, Path(tuning_db), host=tgt.is_host(target), progress=progress
        )
    mod = default_schedules(mod, tvm_target)
    finish = tvm.transform.Sequential(
        cpu_pipeline.dataflow_lower_passes(tvm_target) + cpu_pipeline.finalize_passes(tvm_target)
    )
    with tvm_target:
        exe = tvm.compile(mod, tvm_target, relax_pipeline=finish)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        exe.export_library(tmp, fcompile=fcompile) if fcompile else exe.export_library(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    io = {
        "target_name": target.name,
        "target": tgt.target_dict(target),
        "device": "cuda" if target.cuda_arch else "cpu",
        "arch": target.arch,
        "inputs": [
            {"name": n, "shape": list(graph.values[n].shape), "dtype": DTYPES[graph.values[n].dtype]}
            for n in graph.inputs
        ],
        "outputs": list(graph.outputs),
    }
    tmp_io = io_path(path).with_suffix(".tmp")
    tmp_io.write_text(json.dumps(io, indent=1))
    os.replace(tmp_io, io_path(path))
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "target": io["target"],
        "device": io["device"],
        "tune_trials": tune_trials,
        "compile_s": round(time.time() - start, 2),
        **stats,
    }
