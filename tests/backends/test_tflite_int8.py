"""int8 TFLite export, op by op: each int8 op, fed its own int8 inputs, lands within a rounding step of
the exact op (clamped to its calibrated range), so a wrong scale or zero point cannot hide behind a
network that amplifies ordinary quantization noise (seeded MobileNetV2 flips top-1 on 1 % input noise)."""

from __future__ import annotations

import numpy as np
import pytest

from edgefit.compiler import reference
from edgefit.compiler.backends.tflite import export_tflite
from edgefit.compiler.backends.tflite.layout import to_nchw, to_nhwc
from edgefit.compiler.encodings import Dense, Int8PerChannel
from edgefit.compiler.ir import Node, freeze

pytest.importorskip("ai_edge_litert", reason="LiteRT (ai-edge-litert) is not installed")

#: Max error in output steps: 0.5 from rounding the result (measured: at most 0.57), the rest is
#: margin for int32 bias rounding and fixed-point requantization. A wrong scale, zero point,
#: per-channel scale order or clamp costs tens of steps.
STEP_TOLERANCE = 1.0


def _inverted_residual_net(builder):
    """MobileNetV2's patterns at toy size: stem conv + relu6, expand 1x1 + relu6, depthwise 3x3 with
    per-channel weights of very different magnitudes + relu6, linear projection, residual ADD, a
    hardswish conv, concat, global average pool (MEAN), flatten and the FULLY_CONNECTED head."""
    b = builder(seed=5)
    x = b.input("x", (1, 3, 16, 16))
    stem = b.conv(x, b.weight((8, 3, 3, 3)), stride=(2, 2), padding=(1, 1, 1, 1), act="relu6")
    y = b.conv(stem, b.weight((24, 8, 1, 1)), act="relu6")
    # Per-channel magnitudes spread over 100x: a per-tensor or wrong-axis weight scale would show.
    dw = b.weight((24, 1, 3, 3)) * np.geomspace(0.05, 5.0, 24, dtype=np.float32).reshape(24, 1, 1, 1)
    y = b.conv(y, Int8PerChannel.from_dense(dw), padding=(1, 1, 1, 1), groups=24, act="relu6")
    y = b.conv(y, Dense(b.weight((8, 24, 1, 1))))
    y = b.op("add", [stem, y], (1, 8, 8, 8))
    h = b.conv(y, b.weight((8, 8, 1, 1)), act="hardswish")
    y = b.op("concat", [y, h], (1, 16, 8, 8), axis=1)
    y = b.op("global_avg_pool", [y], (1, 16, 1, 1))
    y = b.op("reshape", [y], (1, 16), shape=(1, 16))
    y = b.linear(y, b.weight((10, 16)))
    return b.graph(y)


def _int8_tensors(path, feeds):
    """Run the int8 model keeping every tensor: name -> (dequantized NCHW float, scale, lo, hi)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_path=str(path),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], to_nhwc(feeds[d["name"]]).astype(d["dtype"]))
    interp.invoke()
    out = {}
    for d in interp.get_tensor_details():
        q = d["quantization_parameters"]
        if d["dtype"] != np.int8 or len(q["scales"]) != 1:
            continue  # float boundary tensors and per-channel weights
        s, z = float(q["scales"][0]), int(q["zero_points"][0])
        v = (interp.get_tensor(d["index"]).astype(np.float64) - z) * s
        out[d["name"]] = (to_nchw(v) if v.ndim == 4 else v, s, (-128 - z) * s, (127 - z) * s)
    return out


def _local_steps(graph, tensors) -> dict[str, float]:
    """Per node: max |int8 output - exact op on the int8 inputs (clamped to the output's range)| in steps."""

    def int8_name(name: str) -> str:
        return f"{name}/int8" if f"{name}/int8" in tensors else name

    def arg(node: Node, i: str) -> np.ndarray:
        if i not in graph.constants:
            return tensors[int8_name(i)][0]
        enc = graph.constants[i]
        if node.op in ("conv2d", "linear") and i == node.inputs[1] and not isinstance(enc, Int8PerChannel):
            # The export quantizes float weights per channel; the exact op uses those int8 weights.
            return Int8PerChannel.from_dense(enc.to_dense().astype(np.float32)).to_dense()
        return enc.to_dense()

    def check(key: str, node: Node, args: list[np.ndarray], out: str) -> None:
        want = reference.evaluate(node, args)[0].astype(np.float64)
        got, scale, lo, hi = tensors[out]
        steps[key] = float(np.abs(got - np.clip(want, lo, hi)).max() / scale)

    steps: dict[str, float] = {}
    for node in graph.nodes:
        args = [arg(node, i) for i in node.inputs]
        out = int8_name(node.outputs[0])
        pre = f"{node.outputs[0]}/pre_act"
        if node.attr("act", "none") == "hardswish" and pre in tensors:
            # HARD_SWISH is its own op after an int8 pre-activation: check both roundings separately.
            plain = Node(node.op, node.name, node.inputs, node.outputs, freeze({**node.attrs, "act": "none"}))
            check(f"{node.op} {node.name}", plain, args, pre)
            hswish = Node("hardswish", f"{node.name}/hardswish", (pre,), node.outputs)
            check(f"hardswish {node.name}", hswish, [tensors[pre][0]], out)
        else:
            check(f"{node.op} {node.name}", node, args, out)
    return steps


def test_int8_ops_within_a_step_of_exact(builder, tmp_path):
    graph = _inverted_residual_net(builder)
    rng = np.random.default_rng(1)
    calib = [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(8)]
    export_tflite(graph, tmp_path / "q.tflite", int8_calibration=calib)
    ops = {n.op for n in graph.nodes}
    for _ in range(3):  # inputs calibration never saw: some values clamp, as int8 must
        x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
        steps = _local_steps(graph, _int8_tensors(tmp_path / "q.tflite", {"x": x}))
        assert {k.split()[0] for k in steps} == ops | {"hardswish"}
        bad = {k: round(v, 2) for k, v in steps.items() if v > STEP_TOLERANCE}
        assert not bad, f"int8 ops off the exact result by more than {STEP_TOLERANCE} steps: {bad}"


def test_int8_ranges_cover_what_calibration_saw(builder, tmp_path):
    """Every activation's int8 range holds the fp32 values of all calibration batches (no clipping
    of what calibration saw, so a range taken from too few tensors or batches would show)."""
    graph = _inverted_residual_net(builder)
    rng = np.random.default_rng(2)
    calib = [{"x": (s * rng.standard_normal((1, 3, 16, 16))).astype(np.float32)} for s in (0.5, 1, 3)]
    export_tflite(graph, tmp_path / "q.tflite", int8_calibration=calib)
    tensors = _int8_tensors(tmp_path / "q.tflite", calib[0])
    seen = [reference.run(graph, batch, keep_all=True) for batch in calib]
    for node in graph.nodes:
        name = node.outputs[0]
        _, scale, lo, hi = tensors[f"{name}/int8" if f"{name}/int8" in tensors else name]
        vlo = min(float(env[name].min()) for env in seen)
        vhi = max(float(env[name].max()) for env in seen)
        assert lo - scale <= vlo and vhi <= hi + scale, f"{node.op} {name}: [{vlo}, {vhi}] vs [{lo}, {hi}]"
