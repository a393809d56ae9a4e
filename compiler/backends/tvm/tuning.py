"""MetaSchedule tuning for the TVM backend: records kept in a database reused across runs (by default
in the edgefit cache, one per target), trials already recorded are not measured again, progress on stderr."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

from edgefit.errors import UserError


def _say(msg: str) -> None:
    print(f"[edgefit tvm] {msg}", file=sys.stderr, flush=True)


def default_db(target_name: str) -> Path:
    """`<edgefit cache>/tvm-tuning/<target>`: records are keyed by workload and TVM target, so
    every model compiled for the target shares (and profits from) one database."""
    from edgefit.runtime.board.paths import cache_dir

    return cache_dir() / "tvm-tuning" / target_name


def _progress_callback(total: int):
    """A MeasureCallback printing `trials done/total, task, best latency` after each measured batch."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class Progress(PyMeasureCallback):
        def __init__(self) -> None:
            self.done = 0
            self.best: dict[int, float] = {}
            self.start = time.time()

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            self.done += len(runner_results)
            ok = [
                sum(float(s) for s in r.run_secs) / len(r.run_secs)
                for r in runner_results
                if r.error_msg is None and r.run_secs
            ]
            if ok:
                self.best[task_id] = min(self.best.get(task_id, float("inf")), min(ok))
            best = self.best.get(task_id)
            _say(
                f"tuning: {self.done}/{total} trials ({time.time() - self.start:.0f} s), task {task_id}: "
                + (f"best {best * 1e6:.1f} us" if best is not None else "no valid candidate yet")
            )

    return Progress()


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


def recorded_trials(tasks, db: Path) -> int:
    """How many measurements `db` already holds for these tasks' workloads (failed builds included:
    they were trials too, and measuring them again would fail again)."""
    import tvm
    import tvm.s_tir.meta_schedule as ms

    if not (db / "database_tuning_record.json").is_file():
        return 0
    database = ms.database.JSONDatabase(work_dir=str(db), module_equality="structural")
    wanted = {tvm.ir.structural_hash(task.dispatched[0]) for task in tasks}
    return sum(tvm.ir.structural_hash(r.workload.mod) in wanted for r in database.get_all_tuning_records())


def _tune_in_child(mod, target, db: Path, todo: int, n_tasks: int, cost_model: str, strategy: str) -> None:
    """Run MetaSchedule in a forked child: a crash inside TVM's C++ (the apache-tvm 0.27 wheel
    segfaults in TuneContext initialization here) becomes one clear error, not a dead compiler."""
    import multiprocessing

    def work() -> None:
        import tvm.s_tir.meta_schedule as ms

        ms.relax_integration.tune_relax(
            mod,
            {},
            target,
            str(db),
            max_trials_global=todo,
            num_trials_per_iter=min(64, max(4, todo // max(1, n_tasks))),
            cost_model=cost_model,
            strategy=strategy,
            measure_callbacks=[*ms.MeasureCallback.create("default"), _progress_callback(todo)],
        )

    child = multiprocessing.get_context("fork").Process(target=work, name="edgefit-tvm-tuning")
    child.start()
    child.join()
    if child.exitcode != 0:
        how = f"signal {-child.exitcode}" if child.exitcode < 0 else f"exit status {child.exitcode}"
        raise UserError(
            f"TVM MetaSchedule tuning crashed ({how}) inside this TVM build; records so far stay in "
            f"{db}; compile without --tune-trials to use the default schedules"
        )


def tune(mod, target, trials: int, db: Path, host: bool):
    """MetaSchedule over the module's tasks until `db` holds `trials` measurements for them (a
    second run with the same graph and trials measures nothing), then the best records applied."""
    import tvm.s_tir.meta_schedule as ms
    from tvm import relax

    db.mkdir(parents=True, exist_ok=True)
    if trials > 0:
        check_host(host)
        if importlib.util.find_spec("psutil") is None:
            raise UserError("MetaSchedule tuning needs psutil, which is not installed (pip install psutil)")
        tasks = ms.relax_integration.extract_tasks(mod, target)
        have = recorded_trials(tasks, db)
        todo = trials - have
        if todo <= 0:
            _say(f"tuning: reusing {have} recorded trials for {len(tasks)} tasks from {db}")
        else:
            # XGBoost is MetaSchedule's default cost model. Without it, evolution has nothing to
            # steer by and its 512-candidate generations take minutes per task on a small machine:
            # measure random samples of the design space instead (replay-trace).
            xgb = importlib.util.find_spec("xgboost") is not None
            cost_model, strategy = ("xgb", "evolutionary") if xgb else ("random", "replay-trace")
            _say(f"tuning {len(tasks)} tasks: {todo} trials ({have} already recorded) into {db}")
            start = time.time()
            _tune_in_child(mod, target, db, todo, len(tasks), cost_model, strategy)
            _say(f"tuning done in {time.time() - start:.0f} s")
    with target:
        return relax.transform.MetaScheduleApplyDatabase(str(db))(mod)
