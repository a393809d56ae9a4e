"""Compile a model for the harness, or reuse the cached bundle compiled earlier with the same options."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from edgefit.runtime.bundle import MANIFEST, Bundle
from edgefit.runtime.harness import compressions

#: The artifact each harness backend runs. torch and onnxruntime run the PyTorch module itself; they take
#: the native bundle only for its input/output names and reference inputs.
ARTIFACT_BACKEND = {
    "native": "native",
    "tvm": "tvm",
    "tflite": "tflite",
    "board": "native",
    "torch": "native",
    "onnxruntime": "native",
}
FINGERPRINT = "harness-build.json"


def default_cache() -> Path:
    from edgefit.runtime.board.paths import cache_dir

    return cache_dir() / "harness" / "bundles"


def _key(model: str, target: str, backend: str, compression: str, epochs: int, weights: str | None) -> dict:
    import edgefit

    cfg = compressions.config(compression, epochs)
    return {
        "edgefit": edgefit.__version__,
        "model": model,
        "weights": str(Path(weights).resolve()) if weights else None,
        "target": target,
        "backend": backend,
        "compression": asdict(cfg),
    }


def compiled_bundle(
    model: str,
    target: str,
    backend: str,
    compression: str,
    *,
    finetune_epochs: int = 15,
    weights: str | None = None,
    cache: Path | None = None,
    rebuild: bool = False,
) -> Bundle:
    """The bundle of `model` compressed as `compression` for `target`/`backend`, compiled once and cached
    under a directory named by a hash of every option (a changed option never reuses a stale bundle)."""
    from edgefit.compiler.pipeline import CompileOptions, compile_model

    # Fine-tuning needs data; only digits_cnn has it built in, others compress one-shot.
    epochs = finetune_epochs if model == "digits_cnn" else 0
    key = _key(model, target, backend, compression, epochs, weights)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    safe_model = Path(model).stem.replace(":", "_")
    out = (cache or default_cache()) / f"{safe_model}-{target}-{backend}-{compression}-{digest}"
    stamp = out.parent / f"{out.name}.{FINGERPRINT}"
    if not rebuild and (out / MANIFEST).is_file() and stamp.is_file():
        return Bundle.load(out)
    compile_model(
        CompileOptions(
            model=model,
            target=target,
            out=out,
            backend=backend,
            weights=weights,
            compression=compressions.config(compression, epochs),
            progress=False,
        )
    )
    # The stamp is written after the bundle is in place: a compile killed midway is never reused.
    tmp = stamp.with_name(stamp.name + ".tmp")
    tmp.write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")
    tmp.replace(stamp)
    return Bundle.load(out)
