"""TVM and TFLite bundles on the emulated Pi 4 through the CLI, as a user runs them: `edgefit compile
digits_cnn --target rpi4 --backend B`, `edgefit flash` (uploads the aarch64 apache-tvm / ai-edge-litert
wheels with the bundle; the board runs its smoke test), then `edgefit run --board --compare-reference`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgefit.cli.main import main
from edgefit.runtime.board.lifecycle import BoardInfo
from edgefit.runtime.bundle import Bundle

pytestmark = [pytest.mark.board, pytest.mark.qemu, pytest.mark.slow]

ENGINES = {"tvm": "tvm", "tflite": "litert"}


@pytest.mark.parametrize("backend", ["tvm", "tflite"])
def test_digits_cnn_flashed_and_run_on_board(
    backend: str, board: BoardInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    if backend == "tvm":
        pytest.importorskip("tvm", reason="the TVM backend needs apache-tvm")
        if shutil.which("aarch64-linux-gnu-g++") is None:
            pytest.skip("no aarch64-linux-gnu-g++ to cross-compile TVM modules for the Pi")
    else:
        pytest.importorskip("tflite", reason="writing .tflite files needs the 'tflite' schema package")
    monkeypatch.setenv("EDGEFIT_KNOWN_HOSTS", board.known_hosts)  # the test board's own host key
    out = tmp_path / "bundle"
    argv = ["compile", "digits_cnn", "--target", "rpi4", "--backend", backend, "-o", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    bundle = Bundle.load(out)
    if backend == "tvm":
        # The host refuses the aarch64 module with the one-line fix.
        capsys.readouterr()
        assert main(["run", str(out)]) == 2
        assert "flash it to the board" in capsys.readouterr().err
    conn = ["--board", board.address, "--identity", board.identity]

    assert main(["flash", str(out), *conn]) == 0
    flashed = capsys.readouterr().out
    assert f"smoke test on the board: {ENGINES[backend]} max relative error" in flashed, flashed

    y = tmp_path / "y.npy"
    assert main(["run", *conn, "--compare-reference", "--output", str(y)]) == 0
    ran = capsys.readouterr().out
    assert f"with the {ENGINES[backend]} engine" in ran and "board outputs match the reference" in ran, ran
    (name,) = bundle.reference_outputs()
    want = bundle.reference_outputs()[name]
    np.testing.assert_allclose(np.load(y), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
