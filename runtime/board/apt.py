"""Downloads and unpacks Debian arm64 packages without touching the host's apt or dpkg state.

apt runs with private lists/cache/status directories under the edgefit cache, so no
`dpkg --add-architecture` or edit under /etc is needed; packages are unpacked with `dpkg-deb -x`
(not installed: no maintainer scripts run).
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

from edgefit.errors import UserError

#: How long downloaded package lists stay fresh before `apt-get update` runs again.
LISTS_MAX_AGE_S = 7 * 24 * 3600


class Apt:
    """apt-get for one foreign architecture with all of its state under `root`."""

    def __init__(self, root: Path, arch: str = "arm64") -> None:
        self.root = root
        self.arch = arch
        for sub in ("lists/partial", "cache/archives/partial", "debs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.status = root / "status"
        self.status.touch()  # an empty dpkg status: apt resolves full dependency closures

    def _options(self) -> list[str]:
        return [
            "-q",
            "-o", f"APT::Architecture={self.arch}",
            "-o", f"APT::Architectures={self.arch}",
            "-o", f"Dir::State::Lists={self.root / 'lists'}",
            "-o", f"Dir::Cache={self.root / 'cache'}",
            "-o", f"Dir::State::status={self.status}",
            "-o", "APT::Install-Recommends=false",
            "-o", "Debug::NoLocking=true",
        ]  # fmt: skip

    def _run(self, args: list[str], cwd: Path | None = None) -> str:
        # apt's own locking is off (its lock files are the system's); serialise our callers here.
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            proc = subprocess.run(
                ["apt-get", *self._options(), *args], cwd=cwd, capture_output=True, text=True, check=False
            )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise UserError(f"apt-get {args[0]} ({self.arch}) failed: {' | '.join(tail)}")
        return proc.stdout

    def update(self, force: bool = False) -> None:
        stamp = self.root / "lists" / ".updated"
        if not force and stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S:
            return
        self._run(["update"])
        stamp.touch()

    def closure(self, packages: list[str]) -> list[str]:
        """The packages (with dependencies) an install of `packages` would unpack, in apt's order."""
        out = self._run(["-s", "install", *packages])
        return [line.split()[1] for line in out.splitlines() if line.startswith("Inst ")]

    def download(self, packages: list[str]) -> list[Path]:
        """The .deb files of exactly `packages` (no dependencies), downloaded once into debs/."""
        debs = self.root / "debs"

        def find(pkg: str) -> Path | None:
            hits = sorted(debs.glob(f"{pkg}_*_{self.arch}.deb")) + sorted(debs.glob(f"{pkg}_*_all.deb"))
            return hits[0] if hits else None

        missing = [p for p in packages if find(p) is None]
        if missing:
            self._run(["download", *missing], cwd=debs)
        paths = []
        for pkg in packages:
            path = find(pkg)
            if path is None:
                raise UserError(f"apt-get download did not produce a .deb for {pkg} ({self.arch})")
            paths.append(path)
        return paths


def extract(debs: list[Path], dest: Path) -> None:
    """Unpack each .deb's data into `dest` (later packages win on conflicts, as dpkg would)."""
    dest.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
