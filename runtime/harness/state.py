"""What one pytest session of the harness holds: compiled bundles, the loaded runner, the reference's
outputs, the power meter, the board, and the results the report is written from."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefit.runtime.bundle import Bundle
from edgefit.runtime.harness import accuracy
from edgefit.runtime.harness.build import ARTIFACT_BACKEND, compiled_bundle
from edgefit.runtime.harness.options import HarnessOptions
from edgefit.runtime.harness.results import Results
from edgefit.runtime.harness.runners import MODULE_BACKENDS, Runner, load_reference_module, make_host_runner


@dataclass
class Power:
    """The meter the energy figures come from, the one-line note saying which, and its idle baseline."""

    meter: Any
    note: str
    idle_w: float

    @property
    def kind(self) -> str:
        return self.meter.kind


def combos(opts: HarnessOptions) -> list[tuple[str, str]]:
    """(backend, compression) pairs to test: torch and onnxruntime run the uncompressed module, so only dense."""
    return [
        (b, c) for b in opts.backends for c in opts.compressions if b not in MODULE_BACKENDS or c == "dense"
    ]


class HarnessState:
    def __init__(self, opts: HarnessOptions) -> None:
        self.opts = opts
        self.results = Results()
        self._bundles: dict[tuple[str, str], Bundle] = {}
        self._runner: tuple[tuple[str, str], Runner] | None = None
        self._module: Any = None
        self._samples: accuracy.Samples | None = None
        self._reference: np.ndarray | None = None
        self._power: Power | None = None
        self._board: Any = None
        self._workdir = Path(tempfile.mkdtemp(prefix="edgefit-harness-"))

    # -- what is under test ---------------------------------------------------------------------------
    def bundle(self, backend: str, compression: str) -> Bundle:
        key = (ARTIFACT_BACKEND.get(backend, backend), compression)
        if key not in self._bundles:
            o = self.opts
            self._bundles[key] = compiled_bundle(
                o.model, o.target, key[0], compression, finetune_epochs=o.finetune_epochs,
                weights=o.weights, cache=o.cache, rebuild=o.rebuild,
            )  # fmt: skip
        return self._bundles[key]

    def reference_module(self) -> Any:
        if self._module is None:
            self._module = load_reference_module(self.opts.model, self.opts.weights)
        return self._module

    def board(self) -> Any:
        if self._board is None:
            from edgefit.runtime.harness.board import BoardSession

            self._board = BoardSession(
                self.opts.board,  # type: ignore[arg-type]
                attempts=self.opts.board_retries,
                accept_new=self.opts.accept_new,
            )
        return self._board

    def runner(self, backend: str, compression: str) -> Runner:
        """The loaded runner; only one is alive at a time, so runtimes never share the process's cores."""
        key = (backend, compression)
        if self._runner is not None and self._runner[0] == key:
            return self._runner[1]
        self.close_runner()
        bundle = self.bundle(backend, compression)
        if backend == "board":
            from edgefit.runtime.harness.board import BoardRunner

            runner: Runner = BoardRunner(self.board(), bundle, self.opts.threads)
        else:
            module = self.reference_module() if backend in MODULE_BACKENDS else None
            runner = make_host_runner(backend, bundle, module, self.opts.threads, self._workdir / backend)
        runner.compression = compression  # type: ignore[attr-defined]
        runner.bundle = bundle  # type: ignore[attr-defined]
        self._runner = (key, runner)
        return runner

    def close_runner(self) -> None:
        if self._runner is not None:
            self._runner[1].close()
            self._runner = None

    def close(self) -> None:
        self.close_runner()
        import shutil

        shutil.rmtree(self._workdir, ignore_errors=True)
        if self._board is not None:
            self.results.incidents += [i for i in self._board.incidents if i not in self.results.incidents]

    # -- accuracy ---------------------------------------------------------------------------------------
    def samples(self, bundle: Bundle) -> tuple[accuracy.Samples, np.ndarray]:
        if self._samples is None:
            shape = bundle.manifest["inputs"][0]["shape"]
            self._samples = accuracy.load_samples(
                self.opts.model, shape, self.opts.dataset, self.opts.samples
            )
            self._reference = accuracy.reference_outputs(self.reference_module(), self._samples)
        assert self._reference is not None
        return self._samples, self._reference

    # -- power ------------------------------------------------------------------------------------------
    def power(self, backend: str) -> Power:
        from edgefit.runtime.harness.power import EstimatedPower, measure_idle, open_meter

        if backend == "board":
            # The sensor readers read this machine's sysfs; a remote board's sensor is not reachable from here.
            from edgefit import targets

            meter = EstimatedPower(targets.load(self.opts.target))
            note = f"board {self.opts.board}: its power sensor is not read over SSH; using {meter.describe()}"
            self.results.note(note)
            return Power(meter, note, meter.idle_w)
        if self._power is None:
            meter, note = open_meter(self.opts.target, prefer=self.opts.power_source)
            # The estimate's idle level is a constant; only a real sensor needs a measured baseline.
            idle = (
                meter.idle_w if isinstance(meter, EstimatedPower) else measure_idle(meter, self.opts.idle_s)
            )
            self._power = Power(meter, note, idle)
            self.results.note(f"power ({self.opts.target}): {note}")
        return self._power

    # -- records ----------------------------------------------------------------------------------------
    def record(self, runner: Runner, **fields: Any) -> dict[str, Any]:
        bundle: Bundle = runner.bundle  # type: ignore[attr-defined]
        comp = bundle.manifest.get("compression", {})
        module_backend = runner.backend in MODULE_BACKENDS
        return self.results.update(
            self.opts.model, self.opts.target, runner.backend, runner.compression,  # type: ignore[attr-defined]
            engine=runner.engine,
            size_bytes=runner.size_bytes,
            weight_bytes=comp.get("fp32_bytes") if module_backend else comp.get("bytes"),
            fp32_bytes=comp.get("fp32_bytes"),
            bundle=None if module_backend else str(bundle.path),
            **fields,
        )  # fmt: skip
