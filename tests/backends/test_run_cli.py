"""`edgefit run OUT/` on TFLite and TVM bundles, as a user runs it: compile digits_cnn through the CLI,
run the bundle here with --compare-reference; a module cross-built for the Pi is refused in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from edgefit.cli.main import main
from edgefit.runtime.bundle import REFERENCE_INPUTS, REFERENCE_OUTPUTS, Bundle, staging_dir, write_manifest


@pytest.fixture(scope="module", params=["tflite", "tvm"])
def digits_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if request.param == "tflite":
        pytest.importorskip("tflite", reason="writing .tflite files needs the 'tflite' schema package")
        pytest.importorskip("ai_edge_litert", reason="running .tflite files needs ai-edge-litert")
    else:
        pytest.importorskip("tvm", reason="the TVM backend needs apache-tvm")
    out = tmp_path_factory.mktemp(request.param) / "bundle"
    argv = ["compile", "digits_cnn", "--target", "x86_64", "--backend", request.param, "-o", str(out)]
    assert main([*argv, "--json", "--no-progress"]) == 0
    return out


def test_run_compares_with_reference(digits_bundle: Path, capsys, tmp_path) -> None:
    bundle = Bundle.load(digits_bundle)
    assert bundle.verify_checksums() == []
    files = {p.name for p in digits_bundle.iterdir()} - {"manifest.json"}
    assert files == set(bundle.manifest["checksums"])  # every file the backend needs is checked
    if bundle.backend == "tvm":
        assert "model.so.io.json" in files
    capsys.readouterr()
    y = tmp_path / "y.npy"
    argv = ["run", str(digits_bundle), "--compare-reference", "--repeat", "3", "--output", str(y)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    label = "LiteRT" if bundle.backend == "tflite" else "TVM x86_64"
    assert re.search(rf"\({label}, 1 thread\(s\)\): median [0-9.]+ ms over 3 run", out), out
    assert "top-1 agreement 100.0 % ok" in out, out
    (name,) = bundle.reference_outputs()
    np.testing.assert_allclose(np.load(y), bundle.reference_outputs()[name], rtol=1e-4, atol=1e-4)


def test_run_reports_a_disagreeing_reference(digits_bundle: Path, capsys, tmp_path) -> None:
    """A wrong reference must fail the comparison (exit 1), so the check can fail at all."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(digits_bundle, copy)
    ref = Bundle.load(copy).reference_outputs()
    np.savez(copy / REFERENCE_OUTPUTS, **{k: v[:, ::-1].copy() for k, v in ref.items()})
    assert main(["run", str(copy), "--compare-reference"]) == 1
    assert "disagree" in capsys.readouterr().out


def test_pi_module_is_refused_on_this_host(builder, tmp_path, capsys) -> None:
    """A TVM module cross-built for the Pi gets a one-line error naming the fix, not a traceback."""
    pytest.importorskip("tvm", reason="the TVM backend needs apache-tvm")
    import shutil

    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("no aarch64-linux-gnu-g++ to cross-compile for the Pi")
    from edgefit import targets
    from edgefit.compiler.backends.tvm import compile_tvm

    b = builder()
    graph = b.graph(b.linear(b.input("x", (1, 8)), b.weight((4, 8))))
    out = tmp_path / "pi"
    with staging_dir(out) as tmp:
        compile_tvm(graph, targets.load("rpi4"), tmp / "model.so")
        np.savez(tmp / REFERENCE_INPUTS, x=np.zeros((1, 8), np.float32))
        np.savez(tmp / REFERENCE_OUTPUTS, **{graph.outputs[0]: np.zeros((1, 4), np.float32)})
        write_manifest(tmp, {"model": "t", "target": "rpi4", "backend": "tvm", "artifacts": {"model": "model.so"},
                             "inputs": [], "outputs": []})  # fmt: skip
    assert json.loads((out / "model.so.io.json").read_text())["arch"] == "aarch64"
    assert main(["run", str(out), "--compare-reference"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "built for aarch64" in err and "flash it to the board" in err, err


@pytest.mark.parametrize("backend", ["tflite", "tvm"])
def test_split_bundle_is_judged_with_the_bottleneck_tolerance(backend: str, tmp_path, capsys) -> None:
    """A split bundle's u8 bottleneck quantizes the transmitted tensor, so `run --compare-reference`
    runs head then tail and judges them as the native split does (not at the 1e-4 fp32 tolerance)."""
    pytest.importorskip(
        "tflite" if backend == "tflite" else "tvm", reason=f"the {backend} backend is missing"
    )
    out = tmp_path / "split"
    argv = ["compile", "digits_cnn", "--target", "x86_64", "--backend", backend, "--bottleneck", "4"]
    argv += [
        "--split-after",
        "features.2",
        "--split",
        "--finetune-epochs",
        "1",
        "--no-progress",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    assert set(Bundle.load(out).manifest["artifacts"]) == {"head", "tail"}
    capsys.readouterr()
    assert main(["run", str(out), "--compare-reference"]) == 0
    assert "top-1 agreement 100.0 % ok" in capsys.readouterr().out


@pytest.mark.parametrize(("mode", "packed", "gathered"), [("gather", True, True), ("densify", False, False)])
def test_tflite_codebook_mode_from_the_cli(mode: str, packed: bool, gathered: bool, tmp_path, capsys) -> None:
    """`--tflite-codebook` reaches the exporter: packed GATHER by default, no GATHER when densified;
    both runs match the reference."""
    pytest.importorskip("tflite", reason="writing .tflite files needs the 'tflite' schema package")
    out = tmp_path / mode
    argv = ["compile", "digits_cnn", "--target", "x86_64", "--backend", "tflite", "--codebook-bits", "4"]
    argv += ["--finetune-epochs", "0", "--tflite-codebook", mode, "--no-progress", "-o", str(out)]
    assert main(argv) == 0
    stats = Bundle.load(out).manifest["backend_stats"]["model"]
    assert (stats["packed_gather_tensors"] > 0) == packed, stats
    assert ("GATHER" in stats["ops"]) == gathered, stats["ops"]
    capsys.readouterr()
    assert main(["run", str(out), "--compare-reference"]) == 0


def test_tvm_int8_is_weight_only_and_judged_at_fp32_tolerance(tmp_path, capsys) -> None:
    """TVM's --int8 keeps fp32 activations, so its bundle is held to the 1e-4 fp32 tolerance: a
    reference moved by 1e-3 of output scale must fail (the int8-activation tolerance would pass it)."""
    pytest.importorskip("tvm", reason="the TVM backend needs apache-tvm")
    out = tmp_path / "i8"
    argv = ["compile", "digits_cnn", "--target", "x86_64", "--backend", "tvm", "--int8"]
    assert main([*argv, "--finetune-epochs", "0", "--no-progress", "-o", str(out)]) == 0
    assert Bundle.load(out).manifest["tolerance"]["relative"] == 1e-4
    assert main(["run", str(out), "--compare-reference"]) == 0
    ref = Bundle.load(out).reference_outputs()
    moved = {k: v + 1e-3 * np.abs(v).max() for k, v in ref.items()}  # same top-1, 10x the tolerance
    np.savez(out / REFERENCE_OUTPUTS, **moved)
    capsys.readouterr()
    assert main(["run", str(out), "--compare-reference"]) == 1
    assert "tolerance 0.0001" in capsys.readouterr().out
