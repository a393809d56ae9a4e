"""Session API: metadata, zero-copy inputs, input checks, threads=1 vs 2, thread safety, the arena
planner's peak, the `edgefit run` CLI and the standalone `edgefit-run` binary."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from edgefit.compiler import encodings as enc
from edgefit.compiler import reference
from edgefit.compiler.artifact import write_artifact
from edgefit.compiler.ir import Graph, Node, Value, freeze, verify
from edgefit.runtime import Session
from edgefit.runtime.session import InputError


def _mini_net(rng: np.random.Generator, sparse: bool = True) -> Graph:
    """conv3x3/2 -> relu6 -> dw3x3 -> 1x1 (sparse) -> add residual -> gap -> linear (codebook)."""
    c = 16
    w0 = rng.standard_normal((c, 3, 3, 3)).astype(np.float32) * 0.3
    wd = rng.standard_normal((c, 1, 3, 3)).astype(np.float32) * 0.3
    w1 = rng.standard_normal((c, c, 1, 1)).astype(np.float32) * 0.3
    w1[rng.random(w1.shape) < 0.8] = 0
    idx = rng.integers(0, 16, (10, c))
    fc = enc.Codebook.from_indices((10, c), 4, idx, rng.standard_normal((2, 16)) * 0.3, np.arange(10) % 2)
    v = {
        "x": Value("x", (1, 3, 32, 32)),
        "a": Value("a", (1, c, 16, 16)),
        "r": Value("r", (1, c, 16, 16)),
        "d": Value("d", (1, c, 16, 16)),
        "p": Value("p", (1, c, 16, 16)),
        "s": Value("s", (1, c, 16, 16)),
        "g": Value("g", (1, c, 1, 1)),
        "f": Value("f", (1, c)),
        "y": Value("y", (1, 10)),
    }
    consts = {
        "w0": enc.Dense(w0),
        "wd": enc.Dense(wd),
        "w1": enc.BlockSparse.from_dense(w1, 1) if sparse else enc.Dense(w1),
        "fc": fc,
    }
    for name, arr in consts.items():
        v[name] = Value(name, tuple(arr.shape))
    nodes = (
        Node("conv2d", "stem", ("x", "w0"), ("a",), freeze({"stride": (2, 2), "padding": (1, 1, 1, 1)})),
        Node("relu6", "act", ("a",), ("r",)),
        Node(
            "conv2d", "dw", ("r", "wd"), ("d",), freeze({"padding": (1, 1, 1, 1), "groups": c, "act": "relu"})
        ),
        Node("conv2d", "pw", ("d", "w1"), ("p",)),
        Node("add", "res", ("p", "r"), ("s",), freeze({"act": "none"})),
        Node("global_avg_pool", "gap", ("s",), ("g",)),
        Node("reshape", "flat", ("g",), ("f",), freeze({"shape": (1, c)})),
        Node("linear", "fc", ("f", "fc"), ("y",)),
    )
    return verify(Graph(("x",), ("y",), nodes, v, consts, {"model": "mini"}))


@pytest.fixture
def mini(tmp_path: Path) -> tuple[Path, Graph, np.ndarray]:
    rng = np.random.default_rng(0)
    g = _mini_net(rng)
    path = tmp_path / "mini.efm"
    write_artifact(g, path)
    return path, g, rng.standard_normal((1, 3, 32, 32)).astype(np.float32)


def test_metadata_and_kernels(mini, h):
    path, g, x = mini
    s = Session(path)
    assert s.inputs == [{"name": "x", "shape": (1, 3, 32, 32), "dtype": "float32"}]
    assert s.outputs[0]["name"] == "y"
    assert s.meta["model"] == "mini"
    kernels = {n["name"]: n["kernel"] for n in s.nodes}
    assert "spmm" in kernels["pw"] and "cb_gemm" in kernels["fc"] and "dwconv" in kernels["dw"]
    assert "im2col" in kernels["stem"]
    assert kernels["flat"] == "alias"
    names = {k["name"] for k in h.native.kernels()}
    assert {
        "f32_gemm_ukernel_4x8__scalar",
        "f32_spmm_ukernel_8x1__scalar",
        "cb_gemm_ukernel_4x8__scalar",
    } <= names
    s.run({"x": x})
    prof = s.profile()
    assert len(prof) == len(g.nodes) and all(p["us"] >= 0 for p in prof)
    # One thread never waits for a worker; with two, a node's wait is part of its time.
    assert all(p["wait_us"] == 0 for p in prof)
    two = Session(path, threads=2)
    two.run({"x": x})
    assert all(0 <= p["wait_us"] <= p["us"] for p in two.profile())


def test_matches_reference_and_threads(mini, h):
    path, g, x = mini
    want = reference.run(g, {"x": x})["y"]
    one = Session(path, threads=1).run({"x": x})["y"]
    two = Session(path, threads=2).run({"x": x})["y"]
    assert h.rel_err(one, want) < 2e-5
    np.testing.assert_array_equal(one, two)


def test_planner_reuses_memory(mini):
    path, _, _ = mini
    s = Session(path)
    # At most three 16x16x16 activations are live at once (relu6 and add work in place, reshape
    # aliases, the input is read in place), plus the stem's im2col scratch (27 x 256 floats).
    plane = 16 * 16 * 16 * 4
    assert s.peak_bytes <= 3 * plane + 27 * 256 * 4 + 1024, s.peak_bytes


def test_inputs_checked_and_zero_copy(mini):
    path, _g, x = mini
    s = Session(path)
    with pytest.raises(ValueError, match="shape"):
        s.run({"x": x[:, :, :16]})
    with pytest.raises(ValueError, match="missing input"):
        s.run({})
    with pytest.raises(ValueError, match="no input named"):
        s.run({"x": x, "z": x})
    # float64 and non-contiguous inputs are converted; results are the same.
    ref = s.run({"x": x})["y"]
    np.testing.assert_array_equal(s.run({"x": x.astype(np.float64)})["y"], ref)
    xt = np.asfortranarray(x)
    np.testing.assert_array_equal(s.run({"x": xt})["y"], ref)
    # The input array is read in place and never written.
    before = x.copy()
    s.run({"x": x})
    np.testing.assert_array_equal(x, before)


def test_bound_run_reads_inputs_in_place_into_the_same_outputs(mini):
    path, _g, x = mini
    s = Session(path, threads=2)
    frame = x.copy()
    once = s.bind({"x": frame})
    out = once.outputs["y"]
    assert once() is None and once.outputs["y"] is out  # the same array, filled again each call
    np.testing.assert_array_equal(out, s.run({"x": x})["y"])
    # The next frame written into the bound array in place is what the next call reads.
    other = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    frame[...] = other
    once()
    np.testing.assert_array_equal(out, s.run({"x": other})["y"])
    del s  # the bound run keeps its session alive
    once()
    np.testing.assert_array_equal(out, Session(path).run({"x": other})["y"])


def test_bind_refuses_what_it_cannot_read_in_place(mini):
    path, _g, x = mini
    s = Session(path)
    with pytest.raises(InputError, match="C-contiguous float32 array, not a float64 array"):
        s.bind({"x": x.astype(np.float64)})
    with pytest.raises(InputError, match="not a non-contiguous float32 array"):
        s.bind({"x": np.asfortranarray(x)})
    with pytest.raises(InputError, match="not a list"):
        s.bind({"x": x.tolist()})
    with pytest.raises(InputError, match="missing input 'x'"):
        s.bind({})
    with pytest.raises(InputError, match="no input named 'z'"):
        s.bind({"x": x, "z": x})
    with pytest.raises(InputError, match="shape"):
        s.bind({"x": np.ascontiguousarray(x[:, :, :16])})


def test_session_shared_by_threads(mini):
    path, _g, x = mini
    s = Session(path, threads=2)
    want = s.run({"x": x})["y"]
    errors = []

    def worker() -> None:
        for _ in range(20):
            if not np.array_equal(s.run({"x": x})["y"], want):
                errors.append("mismatch")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def _bundle(tmp_path: Path, graph: Graph, x: np.ndarray) -> Path:
    from edgefit.runtime.bundle import staging_dir, write_manifest

    out = tmp_path / "OUT"
    with staging_dir(out) as d:
        write_artifact(graph, d / "model.efm")
        np.savez(d / "reference_inputs.npz", x=x)
        np.savez(d / "reference_outputs.npz", **reference.run(graph, {"x": x}))
        write_manifest(d, {"backend": "native", "target": "x86_64-host", "artifacts": {"model": "model.efm"}})
    return out


def test_cli_run_compare_reference(mini, tmp_path, capsys):
    from edgefit.cli.main import main

    _path, g, x = mini
    out = _bundle(tmp_path, g, x)
    assert (
        main(["run", str(out), "--compare-reference", "--threads", "2", "--output", str(tmp_path / "y.npy")])
        == 0
    )
    text = capsys.readouterr().out
    assert "max abs error" in text and "top-1 agreement 100.0 %" in text
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), reference.run(g, {"x": x})["y"], rtol=1e-4, atol=1e-5
    )
    # A reference that disagrees makes the command fail with the figures.
    np.savez(out / "reference_outputs.npz", y=np.zeros((1, 10), np.float32) + np.arange(10))
    assert main(["run", str(out), "--compare-reference"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "nope")]) == 2
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(out), "--input", str(tmp_path / "x.npy"), "--repeat", "3"]) == 0
    assert "median" in capsys.readouterr().out
    np.save(tmp_path / "bad.npy", x[:, :2])
    assert main(["run", str(out), "--input", str(tmp_path / "bad.npy")]) == 2
    assert "expects" in capsys.readouterr().err
    assert (
        main(["run", str(out), "--input", str(tmp_path / "x.npy"), "--input", str(tmp_path / "x.npy")]) == 2
    )


def _runner() -> Path | None:
    import edgefit.runtime

    for base in edgefit.runtime.__path__:
        cand = Path(base) / "bin" / "edgefit-run"
        if cand.is_file():
            return cand
    repo = Path(__file__).resolve().parents[2]
    hits = sorted(repo.glob("build/*/edgefit-run"))
    return hits[0] if hits else shutil.which("edgefit-run") and Path(shutil.which("edgefit-run"))


def test_standalone_runner(mini, tmp_path):
    runner = _runner()
    if runner is None:
        pytest.skip("edgefit-run is not built (pip install -e . builds it)")
    path, g, x = mini
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run(
        [str(runner), str(path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"),
         "--threads", "2", "--repeat", "5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "median" in proc.stdout
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), reference.run(g, {"x": x})["y"], rtol=1e-4, atol=1e-5
    )
    bad = subprocess.run([str(runner), str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "edgefit-run: error:" in bad.stderr
