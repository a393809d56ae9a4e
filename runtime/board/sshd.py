"""A real OpenSSH sshd for one emulated board: its own config, host key and authorized key.

As root, sshd needs an `sshd` user and `/run/sshd`; a private mount namespace (`unshare --mount`)
with a bind-mounted passwd copy and a tmpfs `/run` provides both without touching the system.
As an ordinary user, sshd runs without privilege separation and only lets that user log in.
"""

from __future__ import annotations

import os
import pwd
import shlex
import socket
import subprocess
import time
from pathlib import Path

from edgefit.errors import UserError

SSHD = "/usr/sbin/sshd"


def require_tools() -> None:
    missing = [t for t in (SSHD, "/usr/bin/ssh-keygen") if not os.access(t, os.X_OK)]
    if missing:
        raise UserError(f"{', '.join(missing)} not found: install openssh-server and openssh-client")


def ensure_key(path: Path, comment: str) -> None:
    """An ed25519 key pair at `path` (kept across restarts so known_hosts entries stay valid)."""
    if path.is_file() and path.with_suffix(".pub").is_file():
        return
    path.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    path.chmod(0o600)


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens there (a restarted board keeps its address), else any free port."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise UserError("no free TCP port on 127.0.0.1")


def write_passwd(path: Path, user: str, home: Path, uid: int, gid: int) -> None:
    """The system's passwd plus the `sshd` privilege-separation user and the board user."""
    lines = [
        ln for ln in Path("/etc/passwd").read_text().splitlines() if ln and not ln.startswith(f"{user}:")
    ]
    if not any(ln.startswith("sshd:") for ln in lines):
        lines.append("sshd:x:74:65534:sshd privsep:/run/sshd:/usr/sbin/nologin")
    # getpwuid() finds the board user before root's entry when both are uid 0.
    lines.insert(0, f"{user}:x:{uid}:{gid}:edgefit board:{home}:/bin/bash")
    path.write_text("\n".join(lines) + "\n")


def write_config(
    path: Path, *, port: int, host_key: Path, authorized_keys: Path, user: str, session: Path
) -> None:
    path.write_text(
        f"""# edgefit emulated board: sshd on loopback, key login only, every session runs {session.name}
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile none
UsePAM no
StrictModes no
PubkeyAuthentication yes
AuthorizedKeysFile {authorized_keys}
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {user}
ForceCommand {session}
PermitUserEnvironment no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxStartups 50:30:100
LogLevel INFO
"""
    )


def start(config: Path, passwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start sshd in the foreground (-D) in its own session; the returned process *is* sshd."""
    require_tools()
    sshd = f"{SSHD} -D -e -f {shlex.quote(str(config))}"
    if os.geteuid() == 0:
        # unshare(1) and sh exec in place, so the PID we get back ends up being sshd's.
        setup = (
            f"mount --bind {shlex.quote(str(passwd))} /etc/passwd && "
            "mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && "
            f"exec {sshd}"
        )
        cmd = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", setup]
    else:
        cmd = ["/bin/sh", "-c", f"exec {sshd}"]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)


def wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            raise UserError(f"sshd exited with status {proc.returncode}: {tail}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise UserError(f"sshd did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s (log: {log})")


def board_user(target: str) -> tuple[str, int, int]:
    """Who logs in: the board's usual user (`pi`, `jetson`; uid 0) when edgefit runs as root, else
    the current user (sshd then runs unprivileged and can only authenticate the user it runs as)."""
    if os.geteuid() == 0:
        return ("jetson" if target.startswith("jetson") else "pi"), 0, 0
    entry = pwd.getpwuid(os.geteuid())
    return entry.pw_name, entry.pw_uid, entry.pw_gid
