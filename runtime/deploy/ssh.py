"""SSH transport over the system OpenSSH client: key auth, host-key checking always on.

edgefit keeps its own known_hosts (`$EDGEFIT_KNOWN_HOSTS`, else `~/.config/edgefit/known_hosts`).
A host it has never seen is refused with the key's fingerprint unless the caller accepts new
keys; a changed key is always refused. Nothing secret (keys, passphrases) is ever logged.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgefit.errors import UserError
from edgefit.runtime.board.paths import config_dir

_ADDRESS_RE = re.compile(
    r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>\d+))?$"
)


@dataclass(frozen=True)
class BoardAddress:
    user: str
    host: str
    port: int = 22

    @staticmethod
    def parse(text: str) -> BoardAddress:
        m = _ADDRESS_RE.match(text.strip())
        if not m:
            raise UserError(
                f"bad board address {text!r}: expected USER@HOST[:PORT] (e.g. pi@raspberrypi.local)"
            )
        port = int(m["port"] or 22)
        if not 0 < port < 65536:
            raise UserError(f"bad port {port} in board address {text!r}")
        return BoardAddress(m["user"], m["host"].strip("[]"), port)

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH names this host in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


def default_known_hosts() -> Path:
    env = os.environ.get("EDGEFIT_KNOWN_HOSTS")
    return Path(env).expanduser() if env else config_dir() / "known_hosts"


class SSHError(UserError):
    """The board could not be reached or a remote command failed."""


class Connection:
    """Runs commands on one board with `ssh`; every call is a fresh, fully checked connection."""

    def __init__(
        self,
        address: BoardAddress,
        identity: str | os.PathLike[str] | None = None,
        known_hosts: str | os.PathLike[str] | None = None,
        accept_new: bool = False,
        connect_timeout_s: int = 15,
    ) -> None:
        self.address = address
        self.identity = Path(identity).expanduser() if identity else None
        if self.identity is not None and not self.identity.is_file():
            raise UserError(f"identity file {self.identity} not found")
        self.known_hosts = Path(known_hosts).expanduser() if known_hosts else default_known_hosts()
        self.accept_new = accept_new
        self.connect_timeout_s = connect_timeout_s
        self._host_checked = False

    def ssh_args(self) -> list[str]:
        args = [
            "ssh", "-T", "-p", str(self.address.port),
            "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=" + ("accept-new" if self.accept_new else "yes"),
            "-o", "HashKnownHosts=no",
            "-o", "UpdateHostKeys=no",
            "-o", "CheckHostIP=no",
            "-o", f"ConnectTimeout={self.connect_timeout_s}",
            "-o", "ServerAliveInterval=10",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip
        if self.identity is not None:
            args += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        return [*args, f"{self.address.user}@{self.address.host}"]

    def check_host_key(self) -> None:
        """Refuse an unknown host (showing its key fingerprints) unless new keys are accepted."""
        if self._host_checked:
            return
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        self.known_hosts.touch(exist_ok=True)
        found = subprocess.run(
            ["ssh-keygen", "-F", self.address.known_hosts_name, "-f", str(self.known_hosts)],
            capture_output=True, check=False,
        )  # fmt: skip
        if found.returncode != 0 and not self.accept_new:
            raise UserError(
                f"unknown host key for {self.address.known_hosts_name} ({fingerprints(self.address)}); "
                f"check it, then pass --accept-new to trust it (edgefit known_hosts: {self.known_hosts})"
            )
        self._host_checked = True

    def run(
        self, command: str, input: bytes | None = None, timeout_s: float | None = 600, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `command` (a shell command line) on the board; stdout/stderr come back as bytes."""
        self.check_host_key()
        try:
            proc = subprocess.run(
                [*self.ssh_args(), command], input=input, capture_output=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise SSHError(f"{self.address}: command timed out after {timeout_s:.0f} s") from None
        if proc.returncode == 255:
            raise SSHError(f"{self.address}: {_ssh_failure(proc.stderr)}")
        if check and proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise SSHError(
                f"{self.address}: remote command failed (exit {proc.returncode}): {' | '.join(tail)}"
            )
        return proc

    def popen(self, command: str) -> subprocess.Popen[bytes]:
        """Start `command` on the board with pipes to its stdin and stderr (uploads stream through it)."""
        self.check_host_key()
        return subprocess.Popen(
            [*self.ssh_args(), command],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def _ssh_failure(stderr: bytes) -> str:
    text = stderr.decode(errors="replace")
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key verification failed" in text:
        return "host key verification failed (the board's key changed or is unknown); refusing to connect"
    if "Permission denied" in text:
        return "permission denied (publickey): pass --identity KEY for this board"
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("@")]
    return lines[-1] if lines else "ssh failed (exit 255)"


def fingerprints(address: BoardAddress) -> str:
    """The host's key fingerprints as `ssh-keygen -lf` prints them (from `ssh-keyscan`)."""
    scan = subprocess.run(
        ["ssh-keyscan", "-T", "5", "-p", str(address.port), address.host],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    keys = [ln for ln in scan.stdout.splitlines() if ln and not ln.startswith("#")]
    if not keys:
        raise SSHError(f"{address}: cannot reach the SSH server to read its host key")
    with tempfile.NamedTemporaryFile("w", suffix=".keys") as f:
        f.write("\n".join(keys) + "\n")
        f.flush()
        listed = subprocess.run(["ssh-keygen", "-lf", f.name], capture_output=True, text=True, check=False)
    prints = [" ".join((ln.split()[3].strip("()"), ln.split()[1])) for ln in listed.stdout.splitlines() if ln]
    return ", ".join(prints)


def quote(path: str) -> str:
    """Quote a remote path, keeping a leading `~/` for the remote shell to expand."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)
