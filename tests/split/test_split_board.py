"""Split computing with a board as the device: the board-side client (`edgefit.runtime.split.board`) runs
the head and talks to `edgefit serve` here. Fast tests run it as a host subprocess with only the files
shipped to the board; the `board` tests run it on the emulated Pi 4 (qemu) after a real flash."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgefit.runtime.split import onboard
from edgefit.runtime.split.board import REPORT_KEY, SECRET_KEY, pack_samples, unpack_samples
from edgefit.runtime.split.engine import SplitModel

from .conftest import SECRET

BOARD_RUN = Path(__file__).parents[2] / "runtime" / "deploy" / "board_run.py"


def _feed(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"x": x[None].astype(np.float32)}


@pytest.fixture(scope="module")
def splitlib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exactly what ensure_splitlib uploads, extracted here."""
    root = tmp_path_factory.mktemp("splitlib")
    for name, data in onboard._splitlib_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def deployed(split_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle as a version directory on a board holds it: bundle files + board_run.py."""
    d = tmp_path_factory.mktemp("deployed") / "current"
    shutil.copytree(split_bundle, d)
    shutil.copy(BOARD_RUN, d / "board_run.py")
    return d


def _isolated(splitlib: Path, code: str) -> list[str]:
    """python -S (no site: the editable install's import hook stays off) with the shipped files first and
    numpy's site-packages last, as on the board."""
    site = str(Path(np.__file__).parents[1])
    prelude = f"import sys; sys.path.insert(0, {str(splitlib)!r}); sys.path.append({site!r}); "
    return [sys.executable, "-S", "-c", prelude + code]


def _board_client(
    splitlib: Path, deployed: Path, samples: list[dict[str, np.ndarray]], *args: str, secret: bytes = SECRET
) -> tuple[subprocess.CompletedProcess[bytes], list[dict[str, np.ndarray]], dict]:
    code = "sys.argv[0] = 'board'; import runpy; runpy.run_module('edgefit.runtime.split.board', run_name='__main__')"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [*_isolated(splitlib, code), "--bundle", str(deployed), *args],
        input=pack_samples(samples, {SECRET_KEY: np.frombuffer(secret, dtype=np.uint8)}),
        capture_output=True,
        timeout=120,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        return proc, [], {}
    outs, extra = unpack_samples(proc.stdout)
    return proc, outs, json.loads(extra[REPORT_KEY].tobytes().decode())


def test_sample_packing_round_trips() -> None:
    samples = [{"x": np.arange(6, dtype=np.float32).reshape(1, 6)}, {"x": np.ones((1, 6), np.float32)}]
    data = pack_samples(samples, {SECRET_KEY: np.frombuffer(b"abc", np.uint8)})
    back, extra = unpack_samples(data)
    assert len(back) == 2 and extra[SECRET_KEY].tobytes() == b"abc"
    np.testing.assert_array_equal(back[0]["x"], samples[0]["x"])
    np.testing.assert_array_equal(back[1]["x"], samples[1]["x"])


def test_shipped_client_imports_without_torch(splitlib: Path) -> None:
    code = (
        "import sys; import edgefit.runtime.split.board, edgefit.runtime.split.client; import edgefit; "
        "print(edgefit.__file__); print('torch' in sys.modules, 'edgefit.runtime.session' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        _isolated(splitlib, code), capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out[0].startswith(str(splitlib)), out
    assert out[1:] == ["False", "False"]  # the board has neither torch nor the host's session


def test_board_client_split_matches_single_process(
    splitlib, deployed, split_bundle, server, digits_x
) -> None:
    model = SplitModel(split_bundle)
    samples = [_feed(x) for x in digits_x[:6]]
    proc, outs, report = _board_client(
        splitlib, deployed, samples, "--server", server.address, "--policy", "fail", "--warmup"
    )
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    assert len(outs) == len(samples) == len(report["samples"])
    fp32 = model.split_fp32_bytes()
    for feeds, out, rec in zip(samples, outs, report["samples"], strict=True):
        want = model.full(feeds)["classifier"]
        assert rec["mode"] == "split"
        # The board's head may run on another engine (float64 reference vs native float32) than this
        # host's model: a value on a rounding boundary can then take the neighbouring u8 code, which
        # moves the logits by about a quantization step's effect, never the prediction.
        assert out["classifier"].argmax() == want.argmax()
        np.testing.assert_allclose(out["classifier"], want, rtol=0, atol=1e-2 * np.abs(want).max())
        assert rec["bytes_sent"] <= 0.25 * fp32  # >= 75 % fewer than the unmodified fp32 split tensor
        assert rec["payload_bytes"] == model.head_part.spec(model.split_name).numel  # u8 bottleneck
    # Full offload sends the raw input; the server's full model gives the same answer.
    proc, full, report = _board_client(splitlib, deployed, samples[:2], "--server", server.address, "--mode",
                                       "full-offload")  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    assert [r["mode"] for r in report["samples"]] == ["full-offload"] * 2
    assert report["samples"][0]["payload_bytes"] == samples[0]["x"].nbytes
    np.testing.assert_allclose(full[1]["classifier"], model.full(samples[1])["classifier"], atol=1e-5)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_board_client_falls_back_or_fails_per_policy(splitlib, deployed, split_bundle, digits_x) -> None:
    model = SplitModel(split_bundle)
    samples = [_feed(digits_x[0])]
    dead = f"127.0.0.1:{_dead_port()}"
    proc, outs, report = _board_client(splitlib, deployed, samples, "--server", dead, "--timeout", "2")
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    rec = report["samples"][0]
    assert rec["mode"] == "local-fallback" and "refused" in rec["fallback_reason"]
    np.testing.assert_allclose(outs[0]["classifier"], model.full(samples[0])["classifier"], atol=1e-5)
    proc, _, _ = _board_client(splitlib, deployed, samples, "--server", dead, "--policy", "fail")
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode != 0 and err and err[-1].startswith("split inference failed:"), err[-3:]


def test_board_client_wrong_secret_is_one_line(splitlib, deployed, server, digits_x) -> None:
    proc, _, _ = _board_client(
        splitlib, deployed, [_feed(digits_x[0])], "--server", server.address, secret=b"not-the-secret-123"
    )
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode != 0 and "secret" in err[-1] and "Traceback" not in proc.stderr.decode(), err[-3:]


def test_splitlib_tar_is_what_the_board_gets(splitlib: Path) -> None:
    # ensure_splitlib's content hash changes with any shipped file: a stale board copy is never reused.
    files = onboard._splitlib_files()
    assert "edgefit/runtime/split/board.py" in files and files["edgefit/runtime/__init__.py"] == b""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert buf.tell() > sum(len(d) for d in files.values())


# --- on the emulated Pi 4 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def board_conn(board) -> object:
    """An SSH connection to the session's emulated Pi 4 (tests/conftest.py)."""
    from edgefit.runtime.deploy.ssh import BoardAddress, Connection

    return Connection(
        BoardAddress.parse(board.address), identity=board.identity, known_hosts=board.known_hosts
    )


@pytest.mark.board
@pytest.mark.qemu
@pytest.mark.slow
def test_split_on_the_emulated_pi(board_conn, split_bundle, server, digits_x) -> None:
    from edgefit.runtime.deploy import flash

    # The compiler records the split tolerance in the manifest, so flash's smoke test judges the u8
    # bottleneck's error by it.
    res = flash.flash(split_bundle, board_conn)  # + the NEON runtime
    assert res.smoke["ok"], res.smoke
    model = SplitModel(split_bundle)
    samples = [_feed(x) for x in digits_x[:4]]
    outs, report = onboard.board_split(
        board_conn, samples, server=server.address, secret=SECRET, policy="fail"
    )
    assert report["engine"] == "native (neon)"
    for feeds, out, rec in zip(samples, outs, report["samples"], strict=True):
        assert rec["mode"] == "split" and rec["bytes_sent"] <= 0.25 * model.split_fp32_bytes()
        want = model.full(feeds)["classifier"]
        assert out["classifier"].argmax() == want.argmax()
        # NEON vs this host: a u8 rounding flip at the bottleneck moves logits by one step at most
        np.testing.assert_allclose(out["classifier"], want, rtol=0, atol=5e-2 * np.abs(want).max())
    # Server down: the board finishes the tail itself.
    outs, report = onboard.board_split(
        board_conn, samples[:1], server=f"127.0.0.1:{_dead_port()}", secret=SECRET, timeout_s=3
    )
    assert report["samples"][0]["mode"] == "local-fallback"
    assert outs[0]["classifier"].argmax() == model.full(samples[0])["classifier"].argmax()
