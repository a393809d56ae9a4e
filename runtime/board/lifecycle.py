"""`board up|down|status`: start an emulated board (rootfs + sshd), stop it by PID, report it.

Each board has a state directory (`$EDGEFIT_CACHE/board-state/<name>/`) holding its sshd config,
keys, home directory (kept across restarts, like a board's disk) and `board.json` with sshd's PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from subprocess import Popen

from edgefit import targets
from edgefit.errors import UserError
from edgefit.runtime.board import login, profiles, rootfs, sshd
from edgefit.runtime.board.paths import cache_dir

STATE_FILE = "board.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# sshd processes this Python process started, so `down` can reap them (no zombies left behind).
_CHILDREN: dict[int, Popen[bytes]] = {}


@dataclass(frozen=True)
class BoardInfo:
    name: str
    target: str
    user: str
    host: str
    port: int
    pid: int
    identity: str
    known_hosts: str
    root: str
    home: str
    state_dir: str

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def as_json(self) -> dict[str, object]:
        return {"board": self.address, **asdict(self), "running": is_running(self)}


def state_dir(name: str) -> Path:
    if not _NAME_RE.match(name):
        raise UserError(f"invalid board name {name!r} (letters, digits, '.', '_', '-')")
    return cache_dir() / "board-state" / name


def load(name: str) -> BoardInfo | None:
    try:
        raw = json.loads((state_dir(name) / STATE_FILE).read_text())
        return BoardInfo(**raw)
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def _save(info: BoardInfo) -> None:
    path = Path(info.state_dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(info), indent=1) + "\n")
    tmp.replace(path)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_zombie(pid: int) -> bool:
    """True when `pid` is gone or has exited but is not reaped yet (no longer running)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def is_alive(pid: int) -> bool:
    return not _is_zombie(pid)


def is_running(info: BoardInfo) -> bool:
    """sshd with this board's config still runs under the recorded PID (guards against PID reuse)."""
    return (
        info.pid > 0
        and not _is_zombie(info.pid)
        and str(Path(info.state_dir) / "sshd_config") in _cmdline(info.pid)
    )


def descendants(pid: int) -> list[int]:
    """PIDs of every live process below `pid` (sshd's per-connection children and their sessions)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def up(target: str, name: str | None = None, log: bool = True) -> BoardInfo:
    """Start (or return the already running) emulated board `name` of `target`."""
    t = targets.load(target)
    profiles.profile(target)  # fails early for targets we cannot emulate (x86_64)
    name = name or target
    current = load(name)
    if current is not None and is_running(current):
        if current.target != target:
            raise UserError(
                f"board {name!r} is already up as a {current.target}; 'edgefit board down {name}' first"
            )
        return current

    root = rootfs.ensure_rootfs(target, log=log)
    sdir = state_dir(name)
    sdir.mkdir(parents=True, exist_ok=True)
    user, uid, gid = sshd.board_user(target)
    home = sdir / "home" / user
    home.mkdir(parents=True, exist_ok=True)
    bin_dir = sdir / "bin"
    login.write_wrappers(root, bin_dir, t.qemu_cpu or "max")
    login.write_session(sdir / "session", bin_dir=bin_dir, home=home, name=name, target=target)

    host_key, identity = sdir / "ssh_host_ed25519_key", sdir / "id_ed25519"
    sshd.ensure_key(host_key, f"edgefit-board-{name}")
    sshd.ensure_key(identity, f"edgefit@{name}")
    (sdir / "authorized_keys").write_text(identity.with_suffix(".pub").read_text())
    sshd.write_passwd(sdir / "passwd", user, home, uid, gid)

    port = sshd.free_port(current.port if current else None)
    sshd.write_config(
        sdir / "sshd_config", port=port, host_key=host_key, authorized_keys=sdir / "authorized_keys",
        user=user, session=sdir / "session",
    )  # fmt: skip
    host_pub = host_key.with_suffix(".pub").read_text().split()
    known_hosts = sdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")

    log_path = sdir / "sshd.log"
    proc = sshd.start(sdir / "sshd_config", sdir / "passwd", log_path)
    _CHILDREN[proc.pid] = proc
    info = BoardInfo(
        name=name, target=target, user=user, host="127.0.0.1", port=port, pid=proc.pid,
        identity=str(identity), known_hosts=str(known_hosts), root=str(root), home=str(home),
        state_dir=str(sdir),
    )  # fmt: skip
    _save(info)
    try:
        sshd.wait_listening(proc, port, log_path)
    except BaseException:
        _stop_pid(proc.pid)
        raise
    return info


def _signal(pids: list[int], sig: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


def _stop_pid(pid: int, timeout_s: float = 5.0) -> list[int]:
    """Stop sshd and everything below it, by PID. The tree is frozen first (SIGSTOP until no new
    process appears), so nothing forks or gets orphaned to init while it is being taken down;
    then SIGTERM + SIGCONT, and SIGKILL for whatever is left after `timeout_s`."""
    victims: list[int] = []
    for _ in range(100):
        new = [p for p in [pid, *descendants(pid)] if p not in victims]
        if not new:
            break
        _signal(new, signal.SIGSTOP)
        victims += new
    _signal(victims, signal.SIGTERM)
    _signal(victims, signal.SIGCONT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid in _CHILDREN:
            _CHILDREN[pid].poll()
        if all(_is_zombie(p) for p in victims):
            break
        time.sleep(0.05)
    _signal([p for p in victims if not _is_zombie(p)], signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=timeout_s)
    return victims


def down(name: str) -> list[int]:
    """Stop board `name`; returns the PIDs that were signalled (empty when it was not running)."""
    info = load(name)
    if info is None:
        raise UserError(f"no emulated board named {name!r} (see 'edgefit board status')")
    stopped = _stop_pid(info.pid) if is_running(info) else []
    _save(BoardInfo(**{**asdict(info), "pid": 0}))
    return stopped


def all_boards() -> list[BoardInfo]:
    base = cache_dir() / "board-state"
    found = [load(p.name) for p in sorted(base.iterdir())] if base.is_dir() else []
    return [b for b in found if b is not None]


def find_running(host: str, port: int) -> BoardInfo | None:
    """The running emulated board that listens on host:port, if any (flash borrows its key)."""
    for board in all_boards():
        if board.host == host and board.port == port and is_running(board):
            return board
    return None
