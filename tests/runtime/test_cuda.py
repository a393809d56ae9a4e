"""The CUDA kernel library (csrc/cuda) builds with nvcc for Jetson Orin (sm_87) and H100/H200 (sm_90),
rejects sm_53 with the on-board recipe, and its test program matches the scalar CPU kernels: on a GPU
where there is one, and everywhere on the CPU simulation of CUDA (csrc/cuda/sim), which runs the same
kernel sources (indexing, bounds, barriers, shuffles) without nvcc or a GPU."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgefit.compiler import encodings as enc
from edgefit.compiler import reference
from edgefit.compiler.artifact import write_artifact
from edgefit.compiler.frontend import capture
from edgefit.compiler.ir import Graph
from edgefit.compiler.passes import run_passes

pytestmark = pytest.mark.cuda

REPO = Path(__file__).resolve().parents[2]
ARCHS = (87, 90)
CU_FILES = sorted(p.name for p in (REPO / "csrc" / "cuda").glob("*.cu"))


def _tools() -> tuple[str, str]:
    nvcc, cmake = shutil.which("nvcc"), shutil.which("cmake")
    if nvcc is None:
        pytest.skip("nvcc is not installed (no CUDA toolkit on this machine)")
    if cmake is None:
        pytest.skip("cmake is not installed")
    return nvcc, cmake


def _configure(cmake: str, nvcc: str, build: Path, archs: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [cmake, "-S", str(REPO / "csrc" / "cuda"), "-B", str(build), f"-DEDGEFIT_CUDA_ARCHS={archs}",
         f"-DCMAKE_CUDA_COMPILER={nvcc}", "-DCMAKE_BUILD_TYPE=Release"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cuda_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The standalone CUDA build (library + test program) for sm_87 and sm_90, and its verbose log."""
    nvcc, cmake = _tools()
    build = tmp_path_factory.mktemp("cuda") / "build"
    conf = _configure(cmake, nvcc, build, ";".join(map(str, ARCHS)))
    assert conf.returncode == 0, conf.stdout + conf.stderr
    made = subprocess.run(
        [cmake, "--build", str(build), "-j", str(os.cpu_count() or 2), "--verbose"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert made.returncode == 0, made.stdout[-4000:] + made.stderr[-4000:]
    return build, made.stdout


def _fatbin_entries(binary: bytes) -> list[set[tuple[int, int]]]:
    """(kind, sm) of every entry of every embedded fatbin (kind 1 = PTX, 2 = SASS ELF).

    The layout is nvcc's (not a documented format, as read by cuobjdump, which this toolkit lacks):
    a 16-byte header (u32 magic 0xBA55ED50, u16 version, u16 header size, u64 payload size), then
    entries of u16 kind, u16, u32 header size, u64 payload size, ..., u32 sm at byte 28."""
    out = []
    for m in re.finditer(re.escape(struct.pack("<I", 0xBA55ED50)), binary):
        _, _, header, size = struct.unpack_from("<IHHQ", binary, m.start())
        p, end, entries = m.start() + header, m.start() + header + size, set()
        while p < end:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", binary, p)
            entries.add((kind, struct.unpack_from("<I", binary, p + 28)[0]))
            p += entry_header + payload
        out.append(entries)
    return out


def test_cuda_library_compiles_for_orin_and_hopper(cuda_build):
    build, log = cuda_build
    # Every kernel file was compiled with SASS for both architectures ...
    for name in CU_FILES:
        compile_cmd = re.compile(rf"nvcc .* -c \S*/csrc/cuda/{re.escape(name)}\b")
        line = next((ln for ln in log.splitlines() if compile_cmd.search(ln)), None)
        assert line is not None, f"no nvcc command for {name} in the build log"
        for sm in ARCHS:
            assert f"code=[compute_{sm},sm_{sm}]" in line, f"{name} not compiled for sm_{sm}"
    # ... and the linked test program carries sm_87 and sm_90 machine code for every translation
    # unit (the 9 kernel files and the test), not just PTX to be JIT-compiled on the board.
    fatbins = _fatbin_entries((build / "edgefit_cuda_tests").read_bytes())
    assert len(fatbins) >= len(CU_FILES) + 1, f"found {len(fatbins)} fatbins"
    for entries in fatbins:
        assert {(2, sm) for sm in ARCHS} <= entries, entries
    assert (build / "libedgefit_cuda.a").stat().st_size > 0


def test_cuda_kernels_match_scalar_on_a_gpu(cuda_build):
    build, _ = cuda_build
    run = subprocess.run([str(build / "edgefit_cuda_tests")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    if "no CUDA device: skipped" in run.stdout:
        pytest.skip("no NVIDIA GPU here: edgefit_cuda_tests ran and found no CUDA device")
    assert re.search(r"checked against scalar: \d+ cases, 0 failures", run.stdout), run.stdout[-4000:]


def _sim_build(build: Path, sanitize: bool) -> Path:
    """The kernels, their test program and CudaRuntime built as C++ on the CUDA simulation."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    conf = subprocess.run(
        [cmake, "-S", str(REPO / "csrc" / "cuda"), "-B", str(build), "-DEDGEFIT_CUDA_SIM=ON",
         f"-DEDGEFIT_SANITIZE={'ON' if sanitize else 'OFF'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert conf.returncode == 0, conf.stdout + conf.stderr
    made = subprocess.run(
        [cmake, "--build", str(build), "-j", "2"], capture_output=True, text=True, timeout=900
    )
    assert made.returncode == 0, made.stdout[-4000:] + made.stderr[-4000:]
    return build


@pytest.fixture(scope="module")
def sim_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sim_build(tmp_path_factory.mktemp("cuda-sim") / "build", sanitize=False)


def _check_sim_kernels(build: Path) -> None:
    run = subprocess.run([str(build / "edgefit_cuda_sim_tests")], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "CPU simulation" in run.stdout
    found = re.search(r"checked against scalar: (\d+) cases, 0 failures", run.stdout)
    assert found and int(found.group(1)) >= 700, run.stdout[-4000:]


def test_cuda_kernels_match_scalar_on_the_cpu_simulation(sim_build):
    _check_sim_kernels(sim_build)


@pytest.mark.slow
def test_cuda_code_on_the_cpu_simulation_under_asan_and_ubsan(tmp_path, h):
    """Out-of-bounds device reads or writes and undefined behaviour in kernel or executor code abort here."""
    build = _sim_build(tmp_path / "asan", sanitize=True)
    _check_sim_kernels(build)
    _check_runtime(build / "edgefit_cuda_sim_run", tmp_path / "runtime", h)


class _Net(nn.Module):
    """Every op family once: conv (BN folded, relu fused), depthwise + hardswish, block-sparse 1x1
    with relu6, codebook 3x3, add, concat, max / avg pool (ceil_mode), global pool, linear, softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.pw, self.cb = nn.Conv2d(16, 24, 1), nn.Conv2d(24, 24, 3, 1, 1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.avg = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
        self.fc = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = F.hardswish(self.dw(x))
        y = F.relu6(self.pw(x))
        z = torch.cat([self.cb(y) + y, y], 1)
        z = F.adaptive_avg_pool2d(self.avg(self.pool(z)), 1).flatten(1)
        return torch.softmax(self.fc(z), -1)


def _model_graph() -> tuple[Graph, dict[str, np.ndarray]]:
    torch.manual_seed(0)
    m = _Net().eval()
    rng = np.random.default_rng(0)
    pw = m.pw.weight.detach().numpy() * (rng.random(m.pw.weight.shape) < 0.3)
    idx = rng.integers(0, 16, size=(24, 24 * 9))
    table = (rng.standard_normal((2, 16)) * 0.2).astype(np.float32)
    plan = {
        "pw.weight": enc.BlockSparse.from_dense(pw.astype(np.float32), 2),
        "cb.weight": enc.Codebook.from_indices(tuple(m.cb.weight.shape), 4, idx, table, np.arange(24) % 2),
    }
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
        for name, e in plan.items():
            m.get_parameter(name).copy_(torch.from_numpy(e.to_dense()))
    x = torch.randn(2, 3, 23, 21)
    graph = run_passes(capture(m, (x,), plan=plan))
    return graph, {graph.inputs[0]: x.numpy()}


def _single_op_graphs(h) -> list[tuple]:
    rng = np.random.default_rng(1)
    out = []
    x2 = rng.standard_normal((3, 40)).astype(np.float32)
    for kind in ("bsr4", "cb3g2", "int8", "dense"):  # linear: batch as the pixel axis for sparse / codebook
        w = h.sparse_weights(rng, (12, 40), 0.4, 4)
        g = h.single_op(
            "linear", {"x": ((3, 40), "f32")}, {"w": h.encode(w, kind)}, (3, 12), {"act": "hardswish"}
        )
        out.append((g, {"x": x2}))
    x4 = (rng.standard_normal((1, 6, 9, 8)) * 3).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    g = h.single_op(
        "conv2d", {"x": ((1, 6, 9, 8), "f32")}, {"w": h.encode(w, "int8")}, (1, 8, 5, 4),
        {"stride": (2, 2), "padding": (1, 1, 1, 0), "groups": 2, "act": "relu"},
    )  # fmt: skip
    out.append((g, {"x": x4}))
    for kind in ("bsr1", "cb5"):  # k x k sparse / codebook: im2col + spmm, or one cb_conv2d
        w = h.sparse_weights(rng, (4, 6, 3, 3), 0.5)
        g = h.single_op(
            "conv2d",
            {"x": ((1, 6, 9, 8), "f32")},
            {"w": h.encode(w, kind)},
            (1, 4, 9, 8),
            {"padding": (1,) * 4},
        )
        out.append((g, {"x": x4}))
    # A grouped, strided codebook conv over a batch: codes decoded and im2col gathered in one kernel.
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    x4b = (rng.standard_normal((2, 6, 9, 8)) * 3).astype(np.float32)
    g = h.single_op(
        "conv2d", {"x": ((2, 6, 9, 8), "f32")}, {"w": h.encode(w, "cb4")}, (2, 8, 5, 4),
        {"stride": (2, 2), "padding": (1, 1, 1, 0), "groups": 2, "act": "relu"},
    )  # fmt: skip
    out.append((g, {"x": x4b}, "cuda cb_conv2d"))
    # Codebook depthwise filters: decoded once at load, then the depthwise kernel.
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    g = h.single_op(
        "conv2d", {"x": ((1, 6, 9, 8), "f32")}, {"w": h.encode(w, "cb4")}, (1, 6, 5, 8),
        {"stride": (2, 1), "padding": (1, 1, 1, 1), "groups": 6, "act": "relu6"},
    )  # fmt: skip
    out.append((g, {"x": x4}, "cuda f32_dwconv2d"))
    q = {"scale": (0.05, 0.1, 0.02, 0.07, 0.04, 0.03), "zero_point": (128, 0, 255, 3, 77, 128), "axis": 1}
    out.append(
        (
            h.single_op("quantize", {"x": ((1, 6, 9, 8), "f32")}, {}, (1, 6, 9, 8), q, out_dtype="u8"),
            {"x": x4},
        )
    )
    u8 = rng.integers(0, 256, (1, 6, 9, 8)).astype(np.uint8)
    out.append((h.single_op("dequantize", {"x": ((1, 6, 9, 8), "u8")}, {}, (1, 6, 9, 8), q), {"x": u8}))
    sc, sh = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    g = h.single_op(
        "channel_affine", {"x": ((1, 6, 9, 8), "f32")}, {"scale": enc.Dense(sc), "shift": enc.Dense(sh)},
        (1, 6, 9, 8), {"act": "relu6"},
    )  # fmt: skip
    out.append((g, {"x": x4}))
    return out


def _run_model(
    runner: Path, graph: Graph, feeds: dict[str, np.ndarray], d: Path, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    d.mkdir(parents=True)
    write_artifact(graph, d / "m.efm")
    paths = []
    for i, name in enumerate(graph.inputs):
        np.save(d / f"in{i}.npy", feeds[name])
        paths.append(str(d / f"in{i}.npy"))
    return subprocess.run(
        [str(runner), *options, str(d / "m.efm"), str(d), *paths],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _check_runtime(runner: Path, tmp_path: Path, h) -> None:
    """CudaRuntime over a whole model and single ops, every node on its CUDA kernel, against the
    numpy reference (on a GPU or on the CPU simulation, whichever `runner` was built for)."""
    # Cases are (graph, feeds[, the kernel its node must run]).
    for i, (graph, feeds, *kernel) in enumerate([_model_graph(), *_single_op_graphs(h)]):
        run = _run_model(runner, graph, feeds, tmp_path / str(i))
        if "no CUDA device" in run.stderr:
            pytest.skip("no NVIDIA GPU here: edgefit_cuda_run found no CUDA device")
        assert run.returncode == 0, run.stderr
        want = reference.run(graph, feeds)
        for j, name in enumerate(graph.outputs):
            got = np.load(tmp_path / str(i) / f"{j}.npy")
            assert got.dtype == want[name].dtype and got.shape == want[name].shape
            if got.dtype == np.uint8:
                assert np.array_equal(got, want[name]), f"case {i}: quantized codes differ"
            else:
                assert h.rel_err(got, want[name]) < 1e-5, f"case {i}: {run.stdout}"
        assert all(k in run.stdout for k in kernel), f"case {i}: {run.stdout}"
        if i == 0:  # the model: every op family went through its CUDA kernel
            for kernel in ("f32_conv2d", "f32_dwconv2d", "f32_spmm", "cb_conv2d", "copy_2d", "f32_maxpool2d",
                           "f32_avgpool2d", "f32_global_avgpool", "f32_linear", "f32_softmax", "f32_vadd"):  # fmt: skip
                assert f"cuda {kernel}" in run.stdout, run.stdout


def test_cuda_runtime_matches_the_reference_on_the_cpu_simulation(sim_build, tmp_path, h):
    """Weights uploaded once, activations kept on the device, one stream: CudaRuntime on the simulation."""
    _check_runtime(sim_build / "edgefit_cuda_sim_run", tmp_path, h)


def test_cuda_runner_profiles_every_node_on_the_cpu_simulation(sim_build, tmp_path):
    """`edgefit_cuda_run --profile N`: a device time for every node (CUDA events), the whole-run
    median, outputs still right; a count that is not a positive integer is refused."""
    graph, feeds = _model_graph()
    runner = sim_build / "edgefit_cuda_sim_run"
    run = _run_model(runner, graph, feeds, tmp_path / "ok", ("--profile", "2"))
    assert run.returncode == 0, run.stderr
    timed = re.findall(r"^(\S+)\s+\S+\s+.*?\s(\d+\.\d) us$", run.stdout, re.M)
    assert [name for name, _ in timed] == [n.name for n in graph.nodes], run.stdout
    assert sum(float(us) for _, us in timed) > 0.0
    assert re.search(r"whole run median \d+\.\d+ ms over 2 runs", run.stdout), run.stdout
    want = reference.run(graph, feeds)[graph.outputs[0]]
    assert np.abs(np.load(tmp_path / "ok" / "0.npy") - want).max() <= 1e-5 * np.abs(want).max()
    bad = _run_model(runner, graph, feeds, tmp_path / "bad", ("--profile", "two"))
    assert bad.returncode == 2 and "--profile takes a run count" in bad.stderr, bad.stderr


def test_cuda_runtime_matches_the_reference_on_a_gpu(cuda_build, tmp_path, h):
    _check_runtime(cuda_build[0] / "edgefit_cuda_run", tmp_path, h)


def test_jetson_nano_arch_is_refused_with_the_board_recipe(tmp_path):
    nvcc, cmake = _tools()
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    if re.search(r"release 10\.2\b", version):
        pytest.skip("this nvcc is CUDA 10.2, which does build sm_53")
    conf = _configure(cmake, nvcc, tmp_path / "nano", "53")
    assert conf.returncode != 0
    assert "sm_53 (Jetson Nano)" in conf.stderr and "cuda-10.2/bin/nvcc" in conf.stderr, conf.stderr


def _conv_artifact(h, tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    g = h.single_op(
        "conv2d", {"x": ((1, 4, 9, 9), "f32")}, {"w": h.encode(w, "bsr2")}, (1, 8, 9, 9),
        {"padding": (1, 1, 1, 1), "act": "relu"},
    )  # fmt: skip
    write_artifact(g, tmp_path / "m.efm")
    return tmp_path / "m.efm", {"x": rng.standard_normal((1, 4, 9, 9)).astype(np.float32)}


def test_session_device_must_be_cpu_or_cuda(h, tmp_path):
    from edgefit.errors import UserError
    from edgefit.runtime.session import Session

    path, _ = _conv_artifact(h, tmp_path)
    with pytest.raises(UserError, match="device must be 'cpu' or 'cuda'"):
        Session(path, device="tpu")


def test_session_on_cuda_matches_cpu_or_says_why_not(h, tmp_path):
    """device="cuda": the same outputs as the CPU session on a GPU; otherwise one clear UserError
    (a build without EDGEFIT_CUDA, or a CUDA build on a machine without a GPU)."""
    from edgefit.errors import UserError
    from edgefit.runtime.session import Session

    path, feeds = _conv_artifact(h, tmp_path)
    if not getattr(h.native, "cuda", False):
        with pytest.raises(UserError, match="no CUDA support: rebuild it on the board with"):
            Session(path, device="cuda")
        return
    try:
        gpu = Session(path, device="cuda")
    except UserError as exc:
        assert "no CUDA device" in str(exc)
        pytest.skip(f"no NVIDIA GPU here: {exc}")
    assert gpu.isa == "cuda" and "cuda f32" in gpu.kernel_of("n0")
    want = Session(path).run(feeds)["y"]
    assert h.rel_err(gpu.run(feeds)["y"], want) < 1e-5
