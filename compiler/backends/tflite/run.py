"""`run_tflite`: run a .tflite file with LiteRT (XNNPACK on), taking and returning NCHW arrays by IR name."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from edgefit.compiler.backends.tflite.layout import to_nchw, to_nhwc
from edgefit.errors import UserError


def load(path: str | os.PathLike, threads: int = 1):
    """A LiteRT interpreter with tensors allocated (XNNPACK delegate applied by default)."""
    from ai_edge_litert.interpreter import Interpreter

    if not os.path.isfile(path):
        raise UserError(f"no TFLite model at {path}")
    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    return interp


def set_inputs(interp, inputs: Mapping[str, np.ndarray]) -> None:
    """Copies NCHW `inputs` into the interpreter's NHWC input tensors."""
    for d in interp.get_input_details():
        if d["name"] not in inputs:
            raise UserError(
                f"missing input {d['name']!r} (model inputs: "
                f"{', '.join(x['name'] for x in interp.get_input_details())})"
            )
        x = to_nhwc(np.asarray(inputs[d["name"]]))
        if tuple(x.shape) != tuple(d["shape"]):
            raise UserError(
                f"input {d['name']!r}: expected NCHW shape matching NHWC {tuple(d['shape'])}, "
                f"got {tuple(inputs[d['name']].shape)}"
            )
        interp.set_tensor(d["index"], x.astype(d["dtype"], copy=False))


def outputs(interp) -> dict[str, np.ndarray]:
    """The interpreter's outputs, NCHW, by IR name."""
    return {d["name"]: to_nchw(interp.get_tensor(d["index"])) for d in interp.get_output_details()}


def invoke(interp, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    set_inputs(interp, inputs)
    interp.invoke()
    return outputs(interp)


def run_tflite(
    path: str | os.PathLike, inputs: Mapping[str, np.ndarray], threads: int = 1
) -> dict[str, np.ndarray]:
    """Outputs of the model at `path` for NCHW `inputs` (keyed by the IR's input names)."""
    return invoke(load(path, threads), inputs)
