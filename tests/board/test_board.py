"""Emulated board lifecycle: `board up` gives a real sshd whose logins behave like a Pi 4
(aarch64 programs under qemu), and `board down` leaves no process behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edgefit.cli.main import main
from edgefit.runtime.board import lifecycle

pytestmark = [pytest.mark.board, pytest.mark.qemu]


def _ssh(info: lifecycle.BoardInfo, command: str) -> str:
    args = ["ssh", "-T", "-p", str(info.port), "-i", info.identity, "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={info.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            f"{info.user}@{info.host}", command]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd and lifecycle.is_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _qemu_below(pid: int) -> bool:
    """An emulated program runs in a session under this sshd."""
    for p in lifecycle.descendants(pid):
        try:
            if b"qemu-aarch64" in Path(f"/proc/{p}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_login_behaves_like_a_pi4(board: lifecycle.BoardInfo) -> None:
    out = _ssh(
        board,
        "uname -m; grep -m1 'CPU part' /proc/cpuinfo; cat /proc/device-tree/model | tr -d '\\000'; echo; "
        "python3 -c 'import platform, sys, numpy; print(platform.machine(), sys.version_info[:2], numpy.__version__)'; "
        "echo abc | sha256sum",
    )
    lines = out.splitlines()
    assert lines[0] == "aarch64"
    assert lines[1].split(":")[1].strip() == "0xd08"  # Cortex-A72
    assert lines[2] == "Raspberry Pi 4 Model B Rev 1.4"
    assert lines[3].startswith("aarch64 (3, 11) ")
    assert lines[4].split()[0] == hashlib.sha256(b"abc\n").hexdigest()  # the board's aarch64 sha256sum


def test_up_status_down_leaves_no_process(
    board: lifecycle.BoardInfo, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"pytest-life-{os.getpid()}"
    t0 = time.monotonic()
    assert main(["board", "up", "rpi4", "--name", name, "--json"]) == 0
    up_s = time.monotonic() - t0  # the root is cached by the session board: seconds, not minutes
    info = json.loads(capsys.readouterr().out)
    assert info["board"].startswith(f"{info['user']}@127.0.0.1:") and info["target"] == "rpi4"
    assert up_s < 30, f"a cached board up took {up_s:.1f} s"
    record = lifecycle.load(name)
    assert record is not None and lifecycle.is_running(record)
    try:
        # A session keeps a process tree under sshd; down must stop it too.
        keep = subprocess.Popen(
            ["ssh", "-T", "-p", str(record.port), "-i", record.identity, "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={record.known_hosts}", f"{record.user}@127.0.0.1", "sleep 300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _qemu_below(record.pid):
            time.sleep(0.2)
        under_sshd = lifecycle.descendants(record.pid)
        assert _qemu_below(record.pid), "the session's aarch64 sleep did not start"
        assert main(["board", "status", "--json"]) == 0
        listed = {b["name"]: b for b in json.loads(capsys.readouterr().out)}
        assert listed[name]["running"] is True
    finally:
        assert main(["board", "down", name]) == 0
        shutil.rmtree(lifecycle.state_dir(name), ignore_errors=True)
    assert "stopped" in capsys.readouterr().out
    keep.wait(timeout=30)
    for pid in [record.pid, *under_sshd]:
        assert not lifecycle.is_alive(pid), f"process {pid} survived board down"
    assert _processes_mentioning(str(lifecycle.state_dir(name))) == []
    assert main(["board", "down", name]) == 2  # its state is gone with the test
    assert f"no emulated board named {name!r}" in capsys.readouterr().err


def test_cannot_emulate_x86_board(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["board", "up", "x86_64"]) == 2
    assert "no emulated board for target 'x86_64'" in capsys.readouterr().err
