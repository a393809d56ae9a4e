"""The native artifact: every encoding round-trips exactly; corrupt files fail with a clear error."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from edgefit.compiler import encodings as enc
from edgefit.compiler.artifact import ArtifactError, deserialize, read_artifact, serialize, write_artifact
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify


def _weights(rng: np.random.Generator, shape: tuple[int, ...], sparsity: float = 0.0) -> np.ndarray:
    w = rng.standard_normal(shape).astype(np.float32)
    w[rng.random(shape) < sparsity] = 0.0
    return w


def _graph(weight: enc.WeightEncoding) -> Graph:
    o = weight.shape[0]
    values = {
        "x": Value("x", (1, weight.shape[1], 5, 5)),
        "w": Value("w", weight.shape),
        "b": Value("b", (o,)),
        "y": Value("y", (1, o, 5, 5)),
    }
    node = Node(
        "conv2d",
        "conv",
        ("x", "w", "b"),
        ("y",),
        freeze(
            {
                "stride": (1, 1),
                "padding": (0, 0, 0, 0),
                "dilation": (1, 1),
                "groups": 1,
                "act": "relu",
                "alpha": 0.5,
            }
        ),
        "model.py:12",
    )
    bias = enc.Dense(np.arange(o, dtype=np.float32))
    return verify(Graph(("x",), ("y",), (node,), values, {"w": weight, "b": bias}, {"model": "t"}))


def _encodings() -> list[enc.WeightEncoding]:
    rng = np.random.default_rng(0)
    w = _weights(rng, (8, 6, 1, 1), sparsity=0.8)
    idx = rng.integers(0, 16, size=(8, 6))
    cb = enc.Codebook.from_indices((8, 6, 1, 1), 4, idx, rng.standard_normal((2, 16)), np.array([0, 1] * 4))
    idx3 = rng.integers(0, 8, size=(4, 7))
    cb3 = enc.Codebook.from_indices((4, 7, 1, 1), 3, idx3, rng.standard_normal((1, 8)), np.zeros(4))
    return [
        enc.Dense(w),
        enc.Int8PerChannel.from_dense(w),
        enc.BlockSparse.from_dense(w, 1),
        enc.BlockSparse.from_dense(w, 2),
        enc.BlockSparse.from_dense(w, 4),
        cb,
        cb.scale_rows(np.linspace(0.5, 2.0, 8).astype(np.float32)),
        cb3,
    ]


@pytest.mark.parametrize("weight", _encodings(), ids=lambda e: f"{e.kind}-{e.shape}")
def test_every_encoding_round_trips_exactly(weight: enc.WeightEncoding, tmp_path) -> None:
    graph = _graph(weight)
    path = tmp_path / "m.efm"
    size = write_artifact(graph, path)
    assert size == path.stat().st_size
    back = read_artifact(path)
    assert back.nodes == graph.nodes
    assert dict(back.values) == dict(graph.values)
    assert back.meta["model"] == "t"
    np.testing.assert_array_equal(back.constants["w"].to_dense(), weight.to_dense())
    assert back.constants["w"].kind == weight.kind


def test_block_sparse_decodes_to_the_pruned_weight() -> None:
    rng = np.random.default_rng(1)
    w = _weights(rng, (8, 10), sparsity=0.7)
    np.testing.assert_array_equal(enc.BlockSparse.from_dense(w, 1).to_dense(), w)
    # blocks keep any column where one of the block's channels is non-zero
    b4 = enc.BlockSparse.from_dense(w, 4)
    np.testing.assert_array_equal(b4.to_dense(), w)
    assert b4.values.shape[1] == 4


@pytest.mark.parametrize("bits", range(2, 9))
def test_index_packing_round_trips(bits: int) -> None:
    rng = np.random.default_rng(bits)
    idx = rng.integers(0, 2**bits, size=(5, 13)).astype(np.uint8)
    packed = enc.pack_indices(idx, bits)
    assert packed.shape == (5, (13 * bits + 7) // 8)
    np.testing.assert_array_equal(enc.unpack_indices(packed, bits, 13), idx)


def test_four_bit_codes_are_low_nibble_first() -> None:
    packed = enc.pack_indices(np.array([[0x3, 0xA]], dtype=np.uint8), 4)
    assert packed.tolist() == [[0xA3]]


def test_header_and_data_alignment() -> None:
    raw = serialize(_graph(_encodings()[0]))
    data_offset = int.from_bytes(raw[40:48], "little")
    assert raw[:8] == b"EDGEFIT\0"
    assert data_offset % 64 == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:100], "does not match its header"),
        (lambda b: b"NOTMAGIC" + b[8:], "bad magic"),
        (lambda b: b[:8] + (7).to_bytes(2, "little") + b[10:], "version 7"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 0xFF]), "checksum"),
        (lambda b: b[:10], "too short"),
    ],
)
def test_corrupt_artifacts_fail_with_a_clear_error(mutate, message: str) -> None:
    raw = serialize(_graph(_encodings()[2]))
    with pytest.raises(ArtifactError, match=message):
        deserialize(mutate(raw))


def test_random_byte_flips_never_crash_the_reader() -> None:
    raw = bytearray(serialize(_graph(_encodings()[5])))
    rng = np.random.default_rng(3)
    for _ in range(300):
        mutated = bytearray(raw)
        for pos in rng.integers(0, len(raw), size=3):
            mutated[pos] = rng.integers(0, 256)
        with contextlib.suppress(ArtifactError):
            deserialize(bytes(mutated))
