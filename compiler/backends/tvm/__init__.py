"""TVM backend: IR -> Relax (BlockBuilder) -> compiled module for x86-64, Pi (aarch64) or Jetson (CUDA)."""

from edgefit.compiler.backends.tvm.compile import compile_tvm
from edgefit.compiler.backends.tvm.run import run_tvm

__all__ = ["compile_tvm", "run_tvm"]
