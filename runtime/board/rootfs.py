"""Builds (once, cached) the aarch64 Debian 12 userland of an emulated board.

The root holds the arm64 .debs of python3.11, coreutils and friends unpacked with `dpkg-deb -x`,
numpy's aarch64 wheel installed by the host pip, the board's `/proc/cpuinfo`, device-tree model
and Jetson release file, and a byte-compiled standard library (emulated Python starts ~3x slower
without it, and `dpkg-deb -x` does not compile it).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgefit.errors import UserError
from edgefit.runtime.board import apt, profiles
from edgefit.runtime.board.paths import cache_dir

#: Bump when the recipe changes, so cached roots are rebuilt.
ROOTFS_VERSION = 1
PACKAGES = [
    "python3.11", "coreutils", "bash", "dash", "tar", "gzip", "sed", "grep", "findutils",
    "diffutils", "libstdc++6", "libgomp1",
]  # fmt: skip
#: pip does not widen a single platform tag: list every manylinux tag an aarch64 glibc 2.36 accepts.
MANYLINUX_AARCH64 = [
    "manylinux2014_aarch64",
    *(f"manylinux_2_{minor}_aarch64" for minor in (17, 24, 26, 27, 28, 31, 34, 35, 36)),
    "linux_aarch64",
]
BOARD_PYTHON = "3.11"
MARKER = ".edgefit-rootfs.json"


def board_dir(target: str) -> Path:
    return cache_dir() / "boards" / target


def root_path(target: str) -> Path:
    return board_dir(target) / "root"


def pip_target_args(python: str = BOARD_PYTHON) -> list[str]:
    """Host-pip options that select aarch64 CPython `python` wheels and nothing built from source."""
    abi = "cp" + python.replace(".", "")
    platforms = [arg for tag in MANYLINUX_AARCH64 for arg in ("--platform", tag)]
    return [
        "--only-binary=:all:", *platforms, "--python-version", python, "--implementation", "cp",
        "--abi", abi,
    ]  # fmt: skip


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time per target (a test session and a user may race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def is_built(target: str) -> bool:
    marker = root_path(target) / MARKER
    try:
        return json.loads(marker.read_text()).get("version") == ROOTFS_VERSION
    except (OSError, json.JSONDecodeError):
        return False


def ensure_rootfs(target: str, log: bool = True) -> Path:
    """The root of `target`'s emulated board, built on first use (minutes) and cached."""
    prof = profiles.profile(target)
    root = root_path(target)
    if is_built(target):
        return root
    with _locked(board_dir(target) / ".rootfs.lock"):
        if is_built(target):
            return root
        if log:
            print(f"board: building the aarch64 Debian 12 root for {target} (once)...", file=sys.stderr)
        tmp = Path(tempfile.mkdtemp(prefix=".root.", dir=board_dir(target)))
        try:
            _build(tmp, target, prof)
            if root.exists():
                shutil.rmtree(root)
            tmp.rename(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return root


def _build(root: Path, target: str, prof: profiles.Profile) -> None:
    packages_apt = apt.Apt(cache_dir() / "apt-arm64")
    packages_apt.update()
    closure = packages_apt.closure(PACKAGES)
    apt.extract(packages_apt.download(closure), root)

    # Debian's python3 symlink and /bin/sh come from maintainer scripts and packages we do not unpack.
    _symlink("python3.11", root / "usr/bin/python3")
    if not (root / "bin/sh").exists():
        _symlink("dash", root / "bin/sh")

    _install_wheels(root, ["numpy"])
    _write_identity(root, target, prof)

    # The host's Python 3.11 writes the same bytecode (magic) as the board's 3.11.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "-x", r"/test/|lib2to3/tests",
         str(root / "usr/lib/python3.11"), str(root / "usr/lib/python3/dist-packages")],
        check=False, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""}, capture_output=True,
    )  # fmt: skip
    if not (root / "usr/lib/python3.11/__pycache__").is_dir():
        raise UserError(f"byte-compiling the board's standard library in {root} failed")
    (root / MARKER).write_text(
        json.dumps({"version": ROOTFS_VERSION, "target": target, "packages": closure}, indent=1) + "\n"
    )


def _symlink(target: str, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists() and not link.is_symlink():
        link.symlink_to(target)


def _install_wheels(root: Path, requirements: list[str]) -> None:
    site = root / "usr/lib/python3/dist-packages"
    site.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    proc = subprocess.run(
        [*cmd, *pip_target_args(), *requirements], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise UserError(f"installing aarch64 wheels {requirements} into the board root failed: {tail}")


def _write_identity(root: Path, target: str, prof: profiles.Profile) -> None:
    """The files a program reads to learn which board it is on (see deploy's board_match)."""
    (root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
    (root / "proc/cpuinfo").write_text(prof.cpuinfo())
    (root / "proc/device-tree/model").write_bytes(prof.model.encode() + b"\0")
    if prof.tegra_release:
        (root / "etc/nv_tegra_release").write_text(prof.tegra_release + "\n")
    hostname = "raspberrypi" if target.startswith("rpi") else "jetson"
    (root / "etc/hostname").write_text(hostname + "\n")
