"""Issue acceptance through the CLI, as a user runs it: `edgefit compile digits_cnn ...` on the
real handwritten digits, each compression against the uncompressed (locally trained) teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgefit.cli.main import main
from edgefit.compiler.artifact import read_artifact
from edgefit.runtime.bundle import Bundle


def _compile(tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> dict:
    out = tmp_path / "bundle"
    assert main(["compile", "digits_cnn", "--target", "rpi4", "-o", str(out), "--json", *flags]) == 0
    result = json.loads(capsys.readouterr().out)
    print({k: result[k] for k in ("accuracy", "compression", "bottleneck") if k in result})
    assert Bundle.load(out).verify_checksums() == []
    return result


def test_90_percent_sparsity_loses_at_most_one_point(tmp_path, capsys) -> None:
    r = _compile(tmp_path, capsys, "--sparsity", "0.9")
    assert r["accuracy"]["drop"] <= 1.0
    layers = [row for row in r["layers"] if row["encoding"] == "bsr"]
    assert layers and all(row["nnz"] <= 0.1 * row["params"] + 1 for row in layers)
    assert r["compression"]["macs_effective"] < 0.5 * r["compression"]["macs_dense"]


def test_4bit_codebooks_lose_at_most_half_a_point_and_are_7_5x_smaller(tmp_path, capsys) -> None:
    r = _compile(tmp_path, capsys, "--codebook-bits", "4")
    assert r["accuracy"]["drop"] <= 0.5
    assert r["compression"]["weight_size_vs_fp32"] >= 7.5
    graph = read_artifact(tmp_path / "bundle" / "model.efm")
    kinds = {
        graph.constants[n].kind
        for node in graph.nodes
        if node.op in ("conv2d", "linear")
        for n in node.inputs[1:2]
    }
    assert kinds == {"codebook"}


def test_bottleneck_loses_at_most_one_point_with_75_percent_fewer_bytes(tmp_path, capsys) -> None:
    r = _compile(tmp_path, capsys, "--bottleneck", "4", "--split-after", "features.2", "--split")
    assert r["accuracy"]["drop"] <= 1.0
    assert r["bottleneck"]["compression_vs_split_pct"] >= 75.0
    bundle = Bundle.load(tmp_path / "bundle")
    assert set(bundle.manifest["artifacts"]) == {"head", "tail"}
    head = read_artifact(bundle.artifact("head"))
    (out,) = head.outputs
    assert head.values[out].dtype == "u8"  # the transmitted tensor is quantized


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mobilenet_v2", "resnet50"])
@pytest.mark.parametrize(
    "flags",
    [[], ["--sparsity", "0.9", "--block", "1x4"], ["--codebook-bits", "4"], ["--int8"]],
    ids=["dense", "sparse90-1x4", "codebook4", "int8"],
)
def test_imagenet_models_compile_for_rpi4(model: str, flags: list[str], tmp_path, capsys) -> None:
    out = tmp_path / "bundle"
    assert main(["compile", model, "--target", "rpi4", "-o", str(out), "--json", *flags]) == 0
    r = json.loads(capsys.readouterr().out)
    c = r["compression"]
    print(
        f"{model} {' '.join(flags) or 'dense'}: {c['bytes']} B ({c['size_vs_fp32']}x vs fp32, weights "
        f"{c['weight_size_vs_fp32']}x), MACs {c['macs_dense']} -> {c['macs_effective']}, error {r['compile_error']:.1e}"
    )
    assert r["compile_error"] <= 1e-4
    graph = read_artifact(out / "model.efm")
    ref = Bundle.load(out).reference_outputs()
    assert set(ref) == set(graph.outputs)
    if flags:
        assert r["compression"]["bytes"] < r["compression"]["fp32_bytes"]
        assert np.isfinite(r["compression"]["size_vs_fp32"])
