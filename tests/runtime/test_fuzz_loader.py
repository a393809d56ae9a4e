"""The loader fuzzer: its seed corpus is real artifacts that reach every weight-encoding kernel, and
the libFuzzer target (clang, ASan + UBSan) builds and survives a fixed number of mutations."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgefit.runtime import Session

FUZZ_RUNS = 4000


def test_seeds_load_and_reach_every_kernel_family(h, tmp_path):
    paths = h.load_script("scripts/fuzz_seeds.py").write_seeds(tmp_path)
    kernels: set[str] = set()
    for path in paths:
        assert path.stat().st_size < 16 * 1024, f"{path.name}: seeds should stay small"
        sess = Session(path)
        feeds = {t["name"]: np.zeros(t["shape"], dtype=t["dtype"]) for t in sess.inputs}
        out = sess.run(feeds)
        assert all(np.isfinite(v.astype(np.float32)).all() for v in out.values())
        kernels.update(k for n in sess.nodes for k in n["kernel"].split(" + "))
    families = {"f32_gemm", "f32_gemv", "f32_spmm", "cb_gemm", "f32_dwconv", "f32_maxpool2d", "f32_avgpool2d"}
    families |= {"f32_quantize_u8", "u8_dequantize_f32", "f32_softmax", "memcpy", "alias"}
    missing = {f for f in families if not any(k.startswith(f) for k in kernels)}
    assert not missing, f"no seed reaches {sorted(missing)} (kernels used: {sorted(kernels)})"


def _libfuzzer_missing(tmp_path: Path) -> str | None:
    """Why the fuzzer cannot be built here, or None."""
    for tool in ("clang++", "cmake"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.sh installs clang and libclang-rt-14-dev)"
    src = tmp_path / "probe.cc"
    src.write_text(
        '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n'
    )
    probe = subprocess.run(
        ["clang++", "-fsanitize=fuzzer", str(src), "-o", str(tmp_path / "probe")],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"clang++ cannot link -fsanitize=fuzzer (libFuzzer runtime missing: libclang-rt-14-dev): {probe.stderr.strip()[:200]}"
    return None


@pytest.mark.slow
def test_fuzzer_builds_and_survives_mutations(repo_root, tmp_path):
    reason = _libfuzzer_missing(tmp_path)
    if reason:
        pytest.skip(reason)
    build = subprocess.run(["make", "-s", "fuzz-build"], cwd=repo_root, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    fuzzer = repo_root / "build" / "fuzz" / "fuzz_loader"
    seeds = repo_root / "build" / "fuzz" / "seeds"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run(
        [
            str(fuzzer),
            f"-runs={FUZZ_RUNS}",
            "-seed=1",
            f"-dict={repo_root / 'csrc' / 'tests' / 'fuzz_loader.dict'}",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
            str(corpus),
            str(seeds),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, f"the fuzzer found a crash (input saved under {tmp_path}):\n{log[-4000:]}"
    executed = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    assert executed, log[-2000:]
    assert int(executed.group(1)) >= FUZZ_RUNS
    # It got past the header: the mutations reached the graph parser, the validator and the kernels.
    cov = re.findall(r"cov: (\d+)", log)
    assert cov and int(cov[-1]) > 1000, log[-2000:]
