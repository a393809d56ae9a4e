"""The edgefit pytest plugin: `--edgefit-*` options, fixtures (compiled_model, reference_model,
edgefit_runner over backends, power_meter, board, edgefit_validate, edgefit_benchmark) and the report.

Load it with `pytest -p edgefit.runtime.harness.plugin` (or the `edgefit` pytest11 entry point). A user's
test module needs only:

    def test_accuracy(edgefit_runner, edgefit_validate):
        edgefit_validate(edgefit_runner)              # or edgefit_validate(edgefit_runner, dataset=my_ds)

    def test_latency(edgefit_runner, edgefit_benchmark):
        edgefit_benchmark(edgefit_runner)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from edgefit.errors import UserError
from edgefit.runtime.harness import accuracy
from edgefit.runtime.harness.options import HarnessOptions, add_options, from_config
from edgefit.runtime.harness.results import JSON_NAME, stats_dict
from edgefit.runtime.harness.runners import Runner
from edgefit.runtime.harness.state import HarnessState, Power, combos

STATE = pytest.StashKey[HarnessState]()
MD_NAME = "edgefit-bench.md"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    try:
        opts = from_config(config)
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STATE] = HarnessState(opts)


def _state(config: pytest.Config) -> HarnessState:
    return config.stash[STATE]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that use a runner (or the backend and compression fixtures) run once per pair; session-scoped
    parameters make pytest group the tests of one pair, so each model is compiled and loaded once."""
    opts = _state(metafunc.config).opts
    names = metafunc.fixturenames
    has_b, has_c = "edgefit_backend" in names, "edgefit_compression" in names
    if has_b and has_c:
        pairs = combos(opts)
        metafunc.parametrize(
            ("edgefit_backend", "edgefit_compression"),
            pairs,
            ids=[f"{b}-{c}" for b, c in pairs],
            scope="session",
        )
    elif has_b:
        metafunc.parametrize("edgefit_backend", opts.backends, scope="session")
    elif has_c:
        metafunc.parametrize("edgefit_compression", opts.compressions, scope="session")


@pytest.fixture(scope="session")
def edgefit_options(request: pytest.FixtureRequest) -> HarnessOptions:
    return _state(request.config).opts


@pytest.fixture(scope="session")
def edgefit_state(request: pytest.FixtureRequest) -> HarnessState:
    return _state(request.config)


@pytest.fixture(scope="session")
def edgefit_target(edgefit_options: HarnessOptions) -> Any:
    """The targets.Target under test (--edgefit-target)."""
    from edgefit import targets

    return targets.load(edgefit_options.target)


@pytest.fixture(scope="session")
def reference_model(edgefit_state: HarnessState) -> Any:
    """The uncompressed PyTorch module (digits_cnn: the trained digits teacher)."""
    return edgefit_state.reference_module()


@pytest.fixture
def compiled_model(edgefit_state: HarnessState, request: pytest.FixtureRequest) -> Any:
    """The Bundle compiled (or reused from the cache) for the backend and compression under test."""
    backend = _param(request, "edgefit_backend", edgefit_state.opts.backends[0])
    compression = _param(request, "edgefit_compression", edgefit_state.opts.compressions[0])
    return edgefit_state.bundle(backend, compression)


def _param(request: pytest.FixtureRequest, name: str, default: str) -> str:
    callspec = getattr(request.node, "callspec", None)
    return callspec.params.get(name, default) if callspec else default


@pytest.fixture(scope="session")
def board(edgefit_state: HarnessState) -> Any:
    """The board of --edgefit-board as a BoardSession (bounded retries); skips without one."""
    if not edgefit_state.opts.board:
        pytest.skip("no board given (pass --edgefit-board USER@HOST:PORT)")
    return edgefit_state.board()


@pytest.fixture
def edgefit_runner(edgefit_state: HarnessState, edgefit_backend: str, edgefit_compression: str) -> Runner:
    """The model loaded on one backend (parametrized over --edgefit-backends x --edgefit-compressions)."""
    try:
        return edgefit_state.runner(edgefit_backend, edgefit_compression)
    except UserError as exc:  # an unreachable board, a model that does not compile: one line, no traceback
        pytest.fail(f"{edgefit_backend} {edgefit_compression}: {exc}", pytrace=False)


@pytest.fixture
def power_meter(edgefit_state: HarnessState, request: pytest.FixtureRequest) -> Power:
    """The target's power sensor, or its estimate when none answers; `.note` says which (one line)."""
    return edgefit_state.power(_param(request, "edgefit_backend", "native"))


def _label(runner: Runner) -> str:
    return f"{runner.backend} {runner.compression}"  # type: ignore[attr-defined]


@pytest.fixture
def edgefit_validate(edgefit_state: HarnessState) -> Callable[[Runner], accuracy.AccuracyReport]:
    """`edgefit_validate(runner)`: accuracy vs the PyTorch reference, recorded; a violated threshold
    (--edgefit-max-drop, --edgefit-min-agreement) fails the test and says by how much."""

    def validate(runner: Runner, dataset: Any = None, name: str = "dataset") -> accuracy.AccuracyReport:
        """`dataset`: any torch Dataset of (input, label) pairs instead of --edgefit-dataset."""
        bundle = runner.bundle  # type: ignore[attr-defined]
        if dataset is None:
            samples, reference = edgefit_state.samples(bundle)
        else:
            samples = accuracy.samples_from_dataset(dataset, name, edgefit_state.opts.samples)
            reference = accuracy.reference_outputs(edgefit_state.reference_module(), samples)
        inp, out = bundle.manifest["inputs"][0]["name"], bundle.manifest["outputs"][0]["name"]
        report = accuracy.compare(accuracy.run_outputs(runner, samples, inp, out), reference, samples)
        o = edgefit_state.opts
        failures = accuracy.threshold_failures(report, _label(runner), o.max_drop, o.min_agreement)
        edgefit_state.record(runner, accuracy=report.as_dict(), failures=failures, passed=not failures)
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)
        return report

    return validate


@pytest.fixture
def edgefit_benchmark(
    edgefit_state: HarnessState, request: pytest.FixtureRequest
) -> Callable[[Runner], dict[str, Any]]:
    """`edgefit_benchmark(runner)`: latency through pytest-benchmark (warm-up, fixed rounds, median/IQR),
    on the host or timed on the board itself; energy per inference from a PowerSampler around a window of
    back-to-back inferences right after the timed rounds (labelled estimated when the meter is the model)."""

    def bench(runner: Runner) -> dict[str, Any]:
        from edgefit.runtime.harness.power import energy_per_inference

        o = edgefit_state.opts
        benchmark = request.getfixturevalue("benchmark")
        power = edgefit_state.power(runner.backend)
        benchmark.group = f"{o.model} on {o.target}"
        benchmark.extra_info.update(
            backend=runner.backend, compression=runner.compression, engine=runner.engine
        )  # type: ignore[attr-defined]
        if runner.backend == "board":
            times = runner.time_on_board(o.rounds, o.warmup)  # type: ignore[attr-defined]
            _feed_benchmark(benchmark, times)
            busy = sum(times)
            # The estimate: the board's active power over the time it was measured busy.
            energy = energy_per_inference(
                [(0.0, power.meter.active_w), (busy, power.meter.active_w)], len(times), power.idle_w,
                kind="estimated", source=power.meter.name,
            )  # fmt: skip
            latency = {"stats": stats_dict(times), "measured_on": "board", "options": {"warmup": o.warmup}}
        else:
            bundle = runner.bundle  # type: ignore[attr-defined]
            feeds = bundle.reference_inputs()
            runner.run(feeds)  # load-time work (allocation, JIT) stays out of the timed rounds
            once = runner.staged(feeds)  # the inputs in the backend's own layout (Runner.staged)
            benchmark.pedantic(once, rounds=o.rounds, warmup_rounds=o.warmup, iterations=1)
            if benchmark.disabled or benchmark.stats is None:
                pytest.skip("benchmarks are disabled (--benchmark-disable): no latency to record")
            energy = _energy_window(
                once, power, o.energy_s, benchmark.stats.stats.median, o.rounds, o.threads
            )
            s = benchmark.stats.stats
            times = list(s.data)
            latency = {"stats": stats_dict(times), "measured_on": "host",
                       "options": {"warmup": o.warmup, "timer": "time.perf_counter"}}  # fmt: skip
        benchmark.extra_info.update(
            energy_per_inference_j=energy.energy_per_inference_j, energy_kind=energy.kind
        )
        return edgefit_state.record(runner, latency=latency, energy=energy.as_dict(), power_note=power.note)

    return bench


def _energy_window(
    once: Callable[[], object],
    power: Power,
    seconds: float,
    median_s: float,
    rounds: int,
    threads: int,
) -> Any:
    """Energy per inference over back-to-back inferences right after the timed rounds, lasting at least
    `seconds`: pytest-benchmark's per-round bookkeeping would otherwise be billed to the model (it is
    several times a small model's latency), and a sensor needs a window of many sampling periods."""
    from edgefit.runtime.harness.power import PowerSampler, Sample, energy_per_inference

    n = max(rounds, math.ceil(seconds / max(median_s, 1e-7)))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with PowerSampler(power.meter) as sampler:
        for _ in range(n):
            once()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if power.kind != "estimated":
        return sampler.report(n, power.idle_w)
    # The estimate assumes the board busy for the whole window; on a shared machine the process is
    # descheduled part of it, so the model is applied at the CPU utilisation this process really had.
    busy = min(1.0, cpu / max(wall * threads, 1e-9))
    idle = power.idle_w
    samples = [Sample(s.t, idle + (s.watts - idle) * busy) for s in sampler.samples]
    return energy_per_inference(
        samples,
        n,
        idle,
        kind="estimated",
        source=f"{power.meter.name} at the measured CPU utilisation {busy:.0%}",
    )


def _feed_benchmark(benchmark: Any, times: list[float]) -> None:
    """Put times measured on the board into pytest-benchmark's own table and --benchmark-json."""
    if benchmark.disabled:
        return
    stats = benchmark._make_stats(1)  # pytest-benchmark has no public way to add external timings
    for t in times:
        stats.update(t)
    benchmark._mode = "edgefit board timing"


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    state.close()
    if state.opts.report is not None and state.results.records():
        write_report(state, state.opts.report)


def write_report(state: HarnessState, out: Any) -> list[Any]:
    """JSON (merged with earlier runs into the same DIR), Markdown table and PNG plots."""
    import json
    from pathlib import Path

    from edgefit.runtime.harness import plots, report
    from edgefit.runtime.harness.results import to_json, write_text_atomic

    out = Path(out)
    state.results.merge_file(out / JSON_NAME)
    data = to_json(state.results)
    write_text_atomic(out / JSON_NAME, json.dumps(data, indent=2, default=float) + "\n")
    records = data["edgefit"]["records"]
    write_text_atomic(out / MD_NAME, report.markdown(records, state.results.notes, state.results.incidents))
    written = [out / JSON_NAME, out / MD_NAME, *plots.write_plots(records, out)]
    state.written = written  # type: ignore[attr-defined]
    return written


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.results.records():
        return
    tr = terminalreporter
    tr.section("edgefit")
    for note in state.results.notes:
        tr.write_line(f"note: {note}")
    for incident in state.results.incidents:
        tr.write_line(f"board retry: {incident}")
    for path in getattr(state, "written", []):
        tr.write_line(f"wrote {path}")
