"""The harness's results: one record per (model, target, backend, compression) and the JSON report, which
is pytest-benchmark's format (a `benchmarks` list with `stats`) plus edgefit's accuracy/energy fields."""

from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

JSON_NAME = "edgefit-bench.json"
KEY_FIELDS = ("model", "target", "backend", "compression")
#: Latency fields taken from pytest-benchmark's Stats (seconds), as its own JSON has them.
STAT_FIELDS = ("min", "max", "mean", "stddev", "rounds", "median", "iqr", "q1", "q3", "iqr_outliers",
               "stddev_outliers", "outliers", "ld15iqr", "hd15iqr", "ops", "total")  # fmt: skip


def stats_dict(times_s: list[float]) -> dict[str, Any]:
    """pytest-benchmark's statistics of per-round times, computed by its own Stats class."""
    from pytest_benchmark.stats import Stats

    stats = Stats()
    for t in times_s:
        stats.update(t)
    return {**{f: getattr(stats, f) for f in STAT_FIELDS}, "iterations": 1, "data": list(times_s)}


def key_of(record: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(record[k]) for k in KEY_FIELDS)


class Results:
    """Records filled in by the accuracy and latency tests of one pytest session (merged by key)."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, ...], dict[str, Any]] = {}
        self.notes: list[str] = []
        self.incidents: list[str] = []

    def update(
        self, model: str, target: str, backend: str, compression: str, **fields: Any
    ) -> dict[str, Any]:
        base = {"model": model, "target": target, "backend": backend, "compression": compression}
        record = self.by_key.setdefault(key_of(base), dict(base))
        record.update(fields)
        return record

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def records(self) -> list[dict[str, Any]]:
        return list(self.by_key.values())

    def merge_file(self, path: Path) -> None:
        """Keep records of earlier runs (other backends run in their own process) unless re-measured here."""
        if not path.is_file():
            return
        try:
            old = json.loads(path.read_text()).get("edgefit", {})
        except (OSError, json.JSONDecodeError):
            return
        for record in old.get("records", []):
            self.by_key.setdefault(key_of(record), record)
        for n in old.get("notes", []):
            self.note(n)
        self.incidents = [
            *old.get("incidents", []),
            *(i for i in self.incidents if i not in old.get("incidents", [])),
        ]


def benchmarks(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with latency, as entries of pytest-benchmark's `benchmarks` list."""
    out = []
    for r in records:
        lat = r.get("latency")
        if not lat:
            continue
        param = f"{r['backend']}-{r['compression']}"
        extra = {k: v for k, v in r.items() if k != "latency"}
        out.append({
            "group": f"{r['model']} on {r['target']}",
            "name": f"latency[{param}]",
            "fullname": f"edgefit::{r['model']}::{r['target']}::latency[{param}]",
            "params": {"backend": r["backend"], "compression": r["compression"]},
            "param": param,
            "extra_info": extra,
            "options": lat.get("options", {}),
            "stats": lat["stats"],
        })  # fmt: skip
    return out


def to_json(results: Results) -> dict[str, Any]:
    import pytest_benchmark

    records = sorted(results.records(), key=key_of)
    return {
        "machine_info": {"node": platform.node(), "machine": platform.machine(), "python_version": platform.python_version(),
                         "system": platform.system(), "release": platform.release(), "cpu_count": os.cpu_count()},
        "commit_info": {},
        "datetime": datetime.datetime.now(datetime.UTC).isoformat(),
        "version": pytest_benchmark.__version__,
        "benchmarks": benchmarks(records),
        "edgefit": {"records": records, "notes": results.notes, "incidents": results.incidents},
    }  # fmt: skip


def write_text_atomic(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
