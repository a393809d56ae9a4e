"""Run the bundle deployed on a board (`~/edgefit/current`) and bring its outputs back.

Inputs go to the board as an npz on the SSH session's stdin; the board-side runner answers with
one npz on stdout holding the outputs and its JSON report, so a run is one SSH round trip.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from edgefit.errors import UserError
from edgefit.runtime.deploy.ssh import Connection

REPORT_KEY = "__report__"  # as in board_run.py


def _connection(board: str | Connection) -> Connection:
    if isinstance(board, Connection):
        return board
    from edgefit.runtime.deploy import boards

    return boards.resolve(board=board)[0]


def remote_run(
    board: str | Connection,
    inputs: dict[str, np.ndarray] | None = None,
    compare_reference: bool = False,
    threads: int | None = None,
    timeout_s: float = 1800,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Outputs of the deployed bundle on `inputs` (None: the bundle's reference inputs) and the
    board's report (engine, timings, and with `compare_reference` the errors and `ok`)."""
    conn = _connection(board)
    args = ['--bundle "$HOME/edgefit/current"', "--npz-out -"]
    payload = None
    if inputs is not None:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in inputs.items()})
        payload = buf.getvalue()
        args.append("--inputs -")
    if compare_reference:
        args.append("--compare")
    if threads:
        args.append(f"--threads {int(threads)}")
    command = (
        '[ -e "$HOME/edgefit/current/board_run.py" ] || { echo "nothing deployed: run edgefit flash first" >&2; exit 3; }; '
        f'python3 "$HOME/edgefit/current/board_run.py" {" ".join(args)}'
    )
    proc = conn.run(command, input=payload, timeout_s=timeout_s, check=False)
    # board_run exits 1 when the comparison fails but still sends its outputs and report.
    if proc.returncode not in (0, 1) or not proc.stdout:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"run on {conn.address} failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    try:
        with np.load(io.BytesIO(proc.stdout)) as npz:
            outputs = {k: npz[k] for k in npz.files}
    except (ValueError, OSError) as exc:
        raise UserError(f"run on {conn.address}: the board sent back no valid npz ({exc})") from None
    report = json.loads(outputs.pop(REPORT_KEY).tobytes().decode())
    report["board"] = str(conn.address)
    return outputs, report
