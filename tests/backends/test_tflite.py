"""TFLite backend: every op and weight encoding through export_tflite + LiteRT against the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgefit.compiler import reference
from edgefit.compiler.backends.tflite import export_tflite, run_tflite
from edgefit.compiler.encodings import Dense
from edgefit.errors import UserError

pytest.importorskip("ai_edge_litert", reason="LiteRT (ai-edge-litert) is not installed")


def test_op_matches_reference(case, case_graph, relerr, tmp_path):
    graph, out, inputs = case_graph
    want = reference.run(graph, inputs)[out]
    for codebook in ("gather", "gather-u8", "densify"):
        path = tmp_path / f"{case}_{codebook}.tflite"
        stats = export_tflite(graph, path, codebook=codebook)
        got = run_tflite(path, inputs)[out]
        assert got.shape == want.shape
        if case == "quantize_dequantize":
            # TFLite rounds half away from zero, the IR half to even: ties may differ by one step.
            assert np.abs(got - want).max() <= 0.05 + 1e-6
        else:
            assert relerr(got, want) <= 1e-4, stats
        if want.ndim == 2 and want.shape[1] > 1:
            assert (got.argmax(1) == want.argmax(1)).all()
        assert "TRANSPOSE" not in stats["ops"] or case == "reshape_general"


def test_conv_pool_matches_torch(builder, tmp_path):
    b = builder(seed=3)
    x = b.input("x", (1, 3, 12, 12))
    w = b.weight((8, 3, 3, 3))
    y = b.conv(x, w, stride=(2, 2), padding=(1, 1, 1, 1), act="relu", bias=False)
    y = b.pool("max_pool2d", y, (3, 3), (2, 2), (1, 1, 1, 1))
    graph = b.graph(y)
    xs = b.rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    export_tflite(graph, tmp_path / "m.tflite")
    got = run_tflite(tmp_path / "m.tflite", {"x": xs})[y]
    t = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(xs), torch.from_numpy(w), stride=2, padding=1))
    want = torch.nn.functional.max_pool2d(t, 3, 2, 1).numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def _dw_sparse_net(builder, sparse_block: bool):
    from edgefit.compiler.encodings import BlockSparse

    b = builder(seed=5)
    x = b.input("x", (1, 3, 16, 16))
    y = b.conv(x, b.weight((16, 3, 3, 3)), stride=(2, 2), padding=(1, 1, 1, 1), act="relu")
    w = b.weight((32, 16, 1, 1))
    w[b.rng.random(w.shape) < 0.9] = 0
    y = b.conv(y, BlockSparse.from_dense(w) if sparse_block else Dense(w), act="relu")
    y = b.op("global_avg_pool", [y], (1, 32, 1, 1))
    return b.graph(y), y


def test_sparse_weights_become_densify_and_shrink(builder, tmp_path):
    graph, out = _dw_sparse_net(builder, sparse_block=True)
    xs = {"x": np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)}
    sparse = export_tflite(graph, tmp_path / "s.tflite", sparse="densify-op")
    dense = export_tflite(graph, tmp_path / "d.tflite", sparse="dense")
    assert sparse["sparse_densify"] and "DENSIFY" in sparse["ops"]
    assert not dense["sparse_densify"] and "DENSIFY" not in dense["ops"]
    assert sparse["bytes"] < dense["bytes"] - 32 * 16 * 4 * 0.5
    want = reference.run(graph, xs)[out]
    for p in ("s.tflite", "d.tflite"):
        assert np.abs(run_tflite(tmp_path / p, xs)[out] - want).max() <= 1e-4 * np.abs(want).max()


def test_codebook_gather_keeps_indices_and_is_smaller(builder, tmp_path):
    from edgefit.compiler.encodings import Codebook

    b = builder(seed=7)
    x = b.input("x", (1, 32, 6, 6))
    idx = b.rng.integers(0, 16, (64, 32 * 9))
    table = (b.rng.standard_normal((1, 16)) * 0.05).astype(np.float32)
    y = b.conv(x, Codebook.from_indices((64, 32, 3, 3), 4, idx, table, np.zeros(64)), padding=(1, 1, 1, 1))
    graph = b.graph(y)
    gather = export_tflite(graph, tmp_path / "g.tflite", codebook="gather")
    byte = export_tflite(graph, tmp_path / "u.tflite", codebook="gather-u8")
    dense = export_tflite(graph, tmp_path / "d.tflite", codebook="densify")
    assert {"CAST", "GATHER"} <= set(gather["ops"]) and "GATHER" not in dense["ops"]
    assert gather["packed_gather_tensors"] == 1 and byte["packed_gather_tensors"] == 0
    # One byte per weight instead of four; half a byte (+ a 2 KiB byte-expanded table) when packed.
    assert byte["bytes"] < 0.3 * dense["bytes"]
    assert gather["bytes"] < 0.65 * byte["bytes"]
    xs = {"x": b.rng.standard_normal((1, 32, 6, 6)).astype(np.float32)}
    for p in ("g.tflite", "u.tflite"):
        np.testing.assert_allclose(
            run_tflite(tmp_path / p, xs)[y],
            run_tflite(tmp_path / "d.tflite", xs)[y],
            rtol=1e-5,
            atol=1e-5,
        )


def test_unsupported_ops_raise_user_error(builder, tmp_path):
    b = builder()
    x = b.input("x", (1, 4, 5, 5))
    y = b.conv(x, b.weight((4, 2, 3, 3)), groups=2)
    with pytest.raises(UserError, match="grouped convolution"):
        export_tflite(b.graph(y), tmp_path / "g.tflite")
    b = builder()
    x = b.input("x", (1, 2, 3, 3))
    q = b.op("quantize", [x], (1, 2, 3, 3), dtype="u8", scale=(0.1, 0.2), zero_point=(0, 0), axis=1)
    with pytest.raises(UserError, match="per-channel"):
        export_tflite(b.graph(q), tmp_path / "q.tflite")
    with pytest.raises(UserError, match="codebook must be"):
        export_tflite(b.graph(q), tmp_path / "q.tflite", codebook="palette")


def _small_cnn(builder):
    """A digits-sized CNN (8x8 input, 10 classes) with every int8-relevant op kind."""
    b = builder(seed=11)
    x = b.input("x", (1, 1, 8, 8))
    y = b.conv(x, b.weight((16, 1, 3, 3)), padding=(1, 1, 1, 1), act="relu")
    y = b.conv(y, b.weight((16, 1, 3, 3)), padding=(1, 1, 1, 1), groups=16, act="relu6")
    z = b.conv(y, b.weight((16, 16, 1, 1)), act="hardswish")
    y = b.op("add", [y, z], (1, 16, 8, 8))
    y = b.pool("max_pool2d", y, (2, 2), (2, 2))
    y = b.op(
        "concat",
        [y, b.conv(y, b.weight((8, 16, 3, 3)), padding=(1, 1, 1, 1), act="relu")],
        (1, 24, 4, 4),
        axis=1,
    )
    scale = b.const(Dense((0.5 + b.rng.random(24)).astype(np.float32)))
    shift = b.const(Dense((0.1 * b.rng.standard_normal(24)).astype(np.float32)))
    y = b.op("channel_affine", [y, scale, shift], (1, 24, 4, 4), act="relu")
    y = b.pool("avg_pool2d", y, (2, 2), (2, 2), count_include_pad=1)
    y = b.op("reshape", [y], (1, 96), shape=(1, 96))
    y = b.linear(y, b.weight((10, 96), scale=0.3))
    return b.graph(y), y


def _digit_like(rng, n):
    """Smooth 8x8 blobs in 0..16 like the sklearn digits (no dataset download at test time)."""
    yy, xx = np.mgrid[0:8, 0:8]
    out = []
    for _ in range(n):
        img = np.zeros((8, 8))
        for _ in range(3):
            cy, cx, s = rng.uniform(1, 7), rng.uniform(1, 7), rng.uniform(0.8, 2.0)
            img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        out.append((16 * img / img.max()).astype(np.float32).reshape(1, 1, 8, 8))
    return out


def test_int8_every_op_kind_stays_close(builder, tmp_path):
    """Untrained weights give near-tied logits, so this checks closeness; the trained digits model
    below holds the 99 % top-1 bar."""
    graph, out = _small_cnn(builder)
    rng = np.random.default_rng(0)
    calib = [{"x": x} for x in _digit_like(rng, 32)]
    stats = export_tflite(graph, tmp_path / "q.tflite", int8_calibration=calib)
    fp32 = export_tflite(graph, tmp_path / "f.tflite")
    assert stats["int8"] and stats["bytes"] < fp32["bytes"]
    from edgefit.compiler.backends.tflite.run import invoke, load

    interp = load(tmp_path / "q.tflite")
    agree = 0
    tests = _digit_like(rng, 300)
    for x in tests:
        want = reference.run(graph, {"x": x})[out]
        agree += int(invoke(interp, {"x": x})[out].argmax() == want.argmax())
    assert agree / len(tests) >= 0.95, f"int8 top-1 agreement {agree}/{len(tests)}"


@pytest.fixture(scope="module")
def trained_digits():
    """DigitsCNN trained for 4 quick epochs (~5 s on one thread), captured to IR."""
    from edgefit.compiler.frontend import capture
    from edgefit.models.datasets import digits
    from edgefit.models.digits_cnn import digits_cnn

    torch.manual_seed(0)
    model = digits_cnn()
    x, y = digits("train").tensors
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(4):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    return capture(model, (x[:1],)), x.numpy(), digits("test").tensors


def test_int8_digits_top1_agrees_with_fp32(trained_digits, tmp_path):
    from edgefit.compiler.backends.tflite.run import invoke, load

    graph, train_x, (test_x, test_y) = trained_digits
    name, out = graph.inputs[0], graph.outputs[0]
    calib = [{name: train_x[i : i + 1]} for i in range(0, 200, 2)]
    stats = export_tflite(graph, tmp_path / "q.tflite", int8_calibration=calib)
    assert stats["int8"] and "QUANTIZE" in stats["ops"]
    interp = load(tmp_path / "q.tflite")
    agree = correct = 0
    for i in range(len(test_x)):
        x = test_x[i : i + 1].numpy()
        got = invoke(interp, {name: x})[out].argmax()
        agree += int(got == reference.run(graph, {name: x})[out].argmax())
        correct += int(got == int(test_y[i]))
    assert agree / len(test_x) >= 0.99, f"int8 vs fp32 top-1 agreement {agree}/{len(test_x)}"
    assert correct / len(test_x) >= 0.9


def test_staged_runner_times_invoke_alone_and_computes_the_same(builder, tmp_path):
    # A latency comparison stages the NHWC input once; the staged call must still be the model's run.
    from edgefit.compiler.backends.tflite.run import outputs
    from edgefit.runtime.bundle import Bundle
    from edgefit.runtime.harness.runners import TFLiteRunner

    b = builder(seed=5)
    x = b.input("x", (1, 3, 10, 10))
    y = b.conv(x, b.weight((4, 3, 3, 3)), stride=(1, 1), padding=(1, 1, 1, 1), act="relu", bias=False)
    export_tflite(b.graph(y), tmp_path / "m.tflite")
    runner = TFLiteRunner(Bundle(tmp_path, {"artifacts": {"model": "m.tflite"}}))
    feeds = {"x": b.rng.standard_normal((1, 3, 10, 10)).astype(np.float32)}
    want = runner.run(feeds)[y]
    runner.run({"x": np.zeros_like(feeds["x"])})  # the staged call must not reuse these
    once = runner.staged(feeds)
    once()
    assert runner.calls == 3
    np.testing.assert_array_equal(outputs(runner.interp)[y], want)
