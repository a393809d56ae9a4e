"""`Session`: runs a native `.efm` artifact through edgefit's C++ runtime (the `_native` module).

A thin layer: it turns loader errors into `ArtifactError` (one clear line in the CLI) and a
missing build into a `UserError` that says how to build it; everything else is the C++ core.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefit.errors import UserError

if TYPE_CHECKING:
    from edgefit.runtime._native import BoundRun


def _native() -> Any:
    try:
        from edgefit.runtime import _native
    except ImportError as exc:  # pragma: no cover - only without a built extension
        raise UserError(
            f"the native runtime is not built ({exc}); run '.venv/bin/pip install --no-build-isolation -e .'"
        ) from None
    return _native


class InputError(UserError, ValueError):
    """Feeds that do not match the model's inputs (name, shape or dtype)."""


class Session:
    """One loaded model. `run` is thread-safe (calls on one session are serialised; use one
    session per thread for parallel requests); the GIL is released while the graph runs.

    `threads` is the size of the runtime's own thread pool; `isa` caps the kernels used
    ("scalar", "avx2", "avx512", "neon"; default: the best this CPU runs) so tests can compare
    every variant with the scalar reference. `device="cuda"` runs the graph on the GPU (builds
    with EDGEFIT_CUDA=ON): weights uploaded once, activations kept on the device, one stream."""

    def __init__(
        self, path: str | os.PathLike[str], threads: int = 1, isa: str | None = None, device: str = "cpu"
    ) -> None:
        from edgefit.compiler.artifact import ArtifactError

        native = _native()
        if device not in ("cpu", "cuda"):
            raise UserError(f"device must be 'cpu' or 'cuda', not {device!r}")
        if device == "cuda" and not getattr(native, "cuda", False):
            raise UserError(
                "this build of edgefit has no CUDA support: rebuild it on the board with "
                "CMAKE_ARGS=-DEDGEFIT_CUDA=ON pip install . (needs nvcc)"
            )
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such artifact")
        # Older extension builds take no `device` argument: pass it only when it is not the default.
        extra = {"device": device} if device != "cpu" else {}
        cuda_error = getattr(native, "CudaError", None)
        try:
            self._s = native.Session(os.fspath(path), int(threads), isa, **extra)
        except native.LoadError as exc:
            raise ArtifactError(str(exc)) from None
        except Exception as exc:
            if cuda_error is not None and isinstance(exc, cuda_error):
                raise UserError(str(exc)) from None  # no GPU / driver: a setup problem, not a bug
            raise
        self.path = os.fspath(path)
        self.device = device

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph on `feeds` (graph input name -> array); returns graph output name -> array.
        C-contiguous arrays of the input's dtype are read in place; outputs are new arrays."""
        try:
            return self._s.run(dict(feeds))
        except ValueError as exc:
            raise InputError(f"{self.path}: {exc}") from None

    def bind(self, feeds: Mapping[str, np.ndarray]) -> BoundRun:
        """Check `feeds` and allocate the outputs once, for a loop of inferences: each call of the
        returned object runs the graph on the input arrays' current contents (write the next frame
        into them in place) into the same output arrays (its `.outputs`, graph output name -> array).
        Nothing is checked, converted or allocated per call. The arrays must already be C-contiguous
        and of the input's dtype: a converted copy would not see the caller's later writes."""
        want = {spec["name"]: np.dtype(spec["dtype"]) for spec in self.inputs}
        for name, arr in feeds.items():
            if name not in want:
                continue  # the native check below names it
            if isinstance(arr, np.ndarray) and arr.dtype == want[name] and arr.flags.c_contiguous:
                continue
            what = (
                f"a {'' if arr.flags.c_contiguous else 'non-contiguous '}{arr.dtype} array"
                if isinstance(arr, np.ndarray)
                else f"a {type(arr).__name__}"
            )
            raise InputError(
                f"{self.path}: bind() reads input '{name}' in place, so it must be a C-contiguous "
                f"{want[name]} array, not {what}"
            )
        try:
            return self._s.bind(dict(feeds))
        except ValueError as exc:
            raise InputError(f"{self.path}: {exc}") from None

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """Graph inputs: [{"name", "shape", "dtype"}] in the artifact's order."""
        return self._s.inputs

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return self._s.outputs

    @property
    def nodes(self) -> list[dict[str, str]]:
        """Every node with the kernel the runtime chose for it: [{"name", "op", "kernel"}]. On AVX-512 CPUs the
        list is the graph as run: layout reorders the runtime inserted ("<value>:to_nchwc" / ":from_nchwc") are
        in it, and adds fused into the convolution before them are not (csrc/core/layout.h)."""
        return self._s.nodes

    def kernel_of(self, node: str) -> str:
        return self._s.kernel_of(node)

    def profile(self) -> list[dict[str, Any]]:
        """Per-node timings of the last run: [{"name", "op", "kernel", "us", "wait_us"}]. wait_us is the part of us
        the calling thread spent waiting for worker threads still busy with the node's tasks (zero with one thread):
        a node whose work split unevenly shows it there."""
        return self._s.profile()

    @property
    def peak_bytes(self) -> int:
        """Activation arena + scratch bytes (weights stay in the mmap'd file)."""
        return self._s.peak_bytes

    @property
    def threads(self) -> int:
        return self._s.threads

    @property
    def isa(self) -> str:
        return self._s.isa

    @property
    def meta(self) -> dict[str, str]:
        return self._s.meta


def kernels() -> list[dict[str, Any]]:
    """Every kernel variant in this build: [{"name", "family", "isa", "available"}]."""
    return _native().kernels()


def cpu() -> dict[str, Any]:
    """CPU features the kernel dispatch sees."""
    return _native().cpu()
