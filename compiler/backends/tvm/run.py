"""`run_tvm`: load a host-built TVM module (and its I/O sidecar) and run it with the Relax VM."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgefit.errors import UserError


def io_path(path: str | os.PathLike) -> Path:
    """The JSON beside the module naming its inputs and outputs (the VM only knows positions)."""
    return Path(f"{path}.io.json")


def load(path: str | os.PathLike, threads: int = 1):
    import tvm
    from tvm import relax

    if not os.path.isfile(path) or not io_path(path).is_file():
        raise UserError(f"no TVM module at {path} (or its {io_path(path).name})")
    io = json.loads(io_path(path).read_text())
    if io["device"] != "cpu" or io["arch"] != platform.machine():
        where = io["arch"] if io["device"] == "cpu" else f"{io['arch']} + {io['device']}"
        raise UserError(
            f"{path} was built for {where} ({io['target_name']}); flash it to the board "
            f"('edgefit flash'), this {platform.machine()} host cannot run it"
        )
    # TVM's thread pool reads its size once; configure it before the first parallel kernel runs.
    tvm.get_global_func("runtime.config_threadpool")(0, int(threads))
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu())
    return vm, io


def invoke(vm_io, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tvm

    vm, io = vm_io
    args = []
    for spec in io["inputs"]:
        if spec["name"] not in inputs:
            raise UserError(
                f"missing input {spec['name']!r} (module inputs: "
                f"{', '.join(s['name'] for s in io['inputs'])})"
            )
        x = np.ascontiguousarray(inputs[spec["name"]], dtype=spec["dtype"])
        if list(x.shape) != spec["shape"]:
            raise UserError(f"input {spec['name']!r}: expected shape {tuple(spec['shape'])}, got {x.shape}")
        args.append(tvm.runtime.tensor(x))
    out = vm["main"](*args)
    outs = [out] if len(io["outputs"]) == 1 else list(out)
    return {name: o.numpy() for name, o in zip(io["outputs"], outs, strict=True)}


def run_tvm(
    path: str | os.PathLike, inputs: Mapping[str, np.ndarray], threads: int = 1
) -> dict[str, np.ndarray]:
    """Outputs (by IR name) of the host-built module at `path` for NCHW `inputs`."""
    return invoke(load(path, threads), inputs)
