"""The login side of an emulated board: the SSH session script and the PATH of qemu wrappers.

There is no binfmt handler, so an emulated program cannot start another aarch64 program. The
session's command line is therefore interpreted by the host's bash, whose PATH holds only
wrappers: each one execs the matching arm64 binary of the board's root under
`qemu-aarch64 -cpu <target cpu> -L ROOT`. Shells (sh, bash, dash) map to the host's shell with the
same PATH, so nested command lines keep running the board's binaries.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

#: The board's PATH, in the order Raspberry Pi OS uses.
BIN_DIRS = ("usr/local/bin", "usr/bin", "bin", "usr/sbin", "sbin")
SHELLS = {"sh": "/bin/sh", "dash": "/bin/sh", "bash": "/bin/bash", "rbash": "/bin/bash"}


def qemu_binary() -> str:
    path = shutil.which("qemu-aarch64")
    if path is None:
        from edgefit.errors import UserError

        raise UserError("qemu-aarch64 not found: install Debian's qemu-user (scripts/setup.sh does)")
    return path


def _resolve_in_root(root: Path, path: Path) -> Path | None:
    """Follow symlinks the way the board would: absolute link targets are inside ROOT."""
    for _ in range(32):
        if not path.is_symlink():
            return path if path.is_file() else None
        link = os.readlink(path)
        path = root / link.lstrip("/") if link.startswith("/") else path.parent / link
    return None


def write_wrappers(root: Path, bin_dir: Path, qemu_cpu: str) -> int:
    """(Re)write one wrapper per program of the board's PATH into `bin_dir`; returns the count."""
    if bin_dir.exists():
        shutil.rmtree(bin_dir)
    bin_dir.mkdir(parents=True)
    qemu = qemu_binary()
    count = 0
    for sub in BIN_DIRS:
        directory = root / sub
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            wrapper = bin_dir / entry.name
            if wrapper.exists():  # an earlier PATH entry wins, as on the board
                continue
            if entry.name in SHELLS:
                line = f'exec {SHELLS[entry.name]} "$@"'
            else:
                real = _resolve_in_root(root, entry)
                if real is None:
                    continue
                with open(real, "rb") as f:
                    head = f.read(128)
                if head.startswith(b"\x7fELF"):
                    line = f'exec {qemu} -cpu {qemu_cpu} -L {shlex.quote(str(root))} {shlex.quote(str(real))} "$@"'
                elif head.startswith(b"#!") and b"python" not in head.split(b"\n", 1)[0]:
                    # Shell scripts (zcat, gunzip...) run under the host shell and call wrapped programs.
                    line = f'exec /bin/sh {shlex.quote(str(real))} "$@"'
                else:
                    continue
            wrapper.write_text(f"#!/bin/sh\n{line}\n")
            wrapper.chmod(0o755)
            count += 1
    return count


def write_session(path: Path, *, bin_dir: Path, home: Path, name: str, target: str) -> None:
    """The sshd ForceCommand: run the client's command (or an interactive shell) as the board."""
    q = shlex.quote
    script = f"""#!/bin/bash
# edgefit emulated board {name} ({target}): programs are the board's aarch64 binaries under qemu.
export PATH={q(str(bin_dir))}
export HOME={q(str(home))}
export SHELL=/bin/bash LANG=C.UTF-8 EDGEFIT_EMULATED_BOARD={q(name)}
unset PYTHONDONTWRITEBYTECODE PYTHONPATH PYTHONHOME LD_LIBRARY_PATH
cd "$HOME" || exit 1
if [ -n "${{SSH_ORIGINAL_COMMAND:-}}" ]; then
  exec /bin/bash -c "$SSH_ORIGINAL_COMMAND"
fi
exec /bin/bash -i
"""
    path.write_text(script)
    path.chmod(0o755)
