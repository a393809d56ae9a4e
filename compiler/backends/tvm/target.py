"""edgefit targets -> TVM 0.27 target dicts and the toolchain each needs (string targets are rejected)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from edgefit.errors import UserError
from edgefit.targets import Target

CROSS_CXX = "aarch64-linux-gnu-g++"


def host_cpu() -> str:
    """The host CPU name for LLVM; `mcpu: native` would silently fall back to a generic CPU."""
    import tvm

    return str(tvm.target.codegen.llvm_get_system_cpu())


def is_host(target: Target) -> bool:
    import platform

    return target.arch == platform.machine() and not target.cuda_arch


def target_dict(target: Target) -> dict[str, Any]:
    if target.cuda_arch:
        return {"kind": "cuda", "arch": target.cuda_arch, "host": _llvm(target)}
    return _llvm(target)


def _llvm(target: Target) -> dict[str, Any]:
    if target.arch == "x86_64":
        if is_host(target):
            return {"kind": "llvm", "mcpu": host_cpu()}
        return {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": target.mcpu}
    if target.arch == "aarch64":
        return {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": target.mcpu, "mattr": ["+neon"]}
    raise UserError(f"TVM backend: no LLVM target for architecture {target.arch!r} (target {target.name})")


def export_compiler(target: Target) -> Callable | None:
    """The `fcompile` for export_library: None (the host's compiler) or a cross compiler; a missing
    toolchain is a UserError that names what to install."""
    import platform

    import tvm.support.cc

    if target.arch == platform.machine():
        return None
    if target.arch != "aarch64":
        raise UserError(f"TVM backend: cannot cross-compile for {target.arch} from {platform.machine()}")
    if shutil.which(CROSS_CXX) is None:
        raise UserError(
            f"TVM backend: cross compiler {CROSS_CXX} not found; install the Debian package "
            f"g++-aarch64-linux-gnu to build for {target.name}"
        )
    return tvm.support.cc.cross_compiler(CROSS_CXX)


def check_cuda(target: Target) -> None:
    """CUDA code generation needs TVM built with CUDA and nvcc for the device code."""
    import tvm

    if str(tvm.support.libinfo().get("USE_CUDA", "OFF")).upper() in ("OFF", "FALSE", "0", ""):
        raise UserError(f"TVM backend: this TVM build has no CUDA support, cannot build for {target.name}")
    if shutil.which("nvcc") is None:
        raise UserError(
            f"TVM backend: nvcc (CUDA toolkit {target.cuda_toolkit or ''}) not found on PATH; "
            f"it compiles the GPU kernels for {target.name} ({target.cuda_arch})"
        )
