"""Board-side split client: the head runs on the board (native runtime, else the numpy reference), the tail
on `edgefit serve`; runs on the board's python3 with numpy, the deployed bundle's pylib and this package.

    python3 -m edgefit.runtime.split.board --server HOST:PORT [--mode split|full-offload|local] < in.npz > out.npz

stdin: an npz with one key per sample and input, "s<i>.<input>", plus "__secret__" (the shared secret as
u8: never on the command line, where `ps` would show it). stdout: an npz with "s<i>.<output>" and
"__report__" (JSON: the engine and one record per sample: mode, bytes on the wire, times in ms).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgefit.errors import UserError

REPORT_KEY = "__report__"
SECRET_KEY = "__secret__"
MODES = ("split", "full-offload", "local")


def pack_samples(samples: list[dict[str, np.ndarray]], extra: dict[str, np.ndarray] | None = None) -> bytes:
    """Samples (one feed or output dict each) as one npz: "s<i>.<name>" keys (+ `extra` as is)."""
    arrays = {f"s{i}.{k}": np.asarray(v) for i, s in enumerate(samples) for k, v in s.items()}
    buf = io.BytesIO()
    np.savez(buf, **arrays, **(extra or {}))
    return buf.getvalue()


def unpack_samples(data: bytes) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """The inverse of `pack_samples`: (samples in order, the other keys)."""
    with np.load(io.BytesIO(data)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    samples: dict[int, dict[str, np.ndarray]] = {}
    extra = {}
    for key, value in arrays.items():
        head, dot, name = key.partition(".")
        if dot and head[:1] == "s" and head[1:].isdigit():
            samples.setdefault(int(head[1:]), {})[name] = value
        else:
            extra[key] = value
    return [samples[i] for i in sorted(samples)], extra


class BoardSplit:
    """The deployed split bundle on this board: head/tail engines (board_run's) and the split client."""

    def __init__(self, bundle: Path, threads: int) -> None:
        self.bundle = bundle
        self.manifest = json.loads((bundle / "manifest.json").read_text())
        artifacts = self.manifest.get("artifacts", {})
        if "head" not in artifacts or "tail" not in artifacts:
            raise SystemExit(f"split: {bundle} is not a split bundle (compile it with --split)")
        sys.path.insert(0, str(bundle))  # board_run.py sits beside the bundle: reuse its engines
        import board_run

        self._board_run = board_run
        self.threads = threads
        self.head = board_run.load_engine(bundle, self.manifest, artifacts["head"], threads, "auto")
        self._tail: Any = None
        self.head_sha256 = self.manifest.get("checksums", {}).get(artifacts["head"], "")
        self.inputs = self.head.inputs

    @property
    def tail(self) -> Any:
        # Loaded only when needed (local mode, fallback): a ResNet tail is most of the weights.
        if self._tail is None:
            art = self.manifest["artifacts"]["tail"]
            self._tail = self._board_run.load_engine(self.bundle, self.manifest, art, self.threads, "auto")
        return self._tail

    def run_head(self, feeds: dict[str, np.ndarray]) -> tuple[str, np.ndarray]:
        out = self.head.run({k: np.ascontiguousarray(feeds[k]) for k in self.inputs})
        (name, value), *rest = out.items()
        if rest:
            raise SystemExit(f"split: the head has {len(out)} outputs, expected one")
        return name, value

    def run_tail(self, name: str, split: np.ndarray) -> dict[str, np.ndarray]:
        return self._names(self.tail.run({name: split}))

    def _names(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o["name"] for o in self.manifest.get("outputs", [])]
        if names and len(outputs) == len(names) and not set(names) <= set(outputs):
            return dict(zip(names, outputs.values(), strict=True))  # engines that number outputs
        return outputs


def run_samples(
    model: BoardSplit,
    samples: list[dict[str, np.ndarray]],
    *,
    mode: str,
    server: str | None,
    secret: bytes,
    policy: str,
    link: str | None,
    timeout_s: float,
    warmup: bool,
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, Any]]]:
    """Each sample through `mode`; one connection for all samples (reconnecting when it broke)."""
    from edgefit.runtime.split.client import SplitClient, SplitUnavailable
    from edgefit.runtime.split.codec import Tensor
    from edgefit.runtime.split.shaper import Shaper

    client = None
    if mode != "local":
        client = SplitClient(
            server, secret, timeout_s=timeout_s, shaper=Shaper.parse(link) if link else None, compress=True
        )
    outs: list[dict[str, np.ndarray]] = []
    records: list[dict[str, Any]] = []
    todo = ([samples[0]] if warmup and samples else []) + samples
    try:
        for i, feeds in enumerate(todo):
            out, rec = _one(model, client, feeds, mode, policy, Tensor, SplitUnavailable)
            if warmup and i == 0:
                continue  # maps weights, opens the connection: not part of the measured runs
            outs.append(out)
            records.append(rec)
    finally:
        if client is not None:
            client.close()
    return outs, records


def _one(
    model: BoardSplit, client: Any, feeds: dict[str, np.ndarray], mode: str, policy: str,
    tensor_cls: Any, unavailable: type[Exception],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # fmt: skip
    rec: dict[str, Any] = {"mode": mode, "bytes_sent": 0, "bytes_received": 0, "payload_bytes": 0}
    t0 = time.perf_counter()
    split_name, split = None, None
    if mode in ("split", "local"):
        split_name, split = model.run_head(feeds)
        rec["head_ms"] = (time.perf_counter() - t0) * 1e3
        rec["payload_bytes"] = int(split.nbytes) if mode == "split" else 0
    if mode == "local":
        t1 = time.perf_counter()
        out = model.run_tail(split_name, split)  # type: ignore[arg-type]
        rec["tail_ms"] = (time.perf_counter() - t1) * 1e3
        rec["device_ms"] = rec["total_ms"] = (time.perf_counter() - t0) * 1e3
        return out, rec
    try:
        if client.sock is None:
            client.connect()
            sha = client.info.get("head_sha256")
            if sha and model.head_sha256 and sha != model.head_sha256:
                client.close()
                raise SystemExit(
                    f"split: the server {client.server} serves a different bundle ({client.info.get('model')});"
                    " serve the bundle that was flashed"
                )
        if mode == "split":
            info = client.info
            tensors = [tensor_cls(split_name, split, info.get("scale"), info.get("zero_point"))]
        else:
            tensors = [tensor_cls(n, np.ascontiguousarray(feeds[n], dtype=np.float32)) for n in model.inputs]
            rec["payload_bytes"] = int(sum(t.array.nbytes for t in tensors))
        out, stats = client.infer("tail" if mode == "split" else "full", tensors)
        rec.update(
            bytes_sent=stats["bytes_sent"], bytes_received=stats["bytes_received"],
            compression=stats["compression"], server_ms=stats["server_compute_s"] * 1e3,
            network_ms=(stats["round_trip_s"] - stats["server_queue_s"] - stats["server_compute_s"]) * 1e3,
        )  # fmt: skip
        rec["device_ms"] = rec.get("head_ms", 0.0)
    except unavailable as exc:
        if policy == "fail":
            raise SystemExit(f"split inference failed: {exc}") from None
        t1 = time.perf_counter()
        if split is None:
            split_name, split = model.run_head(feeds)
        out = model.run_tail(split_name, split)  # type: ignore[arg-type]
        rec.update(mode="local-fallback", fallback_reason=str(exc), tail_ms=(time.perf_counter() - t1) * 1e3)
        rec["device_ms"] = (time.perf_counter() - t0) * 1e3
    rec["total_ms"] = (time.perf_counter() - t0) * 1e3
    return out, rec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=os.path.expanduser("~/edgefit/current"))
    parser.add_argument("--server", help="HOST:PORT of 'edgefit serve' (not needed with --mode local)")
    parser.add_argument("--mode", choices=MODES, default="split")
    parser.add_argument("--policy", choices=("fallback", "fail"), default="fallback")
    parser.add_argument(
        "--link", help="shape the board's link: wifi, lte, 3g or BANDWIDTH[,LATENCY[,JITTER]]"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--warmup", action="store_true", help="run the first sample once unmeasured")
    args = parser.parse_args(argv)
    if args.mode != "local" and not args.server:
        parser.error("--server is needed unless --mode local")

    samples, extra = unpack_samples(sys.stdin.buffer.read())
    secret = extra[SECRET_KEY].tobytes() if SECRET_KEY in extra else b""
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # nothing an engine prints may corrupt the npz on stdout
    try:
        t0 = time.perf_counter()
        model = BoardSplit(Path(args.bundle), args.threads)
        load_ms = (time.perf_counter() - t0) * 1e3
        if not samples:  # no inputs sent: the bundle's own reference inputs, one sample
            with np.load(Path(args.bundle) / "reference_inputs.npz") as npz:
                samples = [{k: npz[k] for k in model.inputs}]
        outs, records = run_samples(
            model, samples, mode=args.mode, server=args.server, secret=secret, policy=args.policy,
            link=args.link, timeout_s=args.timeout, warmup=args.warmup,
        )  # fmt: skip
    except UserError as exc:  # a wrong secret, a rejected request: one line for the host to show
        raise SystemExit(f"split: {exc}") from None
    finally:
        sys.stdout = real_stdout
    report = {
        "engine": model.head.name,
        "bundle": Path(args.bundle).resolve().name,
        "load_ms": load_ms,
        "samples": records,
    }
    payload = pack_samples(outs, {REPORT_KEY: np.frombuffer(json.dumps(report).encode(), dtype=np.uint8)})
    sys.stdout.buffer.write(payload)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
