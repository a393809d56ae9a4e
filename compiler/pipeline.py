"""`edgefit compile` as a library call: load -> compress -> capture -> passes -> lower -> bundle.

One direction, no back and forth (DESIGN.md's data flow). The compiled graph is checked against
the PyTorch module it came from before anything is written, and the bundle is staged in a
temporary directory that replaces OUT/ only when everything succeeded.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgefit.compiler.compress.config import CompressionConfig, apply_compression
from edgefit.compiler.ir import Graph
from edgefit.errors import UserError

BACKENDS = ("native", "tvm", "tflite")
#: Largest error of the compiled graph vs PyTorch, relative to the output's scale, accepted at compile time.
COMPILE_TOLERANCE = 1e-4
#: Split bundles quantize the transmitted tensor to u8: head+tail match the (unquantized) PyTorch
#: reference within a few percent of output scale, with the same top-1, not within fp32 round-off.
SPLIT_TOLERANCE = 5e-2


@dataclass(frozen=True)
class CompileOptions:
    model: str
    target: str
    out: Path
    backend: str = "native"
    weights: str | None = None
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    split: bool = False  # emit head/tail artifacts at the bottleneck
    train_data: str | None = None  # "digits" (built in) or None
    print_ir_after: tuple[str, ...] = ()
    progress: bool = True
    tune_trials: int = 0
    tflite_codebook: str = "gather"  # "gather" (packed indices), "gather-u8" or "densify"
    force: bool = True
    checkpoint_dir: Path | None = None


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Max abs error divided by the expected output's scale (max abs value, at least 1e-12)."""
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-12)
    return float(np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max(initial=0.0)) / scale


def _train_set(opts: CompileOptions, model_name: str) -> Any:
    wanted = opts.train_data or ("digits" if model_name == "digits_cnn" else None)
    if wanted is None:
        return None
    if wanted != "digits":
        raise UserError(f"unknown --train-data {wanted!r}; built in: digits")
    from edgefit.models import datasets

    return datasets.digits("train")


def _reference_inputs(loaded: Any, train_set: Any) -> tuple[Any, ...]:
    """Real digits for the digits model (so top-1 means something), else the example inputs."""
    if train_set is not None:
        from edgefit.models import datasets

        images, _ = datasets.digits("test")[:1]
        return (images,)
    return tuple(loaded.example_inputs)


def _accuracy(reference: Any, compressed: Any, name: str) -> dict[str, float]:
    """Top-1 of the uncompressed and the compressed module on the digits test split, in %."""
    from edgefit.compiler.compress.training import evaluate_accuracy
    from edgefit.models import datasets

    test = datasets.digits("test")
    before = 100 * evaluate_accuracy(reference, test)
    after = 100 * evaluate_accuracy(compressed, test)
    return {
        "dataset": "digits/test",
        "reference": round(before, 2),
        "compressed": round(after, 2),
        "drop": round(before - after, 2),
    }


def _torch_outputs(module: Any, inputs: tuple[Any, ...]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        out = module(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.detach().cpu().numpy().astype(np.float32) for o in outs]


def _lower(
    graph: Graph, opts: CompileOptions, target: Any, directory: Path, stem: str, calibration: Any
) -> dict:
    """Write `graph` as the chosen backend's artifact; returns {"file": name, ...backend stats}."""
    if opts.backend == "native":
        from edgefit.compiler.artifact import write_artifact

        name = f"{stem}.efm"
        write_artifact(graph, directory / name)
        return {"file": name}
    if opts.backend == "tflite":
        from edgefit.compiler.backends.tflite import export_tflite

        name = f"{stem}.tflite"
        stats = export_tflite(
            graph,
            directory / name,
            int8_calibration=calibration if opts.compression.int8 else None,
            codebook=opts.tflite_codebook,
        )
        return {"file": name, **stats}
    from edgefit.compiler.backends.tvm import compile_tvm

    name = f"{stem}.so"
    stats = compile_tvm(graph, target, directory / name, tune_trials=opts.tune_trials, progress=opts.progress)
    return {"file": name, **stats}


def compile_model(opts: CompileOptions) -> dict[str, Any]:
    """Compile as `opts` says and write the bundle to `opts.out`; returns the summary."""
    from edgefit import targets

    # Validate everything the user typed before the slow imports and any training.
    if opts.backend not in BACKENDS:
        raise UserError(f"unknown backend {opts.backend!r}; choose one of {', '.join(BACKENDS)}")
    target = targets.load(opts.target)
    opts.compression.validate()

    from edgefit.compiler import reference
    from edgefit.compiler.frontend import capture
    from edgefit.compiler.passes import run_passes
    from edgefit.compiler.report import summarize
    from edgefit.models.loading import load_model
    from edgefit.runtime.bundle import REFERENCE_INPUTS, REFERENCE_OUTPUTS, staging_dir, write_manifest

    compression = opts.compression
    if opts.model == "bottlefit_resnet50" and compression.bottleneck:
        # The BottleFit zoo model is built with its bottleneck: C is an architecture choice there,
        # not a second bottleneck to insert.
        loaded = load_model(opts.model, opts.weights, channels=compression.bottleneck)
        compression = replace(compression, bottleneck=None)
    else:
        loaded = load_model(opts.model, opts.weights)
    module = loaded.module
    if not hasattr(module, "parameters"):  # a saved torch.export program
        module = module.module()
    if loaded.name == "digits_cnn" and opts.weights is None:
        from edgefit.models.pretrained import digits_baseline

        module = digits_baseline(progress=opts.progress)
    train_set = _train_set(opts, loaded.name)
    inputs = _reference_inputs(loaded, train_set)

    compressed = apply_compression(
        module,
        compression,
        example_input=inputs[0],
        train_set=train_set,
        split_after=compression.split_after or loaded.split_after,
        progress=opts.progress,
        checkpoint_dir=opts.checkpoint_dir,
    )
    accuracy = _accuracy(module, compressed.module, loaded.name) if train_set is not None else None
    if compressed.bottleneck_report is None and compressed.split_after and opts.split:
        # A model built with its bottleneck (BottleFit zoo model): report what it transmits too.
        from edgefit.compiler.compress.bottleneck import bottleneck_report

        compressed.bottleneck_report = bottleneck_report(compressed.module, inputs[0], compressed.split_after)
    if opts.split and compressed.split_after is None:
        raise UserError("--split needs a split point: pass --bottleneck C --split-after MODULE")
    split_after = compressed.split_after if (opts.split or opts.compression.bottleneck) else None
    graph = capture(compressed.module, inputs, compressed.plan, split_after=split_after, name=loaded.name)
    graph = run_passes(graph, print_ir_after=opts.print_ir_after, stream=sys.stdout)

    expected = _torch_outputs(compressed.module, inputs)
    np_inputs = {name: t.detach().cpu().numpy() for name, t in zip(graph.inputs, inputs, strict=True)}
    got = reference.run(graph, np_inputs)
    errors = [relative_error(got[name], exp) for name, exp in zip(graph.outputs, expected, strict=True)]
    if max(errors) > COMPILE_TOLERANCE:
        raise RuntimeError(
            f"internal error: the compiled graph differs from PyTorch by {max(errors):.2e} of output scale"
        )
    graph = graph.with_nodes(graph.nodes, meta={**graph.meta, "target": target.name})

    with staging_dir(opts.out, overwrite=opts.force) as tmp:
        artifacts: dict[str, str] = {}
        backend_stats: dict[str, Any] = {}
        if opts.split:
            from edgefit.compiler.passes import split_at_bottleneck

            head, tail = split_at_bottleneck(graph, calibration=np_inputs)
            for role, part in (("head", head), ("tail", tail)):
                lowered = _lower(part, opts, target, tmp, role, None)
                artifacts[role] = lowered.pop("file")
                backend_stats[role] = lowered
        else:
            lowered = _lower(graph, opts, target, tmp, "model", [np_inputs])
            artifacts["model"] = lowered.pop("file")
            backend_stats["model"] = lowered
        np.savez(tmp / REFERENCE_INPUTS, **np_inputs)
        np.savez(tmp / REFERENCE_OUTPUTS, **dict(zip(graph.outputs, expected, strict=True)))
        summary = summarize(graph)
        int8_activations = opts.backend == "tflite" and opts.compression.int8
        manifest = {
            "model": loaded.name,
            "target": target.name,
            "backend": opts.backend,
            "artifacts": artifacts,
            "inputs": [_spec(graph, n) for n in graph.inputs],
            "outputs": [_spec(graph, n) for n in graph.outputs],
            "compression": {k: v for k, v in summary.items() if k != "layers"},
            "options": {k: v for k, v in vars(opts.compression).items() if v not in (None, False)},
            "bottleneck": compressed.bottleneck_report,
            "accuracy": accuracy,
            "split": graph.meta.get("split") if opts.split else None,
            # A u8 bottleneck or TFLite's int8 activations quantize what the reference computes in fp32.
            "tolerance": {
                "relative": SPLIT_TOLERANCE if opts.split or int8_activations else COMPILE_TOLERANCE
            },
            "compile_error": max(errors),
            "notes": compressed.notes,
            "backend_stats": backend_stats,
        }
        write_manifest(tmp, manifest)
    return {**manifest, "out": str(opts.out), "layers": summary["layers"]}


def _spec(graph: Graph, name: str) -> dict[str, Any]:
    value = graph.values[name]
    return {"name": name, "shape": list(value.shape), "dtype": value.dtype}
