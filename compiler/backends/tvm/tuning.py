"""MetaSchedule tuning for the TVM backend: measured traces kept in a database directory reused across
runs (by default in the edgefit cache, one per target); trials already recorded are not measured again.

apache-tvm 0.27.0.post1 with apache-tvm-ffi 0.1.15 segfaults in `ffi::ToJSONGraph` on any object with a
dtype field (IntImm, PrimType, every PrimFunc), and MetaSchedule's stock path serialises there: the
JSON database's workloads, LocalBuilder's module pickling, ReplayTrace/evolutionary search's module deep
copy, MutateParallel/MutateComputeLocation. This path avoids all of them: random design-space samples
(ReplayFunc) without mutators, an in-process builder, an in-memory database, and our own JSON records
of the traces (plain lists and numbers) keyed by the workload's structural hash.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from edgefit.compiler.artifact import atomic_write_bytes
from edgefit.errors import UserError

RECORDS = "records.json"


def _say(msg: str) -> None:
    print(f"[edgefit tvm] {msg}", file=sys.stderr, flush=True)


def default_db(target_name: str) -> Path:
    """`<edgefit cache>/tvm-tuning/<target>`: records are keyed by workload and TVM target, so
    every model compiled for the target shares (and profits from) one database."""
    from edgefit.runtime.board.paths import cache_dir

    return cache_dir() / "tvm-tuning" / target_name


def physical_cores() -> int:
    """Physical cores of this host (MetaSchedule's `num-cores`), from psutil when installed."""
    try:
        import psutil

        return int(psutil.cpu_count(logical=False) or os.cpu_count() or 1)
    except ImportError:
        return os.cpu_count() or 1


def check_host(host: bool) -> None:
    if not host:
        raise UserError(
            "TVM tuning measures candidates on this host; tune for a host target "
            "(e.g. --target x86_64), board tuning over RPC is not supported"
        )


def workload_key(task_mod) -> str:
    """The structural hash of a task's TIR module (stable across processes for one TVM version)."""
    import tvm_ffi

    return f"{tvm_ffi.structural_hash(task_mod) & (2**64 - 1):016x}"


def _to_json(obj):
    """A trace's JSON object (FFI arrays, maps, IntImm/FloatImm) as plain Python for `json.dumps`."""
    import tvm

    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tvm.tirx.IntImm):
        return bool(obj.value) if "bool" in str(obj.ty) else int(obj.value)
    if isinstance(obj, tvm.tirx.FloatImm):
        return float(obj.value)
    if hasattr(obj, "items"):
        return {str(k): _to_json(v) for k, v in obj.items()}
    return [_to_json(x) for x in obj]


def load_records(db: Path) -> list[dict]:
    path = db / RECORDS
    if not path.is_file():
        return []
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"tuning database {path} is unreadable ({e}); delete it to start afresh") from e
    if not isinstance(records, list):
        raise UserError(f"tuning database {path} is not a list of records; delete it to start afresh")
    return records


def _save_records(db: Path, records: list[dict]) -> None:
    atomic_write_bytes(db / RECORDS, json.dumps(records).encode())


def recorded_trials(tasks, target, db: Path) -> int:
    """How many measurements `db` holds for these tasks' workloads on `target` (failed builds and runs
    included: they were trials too, and measuring them again would fail again)."""
    wanted = {workload_key(t.dispatched[0]) for t in tasks}
    return sum(r["workload"] in wanted and r["target"] == str(target) for r in load_records(db))


def _builder():
    """Builds candidates in this process: LocalBuilder pickles each module to its workers, which
    serialises it with ToJSONGraph (the crash above)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export

    @derived_object
    class InProcessBuilder(PyBuilder):
        def build(self, build_inputs):
            results = []
            for bi in build_inputs:
                try:
                    results.append(
                        BuilderResult(default_export(default_build(bi.mod, bi.target, None)), None)
                    )
                except Exception as e:  # a candidate that does not build is a failed trial, not an abort
                    results.append(BuilderResult(None, f"{type(e).__name__}: {e}"))
            return results

    return InProcessBuilder()


def _recorder(db: Path, target, total: int, progress: bool):
    """A MeasureCallback that appends each measured batch to `db` (renamed into place, so an
    interrupted run keeps what it measured) and advances the progress bar."""
    from tqdm import tqdm
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class Recorder(PyMeasureCallback):
        def __init__(self) -> None:
            self.bar = tqdm(total=total, desc="tuning", unit="trial", disable=not progress, file=sys.stderr)
            self.best: dict[int, float] = {}
            self.records = load_records(db)  # read once; every batch appends and rewrites the file

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            task = task_scheduler.tasks_[task_id].ctx
            key = workload_key(task.mod)
            records = self.records
            for cand, built, ran in zip(measure_candidates, builder_results, runner_results, strict=True):
                ok = built.error_msg is None and ran.error_msg is None and ran.run_secs
                secs = [float(s) for s in ran.run_secs] if ok else None
                if secs:
                    self.best[task_id] = min(self.best.get(task_id, float("inf")), sum(secs) / len(secs))
                records.append(
                    {
                        "workload": key,
                        "task": str(task.task_name),
                        "target": str(target),
                        "run_secs": secs,
                        "trace": _to_json(cand.sch.trace.as_json(remove_postproc=False)),
                    }
                )
            _save_records(db, records)
            best = self.best.get(task_id)
            self.bar.set_postfix_str(
                f"{task.task_name}: " + (f"{best * 1e6:.1f} us" if best is not None else "no valid candidate")
            )
            self.bar.update(len(runner_results))

    return Recorder()


def _batch(todo: int, n_tasks: int) -> int:
    """Candidates per measured batch: about todo / tasks, at most 16, preferably dividing `todo` (the
    scheduler stops only after a whole batch, so a divisor spends the budget exactly)."""
    want = min(16, max(2, todo // max(1, n_tasks)))
    return next((b for b in range(want, 1, -1) if todo % b == 0), want)


def _tune(tasks, target, db: Path, todo: int, progress: bool) -> None:
    # MetaSchedule's logs only (one run here left 197 MB behind): what was measured is in `db`.
    with tempfile.TemporaryDirectory(prefix="edgefit-tune-") as work:
        _tune_logged(tasks, target, db, todo, progress, Path(work))


def _tune_logged(tasks, target, db: Path, todo: int, progress: bool, work: Path) -> None:
    import tvm.s_tir.meta_schedule as ms
    from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, LocalRunner

    loggers = ms.logging.get_loggers_from_work_dir(str(work), [t.task_name for t in tasks])
    # MetaSchedule logs every batch at INFO on the console: keep that in its log files, the bar says it.
    for handler in logging.getLogger("tvm.s_tir.meta_schedule").handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)
    contexts = [
        ms.TuneContext(
            mod=task.dispatched[0],
            target=task.target,
            # No mutators: MutateParallel/MutateComputeLocation serialise the module on init.
            space_generator=ms.space_generator.PostOrderApply(mutator_probs={}),
            # ReplayFunc samples the design space afresh per candidate; ReplayTrace and evolutionary
            # search deep-copy the module through ToJSONGraph (and evolution needs xgboost anyway).
            search_strategy=ms.search_strategy.ReplayFunc(),
            task_name=task.task_name,
            logger=logger,
            num_threads=1,
        )
        for task, logger in zip(tasks, loggers, strict=True)
    ]
    ms.tune.tune_tasks(
        tasks=contexts,
        task_weights=[float(t.weight) for t in tasks],
        work_dir=str(work),
        max_trials_global=todo,
        num_trials_per_iter=_batch(todo, len(tasks)),
        builder=_builder(),
        # Measured in a separate process (only paths cross): a candidate that crashes is a failed trial.
        runner=LocalRunner(evaluator_config=EvaluatorConfig(number=3, repeat=1, min_repeat_ms=20)),
        database=ms.database.MemoryDatabase(),
        cost_model="random",
        measure_callbacks=[_recorder(db, target, todo, progress)],
    )


def _tune_in_child(tasks, target, db: Path, todo: int, progress: bool) -> None:
    """Tune in a forked child: a crash inside TVM's C++ becomes one clear error, not a dead compiler;
    what was measured before it stays in `db`."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(
        target=_tune, args=(tasks, target, db, todo, progress), name="edgefit-tvm-tuning"
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        how = f"signal {-child.exitcode}" if child.exitcode < 0 else f"exit status {child.exitcode}"
        raise UserError(
            f"TVM MetaSchedule tuning failed ({how}); records so far stay in {db}; "
            f"compile without --tune-trials to use the default schedules"
        )


def best_database(tasks, target, db: Path):
    """An in-memory MetaSchedule database holding, per task, the fastest recorded trace replayed on
    the task's module (None when `db` has no valid record for any of them)."""
    import tvm.s_tir.meta_schedule as ms
    from tvm.s_tir import Schedule, Trace

    best: dict[str, dict] = {}
    for r in load_records(db):
        if r["target"] == str(target) and r["run_secs"]:
            mean = sum(r["run_secs"]) / len(r["run_secs"])
            if r["workload"] not in best or mean < best[r["workload"]]["mean"]:
                best[r["workload"]] = {**r, "mean": mean}
    database = ms.database.MemoryDatabase()
    applied = 0
    for task in tasks:
        rec = best.get(workload_key(task.dispatched[0]))
        if rec is None:
            continue
        sch = Schedule(task.dispatched[0])
        Trace.apply_json_to_schedule(rec["trace"], sch)
        workload = database.commit_workload(task.dispatched[0])
        database.commit_tuning_record(
            ms.database.TuningRecord(
                sch.trace,
                workload,
                run_secs=rec["run_secs"],
                target=target,
                args_info=ms.arg_info.ArgInfo.from_prim_func(task.dispatched[0]["main"]),
            )
        )
        applied += 1
    return database if applied else None, applied


def tune(mod, target, trials: int, db: Path, host: bool, progress: bool = True):
    """MetaSchedule over the module's tasks until `db` holds `trials` measurements for them (a second
    run with the same graph and trials measures nothing), then each task's best record applied."""
    import tvm.s_tir.meta_schedule as ms
    from tvm import relax

    if trials < 0:
        raise UserError(f"tune trials must be >= 0, got {trials}")
    try:
        db.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the tuning database directory {db}: {e.strerror}") from e
    if not os.access(db, os.W_OK):
        raise UserError(f"tuning database directory {db} is not writable")
    tasks = ms.relax_integration.extract_tasks(mod, target)
    if trials > 0:
        check_host(host)
        if importlib.util.find_spec("psutil") is None:
            raise UserError("MetaSchedule tuning needs psutil, which is not installed (pip install psutil)")
        have = recorded_trials(tasks, target, db)
        todo = trials - have
        if todo <= 0:
            _say(f"tuning: reusing {have} recorded trials for {len(tasks)} tasks from {db}")
        else:
            _say(f"tuning {len(tasks)} tasks: {todo} trials ({have} already recorded) into {db}")
            start = time.time()
            _tune_in_child(tasks, target, db, todo, progress)
            _say(f"tuning done in {time.time() - start:.0f} s")
    database, applied = best_database(tasks, target, db)
    if database is None:
        _say("tuning: no valid record for these tasks; default schedules")
        return mod
    _say(
        f"tuning: applied tuned schedules to {applied}/{len(tasks)} tasks (the rest measured faster untuned)"
    )
    with target, database:
        return relax.transform.MetaScheduleApplyDatabase()(mod)
