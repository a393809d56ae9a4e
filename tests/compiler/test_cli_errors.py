"""User mistakes on the compile/inspect path: one line on stderr, exit 2, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefit.cli.main import main


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["compile", "digits_cnn", "--target", "rpi9", "-o", "{out}"], "unknown target 'rpi9'"),
        (["compile", "digits_cnn", "--target", "rpi4", "--sparsity", "1.5", "-o", "{out}"], "--sparsity"),
        (
            ["compile", "digits_cnn", "--target", "rpi4", "--codebook-bits", "9", "-o", "{out}"],
            "--codebook-bits",
        ),
        (
            [
                "compile",
                "digits_cnn",
                "--target",
                "rpi4",
                "--block",
                "3x3",
                "--sparsity",
                "0.5",
                "-o",
                "{out}",
            ],
            "--block",
        ),
        (
            ["compile", "digits_cnn", "--target", "rpi4", "--backend", "onnx", "-o", "{out}"],
            "unknown backend",
        ),
    ],
)
def test_bad_compile_options(argv: list[str], needle: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main([a.format(out=out) for a in argv]) == 2
    assert needle in _one_line_error(capsys)
    assert not out.exists()
    assert not any(p.name.startswith(".out.") for p in tmp_path.iterdir())


def test_inspect_missing_and_corrupt(tmp_path: Path, capsys) -> None:
    assert main(["inspect", str(tmp_path / "nope.efm")]) == 2
    assert "no such file" in _one_line_error(capsys)
    bad = tmp_path / "bad.efm"
    bad.write_bytes(b"EDGEFIT\0" + b"\x01" * 100)
    assert main(["inspect", str(bad)]) == 2
    assert "bad.efm" in _one_line_error(capsys)
    assert main(["inspect", str(tmp_path)]) == 2
    assert "not a compiled bundle" in _one_line_error(capsys)


BAD = Path(__file__).parent / "data" / "bad_models.py"


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("/nonexistent/model.py:build", "does not exist"),
        (f"{BAD}:missing", "has no function 'missing'"),
        (f"{BAD}:data_dependent", "torch.export failed"),
        (f"{BAD}:sigmoidal", "unsupported op aten.sigmoid.default at bad_models.py:"),
    ],
    ids=["missing-file", "missing-factory", "export-fails", "unsupported-op"],
)
def test_bad_models(spec: str, needle: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["compile", spec, "--target", "x86_64", "-o", str(out), "--no-progress"]) == 2
    assert needle in _one_line_error(capsys)
    assert not out.exists()
