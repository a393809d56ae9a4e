"""Host side of split computing with a board as the device: ship the split client to the board (once per
content), run `edgefit.runtime.split.board` there over SSH, and build the local/offload/split comparison."""

from __future__ import annotations

import hashlib
import io
import json
import statistics
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgefit.errors import UserError
from edgefit.runtime.deploy.ssh import Connection
from edgefit.runtime.split.board import REPORT_KEY, SECRET_KEY, pack_samples, unpack_samples

#: What the board-side client imports (pure Python + numpy), as paths under the package. The package
#: __init__ files go up empty so the board never imports the server's or the session's dependencies.
_MODULES = (
    "__init__", "errors",
    "compiler/ir", "compiler/encodings", "compiler/artifact", "compiler/reference",
    "runtime/split/protocol", "runtime/split/codec", "runtime/split/shaper", "runtime/split/engine",
    "runtime/split/server", "runtime/split/client", "runtime/split/board",
)  # fmt: skip
_EMPTY = ("compiler/__init__", "runtime/__init__", "runtime/split/__init__")


def _splitlib_files() -> dict[str, bytes]:
    import edgefit
    import edgefit.compiler
    import edgefit.runtime.split

    roots = {
        "": Path(edgefit.__file__).parent,
        "compiler/": Path(edgefit.compiler.__file__).parent,
        "runtime/split/": Path(edgefit.runtime.split.__file__).parent,
    }
    files = {f"edgefit/{m}.py": b"" for m in _EMPTY}
    for module in _MODULES:
        prefix = next(p for p in ("runtime/split/", "compiler/", "") if module.startswith(p))
        files[f"edgefit/{module}.py"] = (roots[prefix] / f"{module[len(prefix) :]}.py").read_bytes()
    return files


def ensure_splitlib(conn: Connection) -> str:
    """Upload the board-side split client to `~/edgefit/splitlib/<content hash>` unless it is there;
    returns that directory (for PYTHONPATH). Content-addressed: edits here give a fresh directory."""
    files = _splitlib_files()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    rel = f"edgefit/splitlib/{digest.hexdigest()[:12]}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, time.time()
            tar.addfile(info, io.BytesIO(data))
    # Extract into a temporary directory and rename: a half-written splitlib is never used.
    script = (
        f'd="$HOME/{rel}"; [ -d "$d" ] && exit 0; set -e; t="$d.tmp.$$"; rm -rf "$t"; mkdir -p "$t"; '
        'tar -xf - -C "$t"; mv -T "$t" "$d" 2>/dev/null || rm -rf "$t"'
    )
    conn.run(script, input=buf.getvalue(), timeout_s=300)
    return f"$HOME/{rel}"


def board_split(
    conn: Connection,
    samples: list[dict[str, np.ndarray]],
    *,
    server: str | None,
    secret: bytes,
    mode: str = "split",
    policy: str = "fallback",
    link: str | None = None,
    timeout_s: float = 10.0,
    threads: int | None = None,
    warmup: bool = False,
) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
    """Run `samples` through the split bundle deployed on the board (`edgefit flash`) in `mode`
    ("split", "full-offload" or "local"); (outputs per sample, the board's report)."""
    lib = ensure_splitlib(conn)
    args = [f"--mode {mode}", f"--policy {policy}", f"--timeout {float(timeout_s):g}"]
    if server:
        args.append(f"--server '{server}'")
    if link:
        args.append(f"--link '{link}'")
    if threads:
        args.append(f"--threads {int(threads)}")
    if warmup:
        args.append("--warmup")
    for text in (server or "", link or ""):
        if "'" in text:
            raise UserError(f"{text!r}: quotes are not allowed in a server address or link")
    command = (
        '[ -e "$HOME/edgefit/current/manifest.json" ] || { echo "nothing deployed: run edgefit flash first" >&2; exit 3; }; '
        f'cd "$HOME/edgefit/current" && PYTHONPATH="{lib}" python3 -m edgefit.runtime.split.board {" ".join(args)}'
    )
    payload = pack_samples(samples, {SECRET_KEY: np.frombuffer(secret, dtype=np.uint8)})
    proc = conn.run(command, input=payload, timeout_s=3600, check=False)
    if proc.returncode != 0 or not proc.stdout:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(
            f"split run on {conn.address} failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}"
        )
    try:
        outs, extra = unpack_samples(proc.stdout)
    except (ValueError, OSError) as exc:
        raise UserError(f"split run on {conn.address}: the board sent back no valid npz ({exc})") from None
    report = json.loads(extra[REPORT_KEY].tobytes().decode())
    report["board"] = str(conn.address)
    return outs, report


def compare_on_board(
    conn: Connection,
    bundle: str | Path,
    server: str,
    samples: list[dict[str, np.ndarray]],
    bandwidths: Sequence[float],
    *,
    secret: bytes,
    latency_s: float = 0.005,
    labels: Sequence[int] | np.ndarray | None = None,
    plot: str | Path | None = None,
    timeout_s: float = 60.0,
) -> tuple[Any, dict[str, Any]]:
    """Local on the board vs full offload vs split across link `bandwidths` (bit/s), device = the board.
    Returns (ComparisonTable, raw: reference top-1 and per-mode outputs' top-1 for checks)."""
    from edgefit import targets
    from edgefit.runtime.bundle import Bundle
    from edgefit.runtime.harness.power import EstimatedPower
    from edgefit.runtime.split.compare import MODES, ComparisonTable, Row, plot_comparison
    from edgefit.runtime.split.engine import SplitModel

    if not bandwidths or min(bandwidths) <= 0:
        raise UserError("bandwidths must be a non-empty list of positive bit/s values")
    b = Bundle.load(bundle)
    model = SplitModel(bundle)  # the single-process model, here: the reference the board must match
    out_name = model.outputs[0]
    ref_top1 = np.concatenate([model.full(s)[out_name].argmax(-1).ravel() for s in samples])
    y = None if labels is None else np.asarray(labels).ravel()
    meter = EstimatedPower(targets.load(b.target))
    idle_w = meter.read_watts()
    meter.set_busy(1.0)
    active_w = meter.read_watts()
    meter.set_busy(0.0)

    def energy_mj(device_ms: float, total_ms: float) -> float:
        # W x ms = mJ
        return active_w * device_ms + idle_w * max(0.0, total_ms - device_ms)

    rows: list[Row] = []
    raw: dict[str, Any] = {"reference_top1": ref_top1.tolist(), "runs": []}

    def add(mode: str, bw: float, outs: list[dict[str, np.ndarray]], rep: dict[str, Any]) -> None:
        recs = rep["samples"]
        pred = np.concatenate([o[out_name].argmax(-1).ravel() for o in outs])
        totals = [r["total_ms"] for r in recs]
        device = [r["device_ms"] for r in recs]
        rows.append(
            Row(
                mode=mode, bandwidth_mbps=bw / 1e6, latency_ms=statistics.median(totals),
                latency_p90_ms=float(np.percentile(totals, 90)), device_compute_ms=statistics.median(device),
                bytes_sent=float(np.mean([r["bytes_sent"] for r in recs])),
                bytes_received=float(np.mean([r["bytes_received"] for r in recs])),
                accuracy=float((pred == y).mean()) if y is not None else None,
                agreement=float((pred == ref_top1).mean()),
                energy_mj=statistics.mean(energy_mj(d, t) for d, t in zip(device, totals, strict=True)),
                fallbacks=sum(r["mode"] == "local-fallback" for r in recs),
            )
        )  # fmt: skip
        raw["runs"].append(
            {
                "mode": mode,
                "bandwidth_bps": bw,
                "top1": pred.tolist(),
                "samples": recs,
                "engine": rep["engine"],
            }
        )

    outs, rep = board_split(conn, samples, server=None, secret=secret, mode="local", warmup=True)
    add("local", bandwidths[0], outs, rep)
    engine = rep["engine"]
    for bw in bandwidths:
        link = f"{bw:g}bit,{latency_s:g}s"
        for mode in ("full-offload", "split"):
            outs, rep = board_split(
                conn, samples, server=server, secret=secret, mode=mode, link=link, timeout_s=timeout_s,
                warmup=True,
            )  # fmt: skip
            add(mode, bw, outs, rep)
    rows.sort(key=lambda r: (MODES.index(r.mode), -r.bandwidth_mbps))
    table = ComparisonTable(
        rows=rows,
        link_latency_ms=latency_s * 1e3,
        samples=len(samples),
        backend=f"{engine} on the emulated board",
        energy_note=(
            f"energy estimated from the {meter.target.name} power model (active {active_w:g} W while the board "
            f"computes, idle {idle_w:g} W while it waits; radio not modelled)"
        ),
        notes=[
            "device latency is measured on the board; on an emulated board (qemu-aarch64) that is emulation "
            "speed, not a real Pi's",
        ],
    )
    if plot is not None:
        table.plot = str(plot_comparison(table, plot))
    return table, raw


def cli_run(args: Any) -> int:
    """`edgefit run [OUT/] --board B --split HOST:PORT`: the head on the board, the tail on the server.
    With OUT/ and --compare-reference, the board's outputs are checked against the single-process model."""
    import os

    from edgefit.cli.run import compare
    from edgefit.compiler.pipeline import SPLIT_TOLERANCE
    from edgefit.runtime.deploy import boards
    from edgefit.runtime.split.protocol import as_secret, read_secret_file

    if args.secret_file:
        secret = read_secret_file(args.secret_file)
    elif os.environ.get("EDGEFIT_SPLIT_SECRET"):
        secret = as_secret(os.environ["EDGEFIT_SPLIT_SECRET"])
    else:
        raise UserError("--split needs the server's secret: --secret-file F or $EDGEFIT_SPLIT_SECRET")
    model = None
    samples: list[dict[str, np.ndarray]] = []
    if args.bundle:
        from edgefit.runtime.split.engine import SplitModel

        model = SplitModel(args.bundle, threads=args.threads)
    if args.input:
        if model is None:
            raise UserError("--input with --board needs the bundle directory (for the input names)")
        from edgefit.cli.run import load_inputs

        samples = [load_inputs(args.input, list(model.inputs), model.bundle)]
    elif model is not None:
        ref = model.bundle.reference_inputs()
        samples = [{n: ref[n] for n in model.inputs}]
    conn, _ = boards.resolve(args.board, args.boards, args.name, args.identity, args.accept_new)
    outs, report = board_split(
        conn,
        samples,
        server=args.split,
        secret=secret,
        policy=args.policy,
        link=args.link,
        threads=args.threads,
    )
    rec = report["samples"][0]
    where = (
        f"fell back to the board ({rec.get('fallback_reason')})"
        if rec["mode"] == "local-fallback"
        else f"split via {args.split}"
    )
    print(
        f"ran {report['bundle']} on {conn.address} (head: {report['engine']}), {where}: "
        f"sent {rec['bytes_sent']} B, received {rec['bytes_received']} B, head {rec.get('head_ms', 0):.1f} ms, "
        f"total {rec['total_ms']:.1f} ms (emulated boards run at emulation speed)"
    )
    out = outs[0]
    if args.output:
        from edgefit.cli.run import _save_output

        _save_output(out, next(iter(out)), args.output)
    if not args.compare_reference:
        return 0
    if model is None:
        raise UserError("--compare-reference with --board --split needs the bundle directory")
    single = model.full(samples[0])  # the single-process model on this machine
    ok, lines = compare(out, single, SPLIT_TOLERANCE)
    for line in lines:
        print(f"vs single-process model: {line}")
    if not ok:
        print("board split outputs disagree with the single-process model")
        return 1
    return 0
