"""Accuracy validation: a compiled model's outputs vs the PyTorch reference's on a labelled dataset
(top-1 of both, drop in points, agreement, output errors, cosine similarity) and the threshold checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefit.errors import UserError


@dataclass(frozen=True)
class Samples:
    """Model inputs (each with the batch-1 shape the bundle was compiled for) and their labels, if any."""

    name: str
    inputs: list[np.ndarray]
    labels: np.ndarray | None


def load_samples(
    model: str, input_shape: list[int], dataset: str | None = None, limit: int | None = None
) -> Samples:
    """digits (built in), an image folder PATH, or "random" (seeded inputs, no labels: fidelity only).

    The default is the digits test split for digits_cnn and random inputs for other models, since no other
    labelled data is available offline."""
    spec = dataset or ("digits" if model == "digits_cnn" else "random")
    if spec == "random":
        rng = np.random.default_rng(0)
        n = limit or 16
        xs = [rng.standard_normal(input_shape).astype(np.float32) for _ in range(n)]
        return Samples(f"random normal inputs (n={n}, no labels)", xs, None)
    if spec == "digits":
        from edgefit.models import datasets

        data: Any = datasets.digits("test")
        name = "digits/test"
    else:
        from edgefit.models import datasets

        if not Path(spec).is_dir():
            raise UserError(f"--edgefit-dataset {spec!r}: not 'digits', 'random' or an image folder")
        data = datasets.image_folder(spec, image_size=int(input_shape[-1]))
        name = f"image folder {spec}"
    return samples_from_dataset(data, name, limit)


def samples_from_dataset(data: Any, name: str, limit: int | None = None) -> Samples:
    """Any torch Dataset of (input tensor, integer label) pairs."""
    n = len(data) if limit is None else min(limit, len(data))
    if n == 0:
        raise UserError(f"dataset {name} is empty")
    xs, ys = [], []
    for i in range(n):
        x, y = data[i]
        xs.append(np.asarray(x, dtype=np.float32)[None])
        ys.append(int(y))
    return Samples(f"{name} (n={n})", xs, np.asarray(ys, dtype=np.int64))


def reference_outputs(module: Any, samples: Samples, batch: int = 64) -> np.ndarray:
    """The PyTorch module's logits for every sample, stacked [N, classes]. Batched: one call per sample
    crawls (140 ms each) once another runtime's thread pool (TVM's) is alive in the process."""
    import torch

    outs = []
    with torch.inference_mode():
        for i in range(0, len(samples.inputs), batch):
            x = torch.from_numpy(np.concatenate(samples.inputs[i : i + batch]))
            outs.append(module(x).numpy().reshape(x.shape[0], -1))
    return np.concatenate(outs)


@dataclass(frozen=True)
class AccuracyReport:
    dataset: str
    samples: int
    reference_accuracy: float | None  # % top-1 of the uncompressed PyTorch model (None without labels)
    accuracy: float | None  # % top-1 of the model under test
    drop: float | None  # points: reference_accuracy - accuracy
    agreement: float  # % of samples whose top-1 class equals the reference's
    max_abs_error: float  # vs the uncompressed reference's outputs
    mean_abs_error: float
    cosine_mean: float
    cosine_min: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-30)


def compare(outputs: np.ndarray, reference: np.ndarray, samples: Samples) -> AccuracyReport:
    """Metrics of `outputs` [N, classes] against the reference's [N, classes] on the same samples."""
    outputs, reference = outputs.astype(np.float64), reference.astype(np.float64)
    if outputs.shape != reference.shape:
        raise UserError(
            f"outputs of shape {outputs.shape} cannot be compared with the reference's {reference.shape}"
        )
    top, ref_top = outputs.argmax(1), reference.argmax(1)
    err = np.abs(outputs - reference)
    cos = _cosine(outputs, reference)
    acc = ref_acc = drop = None
    if samples.labels is not None:
        acc = 100.0 * float((top == samples.labels).mean())
        ref_acc = 100.0 * float((ref_top == samples.labels).mean())
        drop = ref_acc - acc
    return AccuracyReport(
        dataset=samples.name,
        samples=len(samples.inputs),
        reference_accuracy=ref_acc,
        accuracy=acc,
        drop=drop,
        agreement=100.0 * float((top == ref_top).mean()),
        max_abs_error=float(err.max()),
        mean_abs_error=float(err.mean()),
        cosine_mean=float(cos.mean()),
        cosine_min=float(cos.min()),
    )


def run_outputs(runner: Any, samples: Samples, input_name: str, output_name: str) -> np.ndarray:
    """The runner's outputs for every sample, stacked [N, classes]."""
    outs = runner.run_many([{input_name: x} for x in samples.inputs])
    return np.concatenate([np.asarray(o[output_name]).reshape(1, -1) for o in outs])


def threshold_failures(
    report: AccuracyReport, label: str, max_drop: float | None, min_agreement: float | None = None
) -> list[str]:
    """One message per violated threshold, saying by how much (empty when all hold)."""
    failures = []
    if max_drop is not None and report.drop is not None and report.drop > max_drop:
        failures.append(
            f"{label}: accuracy drop {report.drop:.2f} points exceeds the limit of {max_drop:.2f} by "
            f"{report.drop - max_drop:.2f} points (reference {report.reference_accuracy:.2f} %, "
            f"compiled {report.accuracy:.2f} % on {report.dataset})"
        )
    if min_agreement is not None and report.agreement < min_agreement:
        failures.append(
            f"{label}: top-1 agreement with the reference {report.agreement:.2f} % is below the limit of "
            f"{min_agreement:.2f} % by {min_agreement - report.agreement:.2f} points ({report.dataset})"
        )
    return failures
