"""`edgefit flash`: atomic, verified deploys of a bundle to a board, and rollback.

On the board (`~/edgefit/`):

    versions/<bundle-sha12>-<UTC time>/   one directory per deployed bundle (+ board_run.py, runtime)
    current -> versions/...               what `run --board` executes; switched with ln -s + mv -T
    previous -> versions/...              what `flash --rollback` returns to

Upload goes to `<version>.partial`; then sha256 checksums are verified on the board, a smoke
inference runs there and is compared with the bundle's reference outputs, and only then is the
directory renamed and `current` switched. Any failure before the switch leaves `current` as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from edgefit import targets
from edgefit.errors import UserError
from edgefit.runtime.bundle import MANIFEST, Bundle, sha256_file
from edgefit.runtime.deploy import probe
from edgefit.runtime.deploy.ssh import Connection, SSHError

CHECKSUMS = "SHA256SUMS"
KEEP_VERSIONS = 3  # current, previous and one older; older versions are pruned after a switch
BOARD_RUN = Path(__file__).with_name("board_run.py")
#: edgefit modules the board-side runner imports, per backend (None: an empty package __init__, so
#: the board never imports the exporters that a package __init__ pulls in). They need only numpy.
_PYLIB: dict[str, dict[str, str | None]] = {
    "native": {"compiler/ir": "ir", "compiler/encodings": "encodings", "compiler/artifact": "artifact",
               "compiler/reference": "reference"},
    "tflite": {"compiler/backends/__init__": None, "compiler/backends/tflite/__init__": None,
               "compiler/backends/tflite/layout": "backends/tflite/layout",
               "compiler/backends/tflite/run": "backends/tflite/run"},
    "tvm": {"compiler/backends/__init__": None, "compiler/backends/tvm/__init__": None,
            "compiler/backends/tvm/run": "backends/tvm/run"},
}  # fmt: skip


class FlashError(UserError):
    """The deploy was refused or failed; the board's `current` version is unchanged."""


@dataclass
class UploadFile:
    arcname: str
    path: Path | None = None
    data: bytes | None = None

    @property
    def executable(self) -> bool:
        return self.arcname == "board_run.py" or (self.path is not None and os.access(self.path, os.X_OK))

    def read(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()  # type: ignore[union-attr]


@dataclass
class FlashResult:
    board: str
    version: str
    previous: str
    facts: str
    smoke: dict[str, Any]
    bytes_sent: int
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _pylib_files(backend: str) -> list[UploadFile]:
    import edgefit
    import edgefit.compiler

    pkg, compiler = Path(edgefit.__file__).parent, Path(edgefit.compiler.__file__).parent
    files = [
        UploadFile("pylib/edgefit/__init__.py", path=pkg / "__init__.py"),
        UploadFile("pylib/edgefit/errors.py", path=pkg / "errors.py"),
        UploadFile("pylib/edgefit/compiler/__init__.py", data=b""),
    ]
    for module, source in _PYLIB.get(backend, {}).items():
        # edgefit.compiler maps to the top-level compiler/ folder in an editable install.
        src = None if source is None else compiler / f"{source}.py"
        files.append(UploadFile(f"pylib/edgefit/{module}.py", path=src, data=b"" if src is None else None))
    return files


def upload_set(bundle: Bundle, runtime_files: list[UploadFile]) -> list[UploadFile]:
    """Everything one version directory holds, ending with its SHA256SUMS."""
    files = [UploadFile(p.name, path=p) for p in sorted(bundle.path.iterdir()) if p.is_file()]
    files.append(UploadFile("board_run.py", path=BOARD_RUN))
    files += _pylib_files(bundle.backend)
    files += runtime_files
    checksums = bundle.manifest.get("checksums", {})
    lines = []
    for f in files:
        # Bundle files are checked against the manifest's own digests (verified locally first).
        digest = checksums.get(f.arcname) if f.path is not None and f.path.parent == bundle.path else None
        digest = digest or (sha256_file(f.path) if f.path is not None else _sha256(f.read()))
        lines.append(f"{digest}  {f.arcname}\n")
    files.append(UploadFile(CHECKSUMS, data="".join(lines).encode()))
    return files


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _RateLimited(io.RawIOBase):
    """A write-only stream that caps throughput (the transport shapes bandwidth; no tc netem here)."""

    def __init__(self, sink: BinaryIO, kbps: float | None) -> None:
        self.sink, self.rate = sink, (kbps * 1024 if kbps else None)
        self.sent, self.start = 0, time.monotonic()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        step = max(4096, int(self.rate / 20)) if self.rate else len(view) or 1
        for i in range(0, len(view), step):
            chunk = view[i : i + step]
            self.sink.write(chunk)
            self.sent += len(chunk)
            if self.rate:
                ahead = self.sent / self.rate - (time.monotonic() - self.start)
                if ahead > 0:
                    time.sleep(ahead)
        return len(view)


def _upload(
    conn: Connection, files: list[UploadFile], partial: str, kbps: float | None,
    tamper: Callable[[str, bytes], bytes] | None,
) -> int:  # fmt: skip
    base = f'"$HOME"/edgefit/versions/{partial}'
    # Stale .partial directories are what interrupted uploads left behind.
    proc = conn.popen(
        f'set -e; rm -rf "$HOME"/edgefit/versions/*.partial; mkdir -p {base}; tar -xf - -C {base}'
    )
    sink = _RateLimited(proc.stdin, kbps)  # type: ignore[arg-type]
    try:
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for f in files:
                data = f.read()
                if tamper is not None:
                    data = tamper(f.arcname, data)
                info = tarfile.TarInfo(f.arcname)
                info.size, info.mode, info.mtime = len(data), 0o755 if f.executable else 0o644, time.time()
                tar.addfile(info, io.BytesIO(data))
        proc.stdin.close()  # type: ignore[union-attr]
    except BrokenPipeError:
        pass
    err = proc.stderr.read()  # type: ignore[union-attr]
    proc.wait()
    if proc.returncode != 0:
        raise FlashError(f"upload to {conn.address} failed: {err.decode(errors='replace').strip()[-300:]}")
    return sink.sent


def _cleanup(conn: Connection, partial: str) -> None:
    # When the board is unreachable, the next flash removes stale .partial directories.
    with contextlib.suppress(SSHError):
        conn.run(f'rm -rf "$HOME"/edgefit/versions/{partial}', timeout_s=60, check=False)


def bundle_id(bundle: Bundle) -> str:
    return sha256_file(bundle.path / MANIFEST)[:12]


def flash(
    bundle_dir: str | Path,
    conn: Connection,
    *,
    force: bool = False,
    expected_target: str | None = None,
    limit_kbps: float | None = None,
    with_runtime: bool = True,
    log: Callable[[str], None] = lambda s: None,
    _tamper: Callable[[str, bytes], bytes] | None = None,
) -> FlashResult:
    """Deploy `bundle_dir` to the board behind `conn` (see the module docstring for the steps).
    `_tamper` edits bytes in transit: tests use it to simulate a corrupted transfer."""
    times: dict[str, float] = {}
    t0 = time.monotonic()
    bundle = Bundle.load(bundle_dir)
    bad = bundle.verify_checksums()
    if bad:
        raise FlashError(
            f"bundle {bundle.path} is corrupt (checksum mismatch: {', '.join(bad)}); recompile it"
        )
    target = targets.load(bundle.target)
    if expected_target and expected_target != target.name and not force:
        raise FlashError(
            f"the inventory says this board is a {expected_target}, the bundle is for {target.name}"
        )

    facts = probe.probe(conn)
    problems = probe.mismatches(target, facts)
    notes = []
    if problems and not force:
        raise FlashError(
            f"board {conn.address} does not match target {target.name}: {'; '.join(problems)} (--force to flash anyway)"
        )
    if problems:
        notes.append(f"flashed despite mismatch (--force): {'; '.join(problems)}")
    times["probe"] = time.monotonic() - t0

    runtime_files: list[UploadFile] = []
    if with_runtime:
        from edgefit.runtime.deploy import crossbuild

        runtime_files, runtime_notes = crossbuild.runtime_upload(bundle, target, facts.python)
        notes += runtime_notes
    files = upload_set(bundle, runtime_files)

    version = f"{bundle_id(bundle)}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    partial = f"{version}.partial"
    log(f"flash: {conn.address} is {facts.describe()}; uploading {len(files)} files as versions/{version}")
    t = time.monotonic()
    try:
        sent = _upload(conn, files, partial, limit_kbps, _tamper)
    except BaseException:
        _cleanup(conn, partial)
        raise
    times["upload"] = time.monotonic() - t

    # Verify, smoke-test and switch in one session: `current` moves only when both checks pass,
    # and a failed version is removed so the board is left exactly as it was.
    t = time.monotonic()
    finish = conn.run(_finish_script(partial, version), timeout_s=1800, check=False)
    times["verify_smoke_switch"] = time.monotonic() - t
    stdout = finish.stdout.decode(errors="replace")
    unchanged = f"nothing was switched (current is still {facts.current or 'empty'})"
    if finish.returncode == _EXIT_CHECKSUM:
        failed = [ln.split(":")[0] for ln in stdout.splitlines() if "FAILED" in ln]
        raise FlashError(
            f"checksum mismatch on the board for {', '.join(failed) or 'the upload'}; {unchanged}"
        )
    report = _last_json(finish.stdout)
    if finish.returncode == _EXIT_SMOKE or report is None or not report.get("ok"):
        why = (
            f"max relative error {report['max_error']:.3g} > tolerance {report['tolerance']:.3g}"
            if report and "max_error" in report
            else finish.stderr.decode(errors="replace").strip()[-400:]
        )
        raise FlashError(f"smoke test on the board failed ({why}); {unchanged}")
    if finish.returncode != 0:
        err = finish.stderr.decode(errors="replace").strip()[-300:]
        raise FlashError(
            f"switching to the new version failed on the board (exit {finish.returncode}): {err}"
        )
    times["total"] = time.monotonic() - t0
    return FlashResult(
        str(conn.address), version, facts.current, facts.describe(), report, sent, times, notes
    )


_EXIT_CHECKSUM, _EXIT_SMOKE = 21, 22


def _finish_script(partial: str, version: str) -> str:
    return (
        'V="$HOME"/edgefit/versions; '
        f'cd "$V/{partial}" || exit 20; '
        f'if ! sha256sum --quiet -c {CHECKSUMS}; then cd "$V"; rm -rf {partial}; exit {_EXIT_CHECKSUM}; fi; '
        f'if ! python3 board_run.py --smoke; then cd "$V"; rm -rf {partial}; exit {_EXIT_SMOKE}; fi; '
        f'set -e; cd "$HOME"/edgefit; mv -T versions/{partial} versions/{version}; '
        "prev=$(readlink current || true); "
        f"ln -sfn versions/{version} .current.tmp; "
        'if [ -n "$prev" ]; then ln -sfn "$prev" .previous.tmp; mv -T .previous.tmp previous; fi; '
        "mv -T .current.tmp current; "
        # Prune the oldest versions (by the time in their name), never what current/previous point to.
        'keep="$(readlink current) $(readlink previous || true)"; '
        f"ls -1d versions/*/ | sed 's:/$::' | sort -t- -k2 | head -n -{KEEP_VERSIONS} | while read -r v; do "
        'case " $keep " in *" $v "*) ;; *) rm -rf "$v";; esac; done'
    )


def _last_json(stdout: bytes) -> dict[str, Any] | None:
    for line in reversed(stdout.decode(errors="replace").strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def rollback(conn: Connection) -> dict[str, str]:
    """Make `previous` current again (after checking its files); the two links swap."""
    script = (
        'cd "$HOME"/edgefit 2>/dev/null || { echo "nothing deployed" >&2; exit 3; }; '
        "cur=$(readlink current || true); prev=$(readlink previous || true); "
        '[ -n "$prev" ] && [ -d "$prev" ] || { echo "no previous version to roll back to" >&2; exit 3; }; '
        f'(cd "$prev" && sha256sum --quiet -c {CHECKSUMS}) >&2 || {{ echo "previous version $prev is corrupt" >&2; exit 4; }}; '
        'ln -sfn "$prev" .current.tmp; mv -T .current.tmp current; '
        'if [ -n "$cur" ]; then ln -sfn "$cur" .previous.tmp; mv -T .previous.tmp previous; fi; '
        'echo "$prev"; echo "$cur"'
    )
    proc = conn.run(script, check=False, timeout_s=300)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise FlashError(
            f"rollback on {conn.address} refused: {msg[-1] if msg else 'exit ' + str(proc.returncode)}"
        )
    now, before = ([*proc.stdout.decode().strip().splitlines(), "", ""])[:2]
    return {"current": now, "previous": before}
