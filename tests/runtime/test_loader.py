"""The C++ loader accepts exactly what `write_artifact` writes and rejects corrupt or hostile files
(truncated, bit-flipped, wrong offsets, huge counts, bad indices) with an error, never a crash."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from edgefit.compiler import encodings as enc
from edgefit.compiler.artifact import ArtifactError, serialize
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify
from edgefit.runtime import Session


def _graph() -> Graph:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 6, 1, 1)).astype(np.float32)
    w[rng.random(w.shape) < 0.6] = 0
    idx = rng.integers(0, 16, size=(4, 8))
    values = {
        "x": Value("x", (1, 6, 3, 3)),
        "w": Value("w", (8, 6, 1, 1)),
        "b": Value("b", (8,)),
        "h": Value("h", (1, 8, 3, 3)),
        "f": Value("f", (1, 72)),
        "l": Value("l", (4, 72)),
        "y": Value("y", (1, 4)),
    }
    cb = enc.Codebook.from_indices(
        (4, 72), 4, np.resize(idx, (4, 72)), rng.standard_normal((2, 16)), np.array([0, 1, 0, 1])
    )
    nodes = (
        Node("conv2d", "conv", ("x", "w", "b"), ("h",), freeze({"act": "relu"})),
        Node("reshape", "flat", ("h",), ("f",), freeze({"shape": (1, 72)})),
        Node("linear", "fc", ("f", "l"), ("y",)),
    )
    consts = {"w": enc.BlockSparse.from_dense(w, 2), "b": enc.Dense(np.arange(8, dtype=np.float32)), "l": cb}
    return verify(Graph(("x",), ("y",), nodes, values, consts, {"model": "fuzz"}))


def _recrc(raw: bytearray) -> bytearray:
    struct.pack_into("<I", raw, 56, zlib.crc32(bytes(raw[64:])) & 0xFFFFFFFF)
    return raw


def test_valid_artifact_loads(h):
    raw = serialize(_graph())
    h.native.check_artifact(raw)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda r: r[:100], "does not match its header"),
        (lambda r: b"NOTEFIT\0" + r[8:], "bad magic"),
        (lambda r: r[:8] + struct.pack("<H", 2) + r[10:], "version 2"),
        (lambda r: r[:-1] + bytes([r[-1] ^ 1]), "checksum"),
        (lambda r: r[:24] + struct.pack("<Q", 1 << 62) + r[32:], "section offsets"),
        (lambda r: r[:40] + struct.pack("<Q", 65) + r[48:], "section offsets"),
    ],
    ids=["truncated", "magic", "major", "bitflip", "graph-offset", "data-align"],
)
def test_header_errors(h, mutate, message):
    raw = serialize(_graph())
    with pytest.raises(h.native.LoadError, match=message):
        h.native.check_artifact(bytes(mutate(raw)))


def _patch_graph(raw: bytes, find: bytes, replace: bytes) -> bytes:
    """Replace the first occurrence of `find` in the graph section and fix the checksum."""
    buf = bytearray(raw)
    goff, gsize = struct.unpack_from("<QQ", buf, 24)
    pos = bytes(buf[goff : goff + gsize]).find(find)
    assert pos >= 0
    buf[goff + pos : goff + pos + len(find)] = replace
    return bytes(_recrc(buf))


def test_hostile_fields(h, tmp_path):
    g = _graph()
    raw = serialize(g)
    # Column index out of range inside the block-sparse weight (valid checksum).
    bsr = g.constants["w"]
    buf = bytearray(raw)
    doff = struct.unpack_from("<Q", buf, 40)[0]
    col_pos = bytes(buf[doff:]).find(bsr.col_idx.astype("<i4").tobytes())
    struct.pack_into("<i", buf, doff + col_pos, 1000)
    with pytest.raises(h.native.LoadError, match="column index"):
        h.native.check_artifact(bytes(_recrc(buf)))
    # Codebook group index out of range: its u8 group map (format 1.1, no row scales stored) is
    # the file's last blob.
    buf = bytearray(raw)
    assert bytes(buf[-4:]) == bytes([0, 1, 0, 1])
    buf[-3] = 7
    with pytest.raises(h.native.LoadError, match="group index"):
        h.native.check_artifact(bytes(_recrc(buf)))
    # A huge string count, a huge dimension, an unknown op name.
    buf = bytearray(raw)
    goff = struct.unpack_from("<Q", buf, 24)[0]
    struct.pack_into("<I", buf, goff, 0xFFFFFFF0)
    with pytest.raises(h.native.LoadError, match=r"implausible|truncated"):
        h.native.check_artifact(bytes(_recrc(buf)))
    with pytest.raises(h.native.LoadError, match="unknown op"):
        h.native.check_artifact(_patch_graph(raw, b"reshape", b"reshapf"))
    # A declared output shape that disagrees with the op (would overflow a buffer if trusted).
    bad = serialize(
        Graph(g.inputs, g.outputs, g.nodes, {**g.values, "h": Value("h", (1, 8, 3, 3))}, g.constants, g.meta)
    )
    h.native.check_artifact(bad)
    wrong = dict(g.values)
    wrong["y"] = Value("y", (1, 5))
    with pytest.raises(h.native.LoadError, match="shape"):
        h.native.check_artifact(serialize(Graph(g.inputs, g.outputs, g.nodes, wrong, g.constants, g.meta)))
    # Through Session the same problems are ArtifactError (one line in the CLI).
    path = tmp_path / "bad.efm"
    path.write_bytes(raw[:-3])
    with pytest.raises(ArtifactError, match="truncated"):
        Session(path)


def test_random_mutations_never_crash(h):
    """A few hundred random corruptions, each with a fixed-up checksum so the parser sees them."""
    raw = serialize(_graph())
    rng = np.random.default_rng(42)
    rejected = 0
    for _ in range(400):
        buf = bytearray(raw)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(64, len(buf)))
            buf[pos] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            buf = buf[: int(rng.integers(64, len(buf)))]
            struct.pack_into("<Q", buf, 16, len(buf))
        try:
            # What the loader accepts (e.g. changed weight values) must also run safely.
            h.native.check_artifact(bytes(_recrc(buf)), run=True)
        except h.native.LoadError:
            rejected += 1
    # Mutations of weight values are legitimate files; structural ones must be caught.
    assert rejected > 50
