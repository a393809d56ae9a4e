"""Which board a command talks to: `--board USER@HOST[:PORT]` or a named entry of a boards
inventory file, plus the identity and known_hosts to use for it.

    # boards.toml
    [boards.pi-kitchen]
    address = "pi@192.168.1.20"
    identity = "~/.ssh/id_ed25519"   # optional
    target = "rpi4"                  # optional: flash checks the bundle is for this target
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from edgefit.errors import UserError
from edgefit.runtime.deploy.ssh import BoardAddress, Connection


@dataclass(frozen=True)
class InventoryEntry:
    name: str
    address: BoardAddress
    identity: str | None = None
    target: str | None = None


def load_inventory(path: str | Path) -> dict[str, InventoryEntry]:
    path = Path(path).expanduser()
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read boards inventory {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    boards = raw.get("boards")
    if not isinstance(boards, dict) or not boards:
        raise UserError(f"{path}: no [boards.NAME] tables")
    entries = {}
    for name, spec in boards.items():
        if not isinstance(spec, dict) or "address" not in spec:
            raise UserError(f'{path}: board {name!r} needs address = "USER@HOST[:PORT]"')
        entries[name] = InventoryEntry(
            name, BoardAddress.parse(spec["address"]), spec.get("identity"), spec.get("target")
        )
    return entries


def resolve(
    board: str | None = None,
    boards_file: str | None = None,
    name: str | None = None,
    identity: str | None = None,
    accept_new: bool = False,
    known_hosts: str | None = None,
) -> tuple[Connection, InventoryEntry | None]:
    """The connection for the board the user named, and its inventory entry when it came from one.
    An emulated board started by `edgefit board up` lends its key when no identity is given."""
    entry = None
    if boards_file or name:
        if not (boards_file and name):
            raise UserError("--boards FILE and --name NAME go together")
        if board:
            raise UserError("pass either --board or --boards/--name, not both")
        inventory = load_inventory(boards_file)
        if name not in inventory:
            raise UserError(f"no board {name!r} in {boards_file} (it has: {', '.join(sorted(inventory))})")
        entry = inventory[name]
        address = entry.address
        identity = identity or entry.identity
    elif board:
        address = BoardAddress.parse(board)
    else:
        raise UserError("which board? pass --board USER@HOST[:PORT] or --boards FILE --name NAME")
    if identity is None:
        from edgefit.runtime.board.lifecycle import find_running

        emulated = find_running(address.host, address.port)
        if emulated is not None:
            identity = emulated.identity
    return Connection(address, identity=identity, known_hosts=known_hosts, accept_new=accept_new), entry
