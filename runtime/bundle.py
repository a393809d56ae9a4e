"""The compiled bundle: what `edgefit compile` writes and `run`, `flash` and the harness read.

Layout of a bundle directory (see docs/bundle.md):

    OUT/
      manifest.json            format, target, backend, artifacts, I/O specs, compression, checksums
      model.efm                (or model.tflite, model.so, head.efm + tail.efm for split models)
      reference_inputs.npz     inputs the reference was run on (keys = graph input names)
      reference_outputs.npz    the PyTorch reference's outputs (keys = graph output names)

A bundle is written into a temporary sibling directory and renamed into place at the end, so a
failed compile never leaves a half-written OUT/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefit.errors import UserError

FORMAT = "edgefit-bundle"
VERSION = 1
MANIFEST = "manifest.json"
REFERENCE_INPUTS = "reference_inputs.npz"
REFERENCE_OUTPUTS = "reference_outputs.npz"


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A bundle directory on disk with its parsed manifest."""

    path: Path
    manifest: dict[str, Any]

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Bundle:
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise UserError(f"{path} is not a compiled bundle (no {MANIFEST}); run 'edgefit compile' first")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{manifest_path}: unreadable manifest ({exc})") from None
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise UserError(f"{manifest_path}: not an edgefit bundle manifest of version {VERSION}")
        return Bundle(path, manifest)

    @property
    def backend(self) -> str:
        return self.manifest["backend"]

    @property
    def target(self) -> str:
        return self.manifest["target"]

    def artifact(self, role: str = "model") -> Path:
        """Path of the artifact with this role ("model", or "head"/"tail" for split models)."""
        artifacts = self.manifest["artifacts"]
        if role not in artifacts:
            raise UserError(f"bundle {self.path} has no {role!r} artifact (it has: {', '.join(artifacts)})")
        return self.path / artifacts[role]

    def reference_inputs(self) -> dict[str, np.ndarray]:
        with np.load(self.path / REFERENCE_INPUTS) as data:
            return {k: data[k] for k in data.files}

    def reference_outputs(self) -> dict[str, np.ndarray]:
        with np.load(self.path / REFERENCE_OUTPUTS) as data:
            return {k: data[k] for k in data.files}

    def verify_checksums(self) -> list[str]:
        """Names of files whose sha256 differs from the manifest (empty when all match)."""
        bad = []
        for name, digest in self.manifest.get("checksums", {}).items():
            file = self.path / name
            if not file.is_file() or sha256_file(file) != digest:
                bad.append(name)
        return bad


@contextmanager
def staging_dir(out: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside `out`; on success it replaces `out` atomically
    (as far as the file system allows: the old bundle is moved aside, then removed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists (pass --force to replace it)")
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not an edgefit bundle; refusing to replace it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    mask = os.umask(0)
    os.umask(mask)
    tmp.chmod(0o777 & ~mask)  # mkdtemp makes 0700; the bundle is an ordinary directory
    try:
        yield tmp
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Complete the manifest (format, version, checksums of every other file) and write it."""
    manifest = dict(manifest)
    manifest["format"] = FORMAT
    manifest["version"] = VERSION
    manifest["checksums"] = {
        p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
