"""Running a bundle on a real (or emulated) board over SSH for the harness: deploy once, then one SSH round
trip for all accuracy samples and one for the timing loop, which runs on the board itself. A dropped
connection is retried a bounded number of times and every retry is recorded for the report."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from edgefit.errors import UserError
from edgefit.runtime.bundle import Bundle
from edgefit.runtime.harness.runners import Feeds, Runner

T = TypeVar("T")

# Runs on the board's python3 (numpy only) beside the deployed bundle; reuses the deployed board_run.py's
# engines so the board runs exactly what `edgefit run` runs. stdin: npz (inputs + "__args__" JSON);
# stdout: npz (outputs stacked per name, "times_s", "__report__" JSON).
_BOARD_SCRIPT = r"""
import io, json, os, sys, time
from pathlib import Path
import numpy as np
bundle = Path.home() / "edgefit" / "current"
sys.path.insert(0, str(bundle))
import board_run
real = sys.stdout
sys.stdout = sys.stderr
with np.load(io.BytesIO(sys.stdin.buffer.read())) as npz:
    data = {k: npz[k] for k in npz.files}
args = json.loads(data.pop("__args__").tobytes().decode())
manifest = json.loads((bundle / "manifest.json").read_text())
eng = board_run.load_engine(bundle, manifest, manifest["artifacts"]["model"], args["threads"], "auto")
names = [o["name"] for o in manifest["outputs"]]
def run(feeds):
    out = eng.run(feeds)
    if not set(names) <= set(out):
        out = dict(zip(names, out.values()))
    return out
n = len(next(iter(data.values())))
result = {}
if args["mode"] == "outputs":
    outs = [run({k: v[i] for k, v in data.items()}) for i in range(n)]
    result = {k: np.stack([o[k] for o in outs]) for k in names}
else:
    feeds = {k: v[0] for k, v in data.items()}
    for _ in range(args["warmup"]):
        run(feeds)
    times = []
    for _ in range(args["rounds"]):
        t0 = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - t0)
    result["times_s"] = np.asarray(times)
report = {"engine": eng.name, "samples": n}
result["__report__"] = np.frombuffer(json.dumps(report).encode(), dtype=np.uint8)
buf = io.BytesIO()
np.savez(buf, **result)
sys.stdout = real
sys.stdout.buffer.write(buf.getvalue())
sys.stdout.flush()
"""


class BoardSession:
    """A board reached over SSH, with bounded retries of transport failures, each one recorded."""

    def __init__(
        self,
        address: str,
        attempts: int = 3,
        backoff_s: float = 2.0,
        connection: Any = None,
        accept_new: bool = False,
    ) -> None:
        if attempts < 1:
            raise UserError(f"board retry attempts must be >= 1, got {attempts}")
        if connection is None:
            from edgefit.runtime.deploy import boards

            connection = boards.resolve(board=address, accept_new=accept_new)[0]
        self.conn = connection
        self.address = str(getattr(connection, "address", address))
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.incidents: list[str] = []  # every retried failure, for the report and the terminal summary
        self.deployed: str | None = None

    def retry(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, retried on SSH transport errors up to `attempts` times with a growing pause."""
        from edgefit.runtime.deploy.ssh import SSHError

        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except SSHError as exc:
                self.incidents.append(
                    f"{self.address}: {what}: attempt {attempt}/{self.attempts} failed: {exc}"
                )
                if attempt == self.attempts:
                    raise UserError(
                        f"board {self.address}: {what} failed {self.attempts} times in a row; last error: {exc}"
                    ) from None
                time.sleep(self.backoff_s * attempt)
        raise AssertionError("unreachable")

    def deploy(self, bundle: Bundle) -> None:
        """Flash `bundle` unless it is what this session deployed last (flash verifies and smoke-tests)."""
        from edgefit.runtime.deploy.flash import bundle_id, flash

        ident = bundle_id(bundle)
        if self.deployed == ident:
            return
        self.retry(f"flash {bundle.path.name}", lambda: flash(bundle.path, self.conn))
        self.deployed = ident

    def call(self, arrays: dict[str, np.ndarray], args: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
        import shlex

        buf = io.BytesIO()
        np.savez(buf, __args__=np.frombuffer(json.dumps(args).encode(), dtype=np.uint8), **arrays)
        payload = buf.getvalue()
        command = f"python3 -c {shlex.quote(_BOARD_SCRIPT)}"

        def once() -> Any:
            return self.conn.run(command, input=payload, timeout_s=1800, check=True)

        proc = self.retry(f"harness {args['mode']} run", once)
        try:
            with np.load(io.BytesIO(proc.stdout)) as npz:
                out = {k: npz[k] for k in npz.files}
        except (ValueError, OSError) as exc:
            raise UserError(f"board {self.address}: the harness run sent back no valid npz ({exc})") from None
        return out, json.loads(out.pop("__report__").tobytes().decode())


class BoardRunner(Runner):
    """The bundle deployed on a board; inference and timing happen there, results come back over SSH."""

    backend = "board"
    measured_on = "board"

    def __init__(self, board: BoardSession, bundle: Bundle, threads: int = 1) -> None:
        super().__init__()
        board.deploy(bundle)
        self.board = board
        self.threads = threads
        self.inputs = [s["name"] for s in bundle.manifest["inputs"]]
        self.reference = bundle.reference_inputs()
        self.size_bytes = bundle.artifact("model").stat().st_size
        self.engine = f"board {board.address}"

    def run_many(self, batches: Sequence[Feeds]) -> list[dict[str, np.ndarray]]:
        stacked = {n: np.stack([np.asarray(b[n], dtype=np.float32) for b in batches]) for n in self.inputs}
        out, report = self.board.call(stacked, {"mode": "outputs", "threads": self.threads})
        self.engine = f"{report['engine']} on {self.board.address}"
        self.calls += len(batches)
        return [{k: v[i] for k, v in out.items()} for i in range(len(batches))]

    def _run(self, inputs: Feeds) -> dict[str, np.ndarray]:
        self.calls -= 1  # run_many counts it
        return self.run_many([inputs])[0]

    def time_on_board(self, rounds: int, warmup: int) -> list[float]:
        """Per-inference seconds measured by the board's own clock around each run (no SSH in it)."""
        stacked = {n: self.reference[n][None] for n in self.inputs}
        out, report = self.board.call(
            stacked, {"mode": "time", "threads": self.threads, "rounds": rounds, "warmup": warmup}
        )
        self.engine = f"{report['engine']} on {self.board.address}"
        self.calls += rounds + warmup
        return [float(t) for t in out["times_s"]]
