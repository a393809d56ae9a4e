"""TFLite codebook modes: packed-byte GATHER ("gather"), one byte per index ("gather-u8") and "densify",
for every codebook width, grouping and weight layout, against the reference; file sizes; parsing."""

from __future__ import annotations

import numpy as np
import pytest
import tflite

from edgefit.compiler import reference
from edgefit.compiler.backends.tflite import byte_table, export_tflite, run_tflite, weights
from edgefit.compiler.encodings import Codebook
from edgefit.errors import UserError

pytest.importorskip("ai_edge_litert", reason="LiteRT (ai-edge-litert) is not installed")

MODES = ("gather", "gather-u8", "densify")


def _codebook(rng, shape, bits, groups, group_of, row_scale):
    o, k = shape[0], int(np.prod(shape[1:]))
    idx = rng.integers(0, 2**bits, (o, k))
    table = (rng.standard_normal((groups, 2**bits)) / np.sqrt(k)).astype(np.float32)
    cb = Codebook.from_indices(shape, bits, idx, table, group_of(np.arange(o)) % groups)
    return cb.scale_rows((0.5 + rng.random(o)).astype(np.float32)) if row_scale else cb


# Layers: build(builder, make(shape, group_of)) -> output name.
def _conv(b, make):
    # 45 weights per output channel, 315 in all: odd, so every width pads its last byte (SLICE).
    x = b.input("x", (1, 5, 6, 6))
    return b.conv(x, make((7, 5, 3, 3), lambda o: o), padding=(1, 1, 1, 1), act="relu")


def _conv_even(b, make):
    # 54 weights per output channel: with several tables, 2 indices per byte stay within a channel.
    x = b.input("x", (1, 6, 5, 5))
    return b.conv(x, make((10, 6, 3, 3), lambda o: o), stride=(2, 2), padding=(1, 1, 1, 1))


def _depthwise(b, make):
    # 1HWO layout: bytes run along output channels; tables change every 2 channels.
    x = b.input("x", (1, 8, 6, 6))
    return b.conv(x, make((8, 1, 3, 3), lambda o: o // 2), padding=(1, 1, 1, 1), groups=8, act="relu6")


def _flatten_linear(b, make):
    # Columns permuted for the NHWC flatten in front.
    x = b.input("x", (1, 4, 3, 4))
    y = b.op("reshape", [x], (1, 48), shape=(1, 48))
    return b.linear(y, make((12, 48), lambda o: o))


LAYERS = {
    "conv_odd": _conv,
    "conv_even": _conv_even,
    "depthwise": _depthwise,
    "flatten_linear": _flatten_linear,
}


def _expect_packed(layer: str, bits: int, groups: int) -> bool:
    """Whether "gather" can pack this layer (packing forced on, whatever the size)."""
    if bits not in (2, 3, 4):
        return False
    per = 4 if bits == 2 else 2
    if groups == 1:
        return True
    row = {"conv_odd": 45, "conv_even": 54, "flatten_linear": 48}.get(layer)
    if row is None:  # depthwise: a byte spans `per` neighbouring channels, tables change every 2
        return per <= 2
    return row % per == 0


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("groups,row_scale", [(1, False), (3, True)])
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_every_mode_matches_reference(builder, relerr, tmp_path, monkeypatch, layer, bits, groups, row_scale):
    # Pack even the small test layers (the size rule would keep one byte per index for them).
    monkeypatch.setattr(weights, "_packing_pays", lambda enc, count: True)
    b = builder(seed=100 * bits + groups)

    def make(shape, group_of):
        return _codebook(b.rng, shape, bits, groups, group_of, row_scale)

    out = LAYERS[layer](b, make)
    graph = b.graph(out)
    inputs = {n: b.rng.standard_normal(graph.values[n].shape).astype(np.float32) for n in graph.inputs}
    want = reference.run(graph, inputs)[out]
    for mode in MODES:
        path = tmp_path / f"{mode}.tflite"
        stats = export_tflite(graph, path, codebook=mode)
        assert relerr(run_tflite(path, inputs)[out], want) <= 1e-4, (mode, stats)
        packed = mode == "gather" and _expect_packed(layer, bits, groups)
        assert stats["packed_gather_tensors"] == int(packed), (mode, stats)
        assert stats["gather_tensors"] == (0 if mode == "densify" else 1)
        if packed:
            assert "CAST" in stats["ops"] and "GATHER" in stats["ops"]
            assert ("ADD" in stats["ops"]) == (groups > 1)


def _codes_tensor(path):
    """(type, byte length, shape) of the one uint8 index constant, read with the `tflite` schema."""
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    sub = model.Subgraphs(0)
    found = []
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        if t.Type() == tflite.TensorType.UINT8 and model.Buffers(t.Buffer()).DataLength():
            found.append((t.Name().decode(), model.Buffers(t.Buffer()).DataLength(), tuple(t.ShapeAsNumpy())))
    assert len(found) == 1, found
    return found[0]


def _big_conv(builder, bits, co=256, ci=256, groups=1):
    b = builder(seed=bits)
    x = b.input("x", (1, ci, 4, 4))
    cb = _codebook(b.rng, (co, ci, 3, 3), bits, groups, lambda o: o, row_scale=False)
    return b, b.graph(b.conv(x, cb, padding=(1, 1, 1, 1)))


@pytest.mark.parametrize("bits,per", [(2, 4), (3, 2), (4, 2)])
def test_packed_file_is_smaller_by_the_packing_factor(builder, tmp_path, bits, per):
    """A 256x256x3x3 layer, where the indices are nearly the whole file: packing divides it by the
    indices per byte (the 256-row expanded table adds 2-4 KiB)."""
    b, graph = _big_conv(builder, bits)
    out = graph.outputs[0]
    stats = {m: export_tflite(graph, tmp_path / f"{m}.tflite", codebook=m) for m in MODES}
    assert stats["gather"]["packed_gather_tensors"] == 1 and stats["gather-u8"]["packed_gather_tensors"] == 0
    ratio = stats["gather"]["bytes"] / stats["gather-u8"]["bytes"]
    assert abs(ratio - 1 / per) < 0.02, ratio
    assert stats["gather-u8"]["bytes"] < 0.27 * stats["densify"]["bytes"]
    # The index constant really is one byte per `per` indices, and uint8 (schema-level check).
    n = 256 * 256 * 9
    assert _codes_tensor(tmp_path / "gather.tflite")[1:] == (n // per, (n // per,))
    assert _codes_tensor(tmp_path / "gather-u8.tflite")[1] == n
    xs = {"x": b.rng.standard_normal((1, 256, 4, 4)).astype(np.float32)}
    got = run_tflite(tmp_path / "gather.tflite", xs)[out]
    np.testing.assert_allclose(got, reference.run(graph, xs)[out], rtol=1e-4, atol=1e-4)


def test_packed_file_opens_without_default_delegates(builder, tmp_path):
    """Reference kernels (no XNNPACK) read the packed graph the same way as the default interpreter."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgefit.compiler.backends.tflite.layout import to_nchw, to_nhwc

    b, graph = _big_conv(builder, 4, co=64, ci=48, groups=2)
    path = tmp_path / "g.tflite"
    assert export_tflite(graph, path)["packed_gather_tensors"] == 1
    xs = {"x": b.rng.standard_normal((1, 48, 4, 4)).astype(np.float32)}
    interp = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], to_nhwc(xs["x"]))
    interp.invoke()
    got = to_nchw(interp.get_tensor(interp.get_output_details()[0]["index"]))
    want = reference.run(graph, xs)[graph.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(run_tflite(path, xs)[graph.outputs[0]], got, rtol=1e-5, atol=1e-6)


def test_small_layers_keep_one_byte_per_index(builder, tmp_path):
    """Where the 256-row table outweighs the halved indices, "gather" writes the one-byte form."""
    _, graph = _big_conv(builder, 4, co=8, ci=8)
    g = export_tflite(graph, tmp_path / "g.tflite", codebook="gather")
    u = export_tflite(graph, tmp_path / "u.tflite", codebook="gather-u8")
    assert g["packed_gather_tensors"] == 0 and g["bytes"] == u["bytes"]
    _, graph = _big_conv(builder, 4, co=64, ci=64)
    g = export_tflite(graph, tmp_path / "g.tflite", codebook="gather")
    u = export_tflite(graph, tmp_path / "u.tflite", codebook="gather-u8")
    assert g["packed_gather_tensors"] == 1 and g["bytes"] < u["bytes"]


@pytest.mark.parametrize("slot", [2, 4])
def test_byte_table_rows_are_the_packed_indices(slot):
    rng = np.random.default_rng(slot)
    per = 8 // slot
    codes = rng.integers(0, 2**slot, (5, 8 * per))
    data = byte_table.pack_bytes(codes, slot)
    assert data.dtype == np.uint8 and data.shape == (5, 8)
    np.testing.assert_array_equal(byte_table.unpack_bytes(data, slot), codes)
    table = rng.standard_normal((3, 2**slot)).astype(np.float32)
    expanded = byte_table.byte_table(table, slot)
    assert expanded.shape == (3 * 256, per)
    g = 2
    np.testing.assert_array_equal(
        expanded[g * 256 + data.reshape(-1).astype(np.int64)].reshape(5, -1), table[g][codes]
    )


def test_unknown_codebook_mode_is_a_user_error(builder, tmp_path):
    _, graph = _big_conv(builder, 4, co=8, ci=8)
    with pytest.raises(UserError, match="gather, gather-u8, densify"):
        export_tflite(graph, tmp_path / "g.tflite", codebook="packed")


@pytest.mark.slow
@pytest.mark.parametrize(
    "model,bits,groups,vs_native",
    # 2-bit x 4 tables: 4 KiB expanded tables per layer, and the small layers stay one byte per index.
    [("mobilenet_v2", 4, 1, 1.1), ("resnet18", 4, 1, 1.1), ("mobilenet_v2", 2, 4, 1.6)],
)
def test_zoo_codebook_model_in_every_mode(model, bits, groups, vs_native, tmp_path):
    """A zoo model palettized by the real compression pass, compiled to the native bundle, whose graph
    goes through each TFLite mode: outputs within the bundle tolerance of PyTorch, sizes ordered."""
    from edgefit.cli.run import compare
    from edgefit.compiler.artifact import read_artifact
    from edgefit.compiler.compress.config import CompressionConfig
    from edgefit.compiler.pipeline import CompileOptions, compile_model
    from edgefit.runtime.bundle import Bundle

    config = CompressionConfig(codebook_bits=bits, codebook_groups=groups)
    compile_model(CompileOptions(model, "x86_64", tmp_path / "b", compression=config, progress=False))
    bundle = Bundle.load(tmp_path / "b")
    graph = read_artifact(bundle.artifact())
    sizes = {}
    for mode in MODES:
        stats = export_tflite(graph, tmp_path / f"{mode}.tflite", codebook=mode)
        sizes[mode] = stats["bytes"]
        outputs = run_tflite(tmp_path / f"{mode}.tflite", bundle.reference_inputs())
        ok, lines = compare(outputs, bundle.reference_outputs())
        assert ok, (mode, lines)
        if mode == "gather":
            assert stats["packed_gather_tensors"] > 0, stats
    native = bundle.artifact().stat().st_size
    assert sizes["gather"] < 0.6 * sizes["gather-u8"] < 0.6 * 0.3 * sizes["densify"], sizes
    assert sizes["gather"] < vs_native * native, (sizes, native)
