"""Seed corpus for the loader fuzzer (csrc/tests/fuzz_loader.cc): small real artifacts written by
the compiler's own `write_artifact`, one per weight encoding plus graphs that use every op.

Usage: python scripts/fuzz_seeds.py OUT_DIR   (writes OUT_DIR/*.efm, a few KB each)
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from unittest import mock

import numpy as np

from edgefit.compiler import artifact
from edgefit.compiler import encodings as enc
from edgefit.compiler.artifact import write_artifact
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify
from edgefit.compiler.reference import pool_out

#: Seeds of random conv + pool geometry (random_conv_net).
RANDOM_SEEDS = 24
#: Weight encodings of conv2d / linear as the runtime sees them (every kernel family it dispatches).
ENCODINGS = ("dense", "int8", "bsr1", "bsr2", "bsr4", "cb2", "cb5g3s", "cb2g257")


def _encode(w: np.ndarray, kind: str, rng: np.random.Generator) -> enc.WeightEncoding:
    """`w` in encoding `kind`; cb<bits>[g<groups>][s]: s stores row scales (format 1.1 flags off)."""
    if kind == "dense":
        return enc.Dense(w)
    if kind == "int8":
        return enc.Int8PerChannel.from_dense(w)
    if kind.startswith("bsr"):
        block = int(kind[3:])
        keep = np.repeat(rng.random((w.shape[0] // block, 1)) < 0.6, block, axis=0)
        mask = keep.reshape(-1, *([1] * (w.ndim - 1))) * (rng.random(w.shape) < 0.5)
        return enc.BlockSparse.from_dense((w * mask).astype(np.float32), block)
    scaled = kind.endswith("s")
    bits, _, groups = kind[2:].rstrip("s").partition("g")
    bits, ngroups = int(bits), int(groups or 1)
    o = w.shape[0]
    idx = rng.integers(0, 2**bits, size=(o, int(np.prod(w.shape[1:]))))
    table = rng.standard_normal((ngroups, 2**bits)).astype(np.float32)
    cb = enc.Codebook.from_indices(w.shape, bits, idx, table, np.arange(o) % ngroups)
    return cb.scale_rows(rng.uniform(0.5, 1.5, o).astype(np.float32)) if scaled else cb


def conv_net(kind: str, seed: int) -> Graph:
    """3x3 conv -> 1x1 conv (the sparse/codebook 1x1 paths) -> global pool -> linear -> softmax."""
    rng = np.random.default_rng(seed)
    w = {
        "w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "w2": rng.standard_normal((8, 8, 1, 1)).astype(np.float32),
        "w3": rng.standard_normal((4, 8)).astype(np.float32),
    }
    consts: dict[str, enc.WeightEncoding] = {k: _encode(v, kind, rng) for k, v in w.items()}
    consts["b1"] = enc.Dense(rng.standard_normal(8).astype(np.float32))
    consts["b3"] = enc.Dense(rng.standard_normal(4).astype(np.float32))
    values = {
        "x": Value("x", (1, 3, 6, 6)),
        "h1": Value("h1", (1, 8, 3, 3)),
        "h2": Value("h2", (1, 8, 3, 3)),
        "p": Value("p", (1, 8, 1, 1)),
        "f": Value("f", (1, 8)),
        "l": Value("l", (1, 4)),
        "y": Value("y", (1, 4)),
        **{k: Value(k, tuple(c.shape)) for k, c in consts.items()},
    }
    conv1 = {"stride": (2, 2), "padding": (1, 1, 1, 1), "act": "relu"}
    nodes = (
        Node("conv2d", "conv1", ("x", "w1", "b1"), ("h1",), freeze(conv1), "seed.py:1"),
        Node("conv2d", "conv2", ("h1", "w2"), ("h2",), freeze({"act": "relu6"}), "seed.py:2"),
        Node("global_avg_pool", "gap", ("h2",), ("p",)),
        Node("reshape", "flat", ("p",), ("f",), freeze({"shape": (1, 8)})),
        Node("linear", "fc", ("f", "w3", "b3"), ("l",), freeze({"act": "hardswish"})),
        Node("softmax", "sm", ("l",), ("y",), freeze({"axis": 1})),
    )
    return verify(Graph(("x",), ("y",), nodes, values, consts, {"model": f"seed-{kind}"}))


def depthwise_net(kind: str, seed: int) -> Graph:
    """Depthwise 3x3 / 5x5 convs (stride, dilation), channel_affine, hardswish, add."""
    rng = np.random.default_rng(seed)
    c = 4
    consts = {
        "dw3": _encode(rng.standard_normal((c, 1, 3, 3)).astype(np.float32), kind, rng),
        "dw5": _encode(rng.standard_normal((c, 1, 5, 5)).astype(np.float32), kind, rng),
        "sc": enc.Dense(rng.uniform(0.5, 2, c).astype(np.float32)),
        "sh": enc.Dense(rng.standard_normal(c).astype(np.float32)),
    }
    values = {
        "x": Value("x", (1, c, 7, 7)),
        "a": Value("a", (1, c, 7, 7)),
        "b": Value("b", (1, c, 7, 7)),
        "s": Value("s", (1, c, 7, 7)),
        "y": Value("y", (1, c, 7, 7)),
        **{k: Value(k, tuple(v.shape)) for k, v in consts.items()},
    }
    dw3 = {"padding": (1, 1, 1, 1), "groups": c}
    dw5 = {"padding": (4, 4, 4, 4), "dilation": (2, 2), "groups": c, "act": "relu"}
    nodes = (
        Node("conv2d", "dw3", ("x", "dw3"), ("a",), freeze(dw3)),
        Node("conv2d", "dw5", ("x", "dw5"), ("b",), freeze(dw5)),
        Node("add", "sum", ("a", "b"), ("s",), freeze({"act": "relu6"})),
        Node("channel_affine", "bn", ("s", "sc", "sh"), ("y",), freeze({"act": "hardswish"})),
    )
    return verify(Graph(("x",), ("y",), nodes, values, consts, {"model": f"seed-dw-{kind}"}))


def pool_net() -> Graph:
    """Pools (ceil mode, padding, count_include_pad), concat, relu, hardswish; no weights."""
    values = {
        "x": Value("x", (1, 2, 8, 7)),
        "m": Value("m", (1, 2, 4, 4)),
        "a": Value("a", (1, 2, 4, 4)),
        "c": Value("c", (1, 4, 4, 4)),
        "r": Value("r", (1, 4, 4, 4)),
        "y": Value("y", (1, 4, 4, 4)),
    }
    maxp = {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1, 1, 1), "ceil_mode": 0}
    avgp = {
        "kernel": (2, 2),
        "stride": (2, 2),
        "padding": (0, 0, 0, 0),
        "ceil_mode": 1,
        "count_include_pad": 0,
    }
    nodes = (
        Node("max_pool2d", "maxp", ("x",), ("m",), freeze(maxp)),
        Node("avg_pool2d", "avgp", ("x",), ("a",), freeze(avgp)),
        Node("concat", "cat", ("m", "a"), ("c",), freeze({"axis": 1})),
        Node("relu", "relu", ("c",), ("r",)),
        Node("hardswish", "hs", ("r",), ("y",)),
    )
    return verify(Graph(("x",), ("y",), nodes, values, {}, {"model": "seed-pools"}))


def misc_net() -> Graph:
    """Grouped and strided depthwise convs, concat on H, padded avg pool, batched linear (GEMM, not
    GEMV), softmax over the batch, per-tensor quantize."""
    rng = np.random.default_rng(20)
    consts = {
        "wg": enc.Dense(rng.standard_normal((4, 2, 3, 3)).astype(np.float32)),
        "d3": enc.Dense(rng.standard_normal((4, 1, 3, 3)).astype(np.float32)),
        "d5": enc.Int8PerChannel.from_dense(rng.standard_normal((4, 1, 5, 5)).astype(np.float32)),
        "wl": enc.Dense(rng.standard_normal((5, 60)).astype(np.float32)),
    }
    shapes = {"x": (3, 4, 9, 9), "g": (3, 4, 5, 5), "a": (3, 4, 5, 5), "b": (3, 4, 5, 5)}
    shapes.update({"s": (3, 4, 5, 5), "c": (3, 4, 10, 5), "p": (3, 4, 5, 3), "f": (3, 60), "l": (3, 5)})
    values = {k: Value(k, v) for k, v in shapes.items()}
    values.update({"y": Value("y", (3, 5)), "q": Value("q", (3, 5), "u8")})
    values.update({k: Value(k, tuple(v.shape)) for k, v in consts.items()})
    pool = {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1, 1, 1), "count_include_pad": 1}
    quant = {"scale": (0.01,), "zero_point": (0,), "axis": 1}
    nodes = (
        Node("conv2d", "grouped", ("x", "wg"), ("g",), freeze({"stride": 2, "padding": 1, "groups": 2})),
        Node("conv2d", "dw3s2", ("x", "d3"), ("a",), freeze({"stride": 2, "padding": 1, "groups": 4})),
        Node("conv2d", "dw5s2", ("x", "d5"), ("b",), freeze({"stride": 2, "padding": 2, "groups": 4})),
        Node("add", "add", ("g", "a"), ("s",)),
        Node("concat", "cat", ("s", "b"), ("c",), freeze({"axis": 2})),
        Node("avg_pool2d", "avgp", ("c",), ("p",), freeze(pool)),
        Node("reshape", "flat", ("p",), ("f",), freeze({"shape": (3, 60)})),
        Node("linear", "fc", ("f", "wl"), ("l",)),
        Node("softmax", "sm", ("l",), ("y",), freeze({"axis": 0})),
        Node("quantize", "qz", ("y",), ("q",), freeze(quant)),
    )
    return verify(Graph(("x",), ("q",), nodes, values, consts, {"model": "seed-misc"}))


def random_conv_net(seed: int) -> Graph:
    """A conv of random geometry (groups, depthwise, asymmetric kernel / stride / dilation /
    padding), random weight encoding, then a random pool: byte mutations rarely change a geometry
    consistently (attrs and output shape together), so the seeds bring the variety."""
    rng = np.random.default_rng(1000 + seed)
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 12)), int(rng.integers(1, 12))
    if rng.random() < 0.3:  # depthwise
        ci = co = groups = int(rng.integers(1, 7))
    else:
        groups = int(rng.choice([1, 1, 2, 3]))
        ci, co = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 5))
    kh, kw = (int(k) for k in rng.integers(1, 6, 2))
    sh, sw, dh, dw = (int(v) for v in rng.integers(1, [4, 4, 3, 3]))
    pad = tuple(int(p) for p in rng.integers(0, 3, 4))
    eh, ew = h + pad[0] + pad[2] - dh * (kh - 1) - 1, w + pad[1] + pad[3] - dw * (kw - 1) - 1
    if eh < 0 or ew < 0:  # the kernel does not fit: pad the input instead
        h, w = h - min(eh, 0), w - min(ew, 0)
        eh, ew = max(eh, 0), max(ew, 0)
    ho, wo = eh // sh + 1, ew // sw + 1
    kind = str(rng.choice(ENCODINGS))
    if kind.startswith("bsr") and (co // groups) % int(kind[3:]):  # blocks stay inside a group
        kind = "bsr1"
    consts = {"w": _encode(rng.standard_normal((co, ci // groups, kh, kw)).astype(np.float32), kind, rng)}
    inputs = ["x", "w"]
    if rng.random() < 0.5:
        consts["b"] = enc.Dense(rng.standard_normal(co).astype(np.float32))
        inputs.append("b")
    act = str(rng.choice(["none", "relu", "relu6", "hardswish"]))
    conv = {"stride": (sh, sw), "dilation": (dh, dw), "padding": pad, "groups": groups, "act": act}
    pk = (int(rng.integers(1, min(ho, 3) + 1)), int(rng.integers(1, min(wo, 3) + 1)))
    ps = tuple(int(v) for v in rng.integers(1, 3, 2))
    pp = (int(rng.integers(0, pk[0] // 2 + 1)), int(rng.integers(0, pk[1] // 2 + 1)))
    ceil_mode = int(rng.integers(0, 2))
    ph = pool_out(ho, pk[0], ps[0], pp[0], pp[0], bool(ceil_mode))
    pw = pool_out(wo, pk[1], ps[1], pp[1], pp[1], bool(ceil_mode))
    pool_op = str(rng.choice(["max_pool2d", "avg_pool2d"]))
    pool = {"kernel": pk, "stride": ps, "padding": (pp[0], pp[1], pp[0], pp[1]), "ceil_mode": ceil_mode}
    if pool_op == "avg_pool2d":
        pool["count_include_pad"] = int(rng.integers(0, 2))
    values = {
        "x": Value("x", (n, ci, h, w)),
        "c": Value("c", (n, co, ho, wo)),
        "y": Value("y", (n, co, ph, pw)),
        **{k: Value(k, tuple(v.shape)) for k, v in consts.items()},
    }
    nodes = (
        Node("conv2d", "conv", tuple(inputs), ("c",), freeze(conv)),
        Node(pool_op, "pool", ("c",), ("y",), freeze(pool)),
    )
    return verify(Graph(("x",), ("y",), nodes, values, consts, {"model": f"seed-random-{seed}"}))


def write_v10(graph: Graph, path: Path) -> None:
    """Write `graph` as format 1.0 did: codebooks carry (bits, groups), no flags param. Only for
    codebooks whose flags would be 0 (int32 group map, row scales stored)."""
    blobs_of = artifact._blobs_of

    def without_flags(e: enc.WeightEncoding) -> tuple[list[np.ndarray], list[int]]:
        blobs, params = blobs_of(e)
        assert not (isinstance(e, enc.Codebook) and params[2]), "only flags-0 codebooks have a 1.0 form"
        return blobs, params[:2] if isinstance(e, enc.Codebook) else params

    with mock.patch.object(artifact, "_blobs_of", without_flags):
        raw = bytearray(artifact.serialize(graph))
    struct.pack_into("<H", raw, 10, 0)  # minor 0 (the header's bytes [0, 64) are outside the CRC)
    artifact.atomic_write_bytes(path, bytes(raw))


def quant_net() -> Graph:
    """A split model's tail: a u8 graph input, dequantize, relu6, quantize (per channel)."""
    attrs = freeze({"scale": (0.05, 0.1, 0.02), "zero_point": (128, 100, 3), "axis": 1})
    shape = (1, 3, 4, 5)
    values = {
        "q": Value("q", shape, "u8"),
        "x": Value("x", shape),
        "r": Value("r", shape),
        "y": Value("y", shape, "u8"),
    }
    nodes = (
        Node("dequantize", "dq", ("q",), ("x",), attrs),
        Node("relu6", "r6", ("x",), ("r",)),
        Node("quantize", "qz", ("r",), ("y",), attrs),
    )
    return verify(Graph(("q",), ("y", "r"), nodes, values, {}, {"model": "seed-quant", "split": "q"}))


def write_seeds(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    graphs = {f"conv-{k}": conv_net(k, i) for i, k in enumerate(ENCODINGS)}
    graphs.update({f"dw-{k}": depthwise_net(k, 10 + i) for i, k in enumerate(("dense", "int8", "cb4"))})
    graphs["pools"] = pool_net()
    graphs["quant"] = quant_net()
    graphs["misc"] = misc_net()
    graphs.update({f"random-{i}": random_conv_net(i) for i in range(RANDOM_SEEDS)})
    paths = []
    for name, graph in graphs.items():
        path = out / f"{name}.efm"
        write_artifact(graph, path)
        paths.append(path)
    paths.append(out / "conv-cb2g257s-v1.0.efm")
    write_v10(conv_net("cb2g257s", 30), paths[-1])
    return paths


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    paths = write_seeds(Path(argv[1]))
    total = sum(p.stat().st_size for p in paths)
    print(f"fuzz seeds: {len(paths)} artifacts, {total} bytes in {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
