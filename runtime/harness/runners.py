"""One runner per backend (torch, native, tvm, tflite, onnxruntime; the board's is in board.py), all with
the same call: NCHW inputs by graph input name -> outputs by graph output name."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgefit.errors import UserError
from edgefit.runtime.bundle import Bundle

HOST_BACKENDS = ("native", "tvm", "tflite", "onnxruntime", "torch")
BACKENDS = (*HOST_BACKENDS, "board")
#: Backends that run the PyTorch module rather than a compiled artifact: compression does not reach them.
MODULE_BACKENDS = ("torch", "onnxruntime")

Feeds = Mapping[str, np.ndarray]


def parse_backends(text: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise UserError(
            f"unknown backend(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(BACKENDS)}"
        )
    return names


class Runner:
    """A loaded model on one backend. `calls` counts inferences (the energy window divides by it)."""

    backend: str = ""
    engine: str = ""  # what actually runs, for reports
    size_bytes: int = 0  # bytes of the model file this backend loads
    measured_on: str = "host"

    def __init__(self) -> None:
        self.calls = 0

    def run(self, inputs: Feeds) -> dict[str, np.ndarray]:
        self.calls += 1
        return self._run(inputs)

    def _run(self, inputs: Feeds) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def staged(self, inputs: Feeds) -> Callable[[], object]:
        """One inference on `inputs` put once where and how the backend reads them: what a latency
        comparison times. A backend whose tensors are laid out otherwise (TFLite: NHWC) would else be
        billed for the caller's transpose (350 us of a 4.4 ms MobileNetV2 at 2 threads, here)."""
        return lambda: self.run(inputs)

    def run_many(self, batches: Sequence[Feeds]) -> list[dict[str, np.ndarray]]:
        """Outputs for many inputs (the board runner overrides this: one SSH round trip for all)."""
        return [self.run(b) for b in batches]

    def close(self) -> None:
        """Drop the loaded model (ORT's and TVM's thread pools go with it)."""


def _names(bundle: Bundle, kind: str) -> list[str]:
    return [spec["name"] for spec in bundle.manifest[kind]]


def _f32(inputs: Feeds) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}


class NativeRunner(Runner):
    backend = "native"

    def __init__(self, bundle: Bundle, threads: int = 1) -> None:
        super().__init__()
        from edgefit.runtime import Session

        path = bundle.artifact("model")
        self.session = Session(path, threads=threads)
        self.bound: Any = None  # the last staged() call's bound run (it keeps the session alive)
        self.engine = f"edgefit native ({self.session.isa}, {threads} thread{'s' * (threads > 1)})"
        self.size_bytes = path.stat().st_size

    def _run(self, inputs: Feeds) -> dict[str, np.ndarray]:
        return self.session.run(_f32(inputs))

    def staged(self, inputs: Feeds) -> Callable[[], object]:
        # Checked and outputs allocated once, as LiteRT's; its `.outputs` hold the staged calls' results.
        self.bound = bound = self.session.bind(_f32(inputs))

        def once() -> None:
            self.calls += 1
            bound()

        return once

    def close(self) -> None:
        self.session = self.bound = None  # type: ignore[assignment]


class TVMRunner(Runner):
    backend = "tvm"

    def __init__(self, bundle: Bundle, threads: int = 1) -> None:
        super().__init__()
        from edgefit.compiler.backends.tvm import run as tvm_run

        path = bundle.artifact("model")
        self._invoke = tvm_run.invoke
        self.vm = tvm_run.load(path, threads)
        self.engine = f"TVM Relax VM ({threads} thread{'s' * (threads > 1)})"
        self.size_bytes = path.stat().st_size

    def _run(self, inputs: Feeds) -> dict[str, np.ndarray]:
        return self._invoke(self.vm, inputs)

    def close(self) -> None:
        self.vm = None


class TFLiteRunner(Runner):
    backend = "tflite"

    def __init__(self, bundle: Bundle, threads: int = 1) -> None:
        super().__init__()
        from edgefit.compiler.backends.tflite import run as tfl_run

        path = bundle.artifact("model")
        self._tfl = tfl_run
        self.interp = tfl_run.load(path, threads)
        self.engine = f"LiteRT + XNNPACK ({threads} thread{'s' * (threads > 1)})"
        self.size_bytes = path.stat().st_size

    def _run(self, inputs: Feeds) -> dict[str, np.ndarray]:
        return self._tfl.invoke(self.interp, inputs)

    def staged(self, inputs: Feeds) -> Callable[[], object]:
        self._tfl.set_inputs(self.interp, inputs)

        def once() -> None:
            self.calls += 1
            self.interp.invoke()

        return once

    def close(self) -> None:
        self.interp = None


def _state_bytes(module: Any) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


class TorchRunner(Runner):
    """The uncompressed PyTorch module: the reference every other backend is compared with."""

    backend = "torch"

    def __init__(self, module: Any, bundle: Bundle, threads: int = 1) -> None:
        super().__init__()
        import torch

        self.torch = torch
        self.module = module.eval()
        self.inputs, self.outputs = _names(bundle, "inputs"), _names(bundle, "outputs")
        self.threads = threads
        self.engine = f"PyTorch {torch.__version__} eager ({threads} thread{'s' * (threads > 1)})"
        self.size_bytes = _state_bytes(module)

    def _run(self, inputs: Feeds) -> dict[str, np.ndarray]:
        torch = self.torch
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                out = self.module(*(torch.from_numpy(np.asarray(inputs[n])) for n in self.inputs))
        finally:
            torch.set_num_threads(previous)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {n: o.numpy() for n, o in zip(self.outputs, outs, strict=True)}


def export_onnx(
    module: Any, example: Sequence[np.ndarray], path: Path, inputs: list[str], outputs: list[str]
) -> Path:
    """The module as ONNX (TorchScript exporter: the dynamo one needs onnxscript), written atomically."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        # The TorchScript exporter warns that it is legacy; the dynamo one needs onnxscript (not installed).
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module.eval(),
                tuple(torch.from_numpy(np.asarray(x)) for x in example),
                tmp,
                input_names=inputs,
                output_names=outputs,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class ONNXRuntimeRunner(Runner):
    """The uncompressed PyTorch module exported to ONNX, run by ONNX Runtime (the peer to beat on dense)."""

    backend = "onnxruntime"

    def __init__(self, module: Any, bundle: Bundle, threads: int = 1, workdir: Path | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        self.inputs, self.outputs = _names(bundle, "inputs"), _names(bundle, "outputs")
        example = bundle.reference_inputs()
        # Without a caller's folder the exported file is ours alone: the session holds the model once
        # built, so the file goes at once (one left per run had filled /tmp with gigabytes).
        with tempfile.TemporaryDirectory(prefix="edgefit-onnx-") as scratch:
            path = export_onnx(
                module,
                [example[n] for n in self.inputs],
                (workdir or Path(scratch)) / "model.onnx",
                self.inputs,
                self.outputs,
            )
            self.size_bytes = path.stat().st_size
            self.session = self._session(ort, path, threads)
        self.engine = (
            f"ONNX Runtime {ort.__version__} CPU ({threads} thread{'s' * (threads > 1)}, no spinning)"
        )

    @staticmethod
    def _session(ort: Any, path: Path, threads: int) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # ORT's idle workers spin ~50 ms after each run and slow every other runtime in the process
        # (DESIGN.md measured LiteRT 3.4 -> 7.6 ms): never let them spin.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def _run(self, inputs: Feeds) -> dict[str, np.ndarray]:
        feeds = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.inputs}
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds), strict=True))

    def close(self) -> None:
        self.session = None


def make_host_runner(
    backend: str, bundle: Bundle, module: Any = None, threads: int = 1, workdir: Path | None = None
) -> Runner:
    """The runner for a host backend; `module` (the PyTorch reference) is needed by torch and onnxruntime."""
    if backend == "native":
        return NativeRunner(bundle, threads)
    if backend == "tvm":
        return TVMRunner(bundle, threads)
    if backend == "tflite":
        return TFLiteRunner(bundle, threads)
    if backend in MODULE_BACKENDS:
        if module is None:
            raise UserError(f"the {backend} runner needs the PyTorch module")
        if backend == "torch":
            return TorchRunner(module, bundle, threads)
        return ONNXRuntimeRunner(module, bundle, threads, workdir)
    raise UserError(f"{backend!r} is not a host backend; choose from {', '.join(HOST_BACKENDS)}")


def load_reference_module(model: str, weights: str | None = None) -> Any:
    """The uncompressed PyTorch module the harness compares against (digits_cnn: the trained teacher)."""
    if model == "digits_cnn" and weights is None:
        from edgefit.models.pretrained import digits_baseline

        return digits_baseline()
    from edgefit.models.loading import load_model

    module = load_model(model, weights).module
    if not hasattr(module, "parameters"):  # a saved torch.export program
        module = module.module()
    return module.eval()
