"""The board-side runner's protocol, checked on this machine (no qemu, no SSH): a version
directory exactly as flash uploads it, run with the host's python3 + numpy only."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgefit.runtime.bundle import Bundle
from edgefit.runtime.deploy import flash
from edgefit.runtime.deploy.remote import REPORT_KEY


def _materialize(bundle: Path, dest: Path) -> Path:
    for f in flash.upload_set(Bundle.load(bundle), []):
        target = dest / f.arcname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.read())
    return dest


def test_version_dir_checksums_smoke_and_npz_protocol(
    bundle_factory: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = bundle_factory(seed=31)
    version = _materialize(bundle, tmp_path / "v")
    check = subprocess.run(["sha256sum", "--quiet", "-c", flash.CHECKSUMS], cwd=version, capture_output=True)
    assert check.returncode == 0, check.stdout
    # -S skips site-packages' .pth files, so edgefit's editable-install hook is not loaded: the runner
    # must find edgefit's modules in the pylib/ flash uploaded (numpy comes through PYTHONPATH).
    env_py = [sys.executable, "-S"]
    env = {"PYTHONPATH": str(Path(np.__file__).parent.parent), "PATH": os.environ.get("PATH", "")}
    smoke = subprocess.run(
        [*env_py, str(version / "board_run.py"), "--smoke"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert smoke.returncode == 0, smoke.stderr
    report = json.loads(smoke.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["engine"] == "numpy-reference"

    x = np.ones((1, 64), np.float32)
    buf = io.BytesIO()
    np.savez(buf, x=x)
    run = subprocess.run(
        [*env_py, str(version / "board_run.py"), "--inputs", "-", "--npz-out", "-"], input=buf.getvalue(),
        capture_output=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    with np.load(io.BytesIO(run.stdout)) as npz:
        out = {k: npz[k] for k in npz.files}
    assert json.loads(out.pop(REPORT_KEY).tobytes())["engine"] == "numpy-reference"
    from edgefit.compiler import reference
    from edgefit.compiler.artifact import read_artifact

    np.testing.assert_allclose(
        out["y"], reference.run(read_artifact(bundle / "model.efm"), {"x": x})["y"], rtol=1e-6
    )
