"""The real thing on the emulated Pi 4: edgefit's C++ runtime cross-built for aarch64 (pybind11
module against the board's Python 3.11 headers, -mcpu=cortex-a72) runs the flashed bundle there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgefit import targets
from edgefit.runtime.board.lifecycle import BoardInfo
from edgefit.runtime.bundle import Bundle
from edgefit.runtime.deploy import crossbuild, flash, remote_run
from edgefit.runtime.deploy.ssh import BoardAddress, Connection

pytestmark = [pytest.mark.board, pytest.mark.qemu, pytest.mark.slow]


def test_cross_built_module_is_aarch64_for_the_boards_python() -> None:
    if crossbuild.source_root() is None:
        pytest.skip("edgefit is installed without its C++ sources (not an editable checkout)")
    built = crossbuild.build_native(targets.load("rpi4"), "3.11")
    module = next(built.glob("_native*.so"))
    assert module.name == "_native.cpython-311-aarch64-linux-gnu.so"
    header = module.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64


def test_flash_with_native_runtime(bundle_factory: Callable[..., Path], board: BoardInfo) -> None:
    conn = Connection(
        BoardAddress.parse(board.address), identity=board.identity, known_hosts=board.known_hosts
    )
    bundle = bundle_factory(seed=21)
    res = flash.flash(bundle, conn)  # with the runtime: cross-built on first use, then cached
    assert res.smoke["engine"] == "native (neon)", res.notes
    assert res.smoke["ok"] and res.smoke["max_error"] < 1e-5
    outputs, report = remote_run(conn, None, compare_reference=True)
    assert report["engine"] == "native (neon)" and report["ok"]
    np.testing.assert_allclose(
        outputs["y"], Bundle.load(bundle).reference_outputs()["y"], rtol=1e-5, atol=1e-6
    )


def test_flash_tflite_bundle_runs_litert_on_board(
    bundle_factory: Callable[..., Path], board: BoardInfo
) -> None:
    """The aarch64 ai-edge-litert wheel (resolved for the board's Python with every manylinux
    aarch64 tag) goes up with the bundle, and LiteRT runs it on the board under qemu."""
    pytest.importorskip(
        "tflite", reason="writing .tflite files needs the 'tflite' schema package (backends extra)"
    )
    conn = Connection(
        BoardAddress.parse(board.address), identity=board.identity, known_hosts=board.known_hosts
    )
    bundle = bundle_factory(seed=22, backend="tflite")
    res = flash.flash(bundle, conn)
    assert res.smoke["engine"] == "litert" and res.smoke["ok"], res.notes
    x = np.random.default_rng(3).standard_normal((1, 64)).astype(np.float32)
    outputs, report = remote_run(conn, {"x": x})
    assert report["engine"] == "litert"
    from edgefit.compiler.backends.tflite import run_tflite

    host = run_tflite(bundle / "model.tflite", {"x": x})
    np.testing.assert_allclose(outputs["y"], host["y"], rtol=1e-5, atol=1e-6)
