"""`edgefit flash` and `run --board` against the emulated Pi 4, as a user would: compile -> flash ->
run on the board -> compare; and every way a deploy can go wrong leaves `current` as it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgefit.cli.main import main
from edgefit.compiler import reference
from edgefit.compiler.artifact import read_artifact
from edgefit.errors import UserError
from edgefit.runtime.board.lifecycle import BoardInfo
from edgefit.runtime.bundle import REFERENCE_OUTPUTS, Bundle, write_manifest
from edgefit.runtime.deploy import flash, remote_run
from edgefit.runtime.deploy.ssh import BoardAddress, Connection

pytestmark = [pytest.mark.board, pytest.mark.qemu]
Factory = Callable[..., Path]


@pytest.fixture
def conn(board: BoardInfo) -> Connection:
    return Connection(
        BoardAddress.parse(board.address), identity=board.identity, known_hosts=board.known_hosts
    )


def _links(conn: Connection) -> tuple[str, str, list[str]]:
    """(current, previous, entries of versions/) on the board."""
    out = conn.run(
        'cd "$HOME"/edgefit 2>/dev/null && { readlink current; echo @; readlink previous; echo @; ls -1a versions; }',
        check=False,
    ).stdout.decode()
    current, previous, versions = ([*out.split("@\n"), "", "", ""])[:3]
    return current.strip(), previous.strip(), [v for v in versions.split() if v not in (".", "..")]


def _flash(bundle: Path, conn: Connection, **kwargs: object) -> flash.FlashResult:
    return flash.flash(bundle, conn, with_runtime=False, **kwargs)  # type: ignore[arg-type]


def test_flash_smoke_and_run(bundle_factory: Factory, conn: Connection) -> None:
    bundle = bundle_factory(seed=1)
    res = _flash(bundle, conn)
    assert res.smoke["ok"] and res.smoke["engine"] == "numpy-reference"
    assert res.smoke["max_error"] < 1e-6  # the board's numpy vs this test's float64 numpy
    assert _links(conn)[0] == f"versions/{res.version}"
    assert res.version.startswith(flash.bundle_id(Bundle.load(bundle)))

    outputs, report = remote_run(conn, None, compare_reference=True)
    expected = Bundle.load(bundle).reference_outputs()
    assert report["ok"] and report["bundle"] == res.version
    np.testing.assert_allclose(outputs["y"], expected["y"], rtol=1e-5, atol=1e-6)

    # New inputs: the board's answer equals the host's reference interpreter on the same artifact.
    x = np.random.default_rng(7).standard_normal((1, 64)).astype(np.float32)
    outputs, report = remote_run(conn, {"x": x})
    host = reference.run(read_artifact(bundle / "model.efm"), {"x": x})
    np.testing.assert_allclose(outputs["y"], host["y"], rtol=1e-5, atol=1e-6)
    assert "ok" not in report  # no comparison was asked for


def test_checksum_corruption_is_detected(bundle_factory: Factory, conn: Connection, tmp_path: Path) -> None:
    before = _links(conn)

    def flip_a_byte(name: str, data: bytes) -> bytes:
        return data[:100] + bytes([data[100] ^ 0x40]) + data[101:] if name == "model.efm" else data

    with pytest.raises(
        flash.FlashError, match=r"checksum mismatch on the board for model\.efm.*nothing was switched"
    ):
        _flash(bundle_factory(seed=3), conn, _tamper=flip_a_byte)
    assert _links(conn) == before  # no new version, no .partial left behind

    # A bundle corrupted on this machine is refused before anything is sent.
    local = shutil.copytree(bundle_factory(seed=4), tmp_path / "corrupt")
    raw = bytearray((local / "model.efm").read_bytes())
    raw[-1] ^= 0xFF
    (local / "model.efm").write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"is corrupt \(checksum mismatch: model\.efm\)"):
        _flash(local, conn)
    assert _links(conn) == before


def test_failed_smoke_test_switches_nothing(bundle_factory: Factory, conn: Connection) -> None:
    before = _links(conn)
    bad = bundle_factory(seed=6)
    # Wrong reference outputs with consistent checksums: only the board's smoke inference can tell.
    ref = Bundle.load(bad).reference_outputs()
    np.savez(bad / REFERENCE_OUTPUTS, y=ref["y"] + 1.0)
    manifest = json.loads((bad / "manifest.json").read_text())
    write_manifest(bad, {k: v for k, v in manifest.items() if k not in ("checksums", "format", "version")})
    with pytest.raises(
        flash.FlashError, match=r"smoke test on the board failed \(max relative error .* > tolerance"
    ):
        _flash(bad, conn)
    assert _links(conn) == before


@pytest.mark.slow
def test_interrupted_transfer_leaves_previous_version(
    bundle_factory: Factory, board: BoardInfo, conn: Connection
) -> None:
    small = bundle_factory(seed=8)
    _flash(small, conn)
    current_before = _links(conn)[0]
    big = bundle_factory(seed=9, hidden=4096)  # ~1 MiB of weights: several seconds at 128 KiB/s
    env = {**os.environ, "EDGEFIT_KNOWN_HOSTS": board.known_hosts}
    cmd = [sys.executable, "-m", "edgefit.cli.main", "flash", str(big), "--board", board.address,
           "--no-runtime", "--limit-kbps", "128"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(v.endswith(".partial") for v in _links(conn)[2]):
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            time.sleep(0.2)
        time.sleep(1.0)  # well into the upload
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # flash and its ssh die mid-transfer
        proc.wait()
    current, _, versions = _links(conn)
    assert current == current_before
    partial = [v for v in versions if v.endswith(".partial")]
    assert partial, "the killed upload should have left its .partial directory"
    if partial:  # what the dead upload left: an incomplete .partial, never a version
        sizes = conn.run(f'cat "$HOME"/edgefit/versions/{partial[0]}/model.efm 2>/dev/null | wc -c').stdout
        assert int(sizes) < (big / "model.efm").stat().st_size
    outputs, report = remote_run(conn, None, compare_reference=True)
    assert report["ok"] and report["bundle"] == current.split("/")[-1]
    np.testing.assert_allclose(
        outputs["y"], Bundle.load(small).reference_outputs()["y"], rtol=1e-5, atol=1e-6
    )

    res = _flash(big, conn)  # the next flash succeeds and clears the stale .partial
    current, previous, versions = _links(conn)
    assert current == f"versions/{res.version}" and previous == current_before
    assert not [v for v in versions if v.endswith(".partial")]


def test_board_that_does_not_match_is_refused(bundle_factory: Factory, conn: Connection) -> None:
    before = _links(conn)
    with pytest.raises(flash.FlashError, match=r"does not match target x86_64: architecture aarch64"):
        _flash(bundle_factory(seed=11, target="x86_64"), conn)
    with pytest.raises(flash.FlashError, match=r"does not match target rpi5: CPU/model .*0xd08.*--force"):
        _flash(bundle_factory(seed=12, target="rpi5"), conn)
    assert _links(conn) == before


@pytest.mark.slow
def test_force_flashes_a_mismatched_board(bundle_factory: Factory, conn: Connection) -> None:
    res = _flash(bundle_factory(seed=12, target="rpi5"), conn, force=True)
    assert any("--force" in n for n in res.notes) and _links(conn)[0] == f"versions/{res.version}"


def test_unknown_host_key(
    bundle_factory: Factory, board: BoardInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    known = tmp_path / "known_hosts"
    monkeypatch.setenv("EDGEFIT_KNOWN_HOSTS", str(known))
    bundle = bundle_factory(seed=13)
    args = ["flash", str(bundle), "--board", board.address, "--no-runtime"]
    assert main(args) == 2
    err = capsys.readouterr().err
    host_key = Path(board.known_hosts).read_text().split()
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", board.known_hosts], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert f"unknown host key for [127.0.0.1]:{board.port} (ED25519 {fingerprint})" in err
    assert "--accept-new" in err and known.read_text() == ""

    assert main([*args, "--accept-new"]) == 0
    assert "flashed" in capsys.readouterr().out
    assert f"[127.0.0.1]:{board.port} {host_key[1]} {host_key[2]}" in known.read_text()
    assert main(["flash", "--rollback", "--board", board.address]) == 0  # now known: no --accept-new

    # A key that changed is refused even with --accept-new.
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known.write_text(
        f"[127.0.0.1]:{board.port} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n"
    )
    assert main([*args, "--accept-new"]) == 2
    assert "host key verification failed" in capsys.readouterr().err


def test_rollback(bundle_factory: Factory, conn: Connection) -> None:
    a, b = bundle_factory(seed=14), bundle_factory(seed=15)
    ra, rb = _flash(a, conn), _flash(b, conn)
    assert _links(conn)[:2] == (f"versions/{rb.version}", f"versions/{ra.version}")
    assert flash.rollback(conn)["current"] == f"versions/{ra.version}"
    outputs, report = remote_run(conn, None, compare_reference=True)
    assert report["ok"] and report["bundle"] == ra.version
    np.testing.assert_allclose(outputs["y"], Bundle.load(a).reference_outputs()["y"], rtol=1e-5, atol=1e-6)
    assert flash.rollback(conn)["current"] == f"versions/{rb.version}"  # and forward again
    assert _links(conn)[:2] == (f"versions/{rb.version}", f"versions/{ra.version}")


def test_inventory_target_must_match(bundle_factory: Factory, board: BoardInfo, tmp_path: Path) -> None:
    inv = tmp_path / "boards.toml"
    inv.write_text(f'[boards.pi-kitchen]\naddress = "{board.address}"\ntarget = "rpi5"\n')
    env = {**os.environ, "EDGEFIT_KNOWN_HOSTS": board.known_hosts}
    proc = subprocess.run(
        [sys.executable, "-m", "edgefit.cli.main", "flash", str(bundle_factory(seed=16)), "--boards", str(inv),
         "--name", "pi-kitchen", "--no-runtime"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "edgefit flash: error: the inventory says this board is a rpi5, the bundle is for rpi4"
    )
