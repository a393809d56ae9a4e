"""Does XNNPACK's sparse path engage for our DENSIFY-encoded weights? Counted on emulated aarch64.

XNNPACK never runs sparse (CHW) inference on x86 CPUs with AVX (`xnn_is_chw_compatible_config`), so
the check runs LiteRT under qemu-aarch64 in the emulated Pi root and compares guest instruction
counts (exact, unlike wall time on a shared machine) of a dense and a 90 %-sparse MobileNet-like stack.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgefit.compiler.encodings import BlockSparse, Dense

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

PLUGIN_SRC = Path(os.environ.get("EDGEFIT_QEMU_INSNCOUNT_SRC", "/work/shared/tools/qemu-insncount.c"))
BENCH = """
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.random.default_rng(0).standard_normal(d["shape"]).astype(np.float32))
for _ in range(int(sys.argv[2])):
    it.invoke()
"""


def mobilenet_like(builder, sparse: bool, size: int = 96, density: float = 0.1):
    """3x3/s2 stem, depthwise + 1x1 blocks, global pool: the subgraph XNNPACK can run sparse."""
    b = builder(seed=0)
    x = b.input("x", (1, 3, size, size))
    y = b.conv(x, b.weight((32, 3, 3, 3)), stride=(2, 2), padding=(1, 1, 1, 1), act="relu6")
    c = 32
    for co, s in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]:
        y = b.conv(y, b.weight((c, 1, 3, 3)), stride=(s, s), padding=(1, 1, 1, 1), groups=c, act="relu6")
        w = b.weight((co, c, 1, 1))
        w[b.rng.random(w.shape) > density] = 0
        y = b.conv(y, BlockSparse.from_dense(w) if sparse else Dense(w), act="relu6")
        c = co
    return b.graph(b.op("global_avg_pool", [y], (1, c, 1, 1)))


def _count(
    root: Path, litert: Path, plugin: Path, model: Path, invokes: int, script: Path
) -> tuple[int, int]:
    env = dict(os.environ, PYTHONPATH=f"{litert}:{root}/usr/lib/python3/dist-packages")
    cmd = [
        "qemu-aarch64",
        "-cpu",
        "cortex-a72",
        "-L",
        str(root),
        "-plugin",
        f"{plugin},match=fmla",
        "-d",
        "plugin",
        f"{root}/usr/bin/python3.11",
        str(script),
        str(model),
        str(invokes),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r"insns: (\d+)\s+fmla: (\d+)", out.stdout + out.stderr)
    assert m, out.stderr[-2000:]
    return int(m.group(1)), int(m.group(2))


def test_sparse_path_engages_on_aarch64(builder, tmp_path):
    from edgefit.compiler.backends.tflite import export_tflite
    from edgefit.runtime.board.rootfs import is_built, root_path

    if shutil.which("qemu-aarch64") is None or shutil.which("gcc") is None:
        pytest.skip("needs qemu-aarch64 and gcc")
    if not is_built("rpi4"):
        pytest.skip("the emulated rpi4 root is not built (edgefit board up rpi4)")
    litert = os.environ.get("EDGEFIT_LITERT_AARCH64")
    if not litert or not Path(litert, "ai_edge_litert").is_dir():
        pytest.skip("set EDGEFIT_LITERT_AARCH64 to an unpacked aarch64 cp311 ai-edge-litert wheel")
    if not PLUGIN_SRC.is_file():
        pytest.skip(f"QEMU instruction-count plugin source not found at {PLUGIN_SRC}")
    plugin = tmp_path / "libinsncount.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(plugin), str(PLUGIN_SRC)], check=True)
    script = tmp_path / "bench.py"
    script.write_text(BENCH)
    per_invoke = {}
    for sparse in (False, True):
        model = tmp_path / f"{sparse}.tflite"
        stats = export_tflite(mobilenet_like(builder, sparse), model, sparse="densify-op")
        assert stats["sparse_densify"] == sparse
        one, three = (_count(root_path("rpi4"), Path(litert), plugin, model, n, script) for n in (1, 3))
        per_invoke[sparse] = ((three[0] - one[0]) / 2, (three[1] - one[1]) / 2)
    dense_fmla, sparse_fmla = per_invoke[False][1], per_invoke[True][1]
    # 90 % zeros in the 1x1 weights: the sparse kernels do a fraction of the dense FMAs.
    assert sparse_fmla < 0.4 * dense_fmla, per_invoke
    assert per_invoke[True][0] < 0.7 * per_invoke[False][0], per_invoke
