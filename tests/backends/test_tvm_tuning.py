"""TVM MetaSchedule tuning: the tuned module matches the reference, the trial budget is respected, a
second run reuses the database instead of measuring again, bad input is a one-line UserError."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pytest

from edgefit import targets
from edgefit.compiler import reference
from edgefit.errors import UserError

pytest.importorskip("tvm", reason="apache-tvm is not installed")
pytest.importorskip("psutil", reason="MetaSchedule tuning needs psutil")

from edgefit.compiler.backends.tvm import compile_tvm, run_tvm, tuning

HOST = targets.load("x86_64")


def _tiny(builder):
    b = builder(seed=3)
    x = b.input("x", (1, 3, 8, 8))
    y = b.conv(x, b.weight((8, 3, 3, 3)), padding=(1, 1, 1, 1), act="relu")
    return b.graph(b.op("global_avg_pool", [y], (1, 8, 1, 1)))


@pytest.mark.slow
def test_tuned_module_matches_reference_and_database_is_reused(builder, relerr, tmp_path, capfd, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # MetaSchedule's logs must not stay behind
    graph = _tiny(builder)
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    want = reference.run(graph, feeds)
    db = tmp_path / "db"

    stats = compile_tvm(graph, HOST, tmp_path / "a.so", tune_trials=6, tuning_db=db)
    records = json.loads((db / tuning.RECORDS).read_text())
    # Trial budget: exactly the trials asked for were measured and recorded, some of them valid.
    assert len(records) == 6 and stats["tune_trials"] == 6
    assert any(r["run_secs"] for r in records)
    assert not [p for p in scratch.iterdir() if p.name.startswith("edgefit-tune-")]
    got = run_tvm(tmp_path / "a.so", feeds)
    for name in graph.outputs:
        assert relerr(got[name], want[name]) <= 1e-4

    # Second run, same workload and budget: nothing measured (the file is unchanged), the records
    # replayed (said on stderr) -- checked by content, not by a wall-clock ratio on a shared machine.
    capfd.readouterr()
    compile_tvm(graph, HOST, tmp_path / "b.so", tune_trials=6, tuning_db=db)
    assert json.loads((db / tuning.RECORDS).read_text()) == records
    err = capfd.readouterr().err
    assert "reusing 6 recorded trials" in err and "already recorded" not in err, err
    got = run_tvm(tmp_path / "b.so", feeds)
    for name in graph.outputs:
        assert relerr(got[name], want[name]) <= 1e-4


def test_records_replay_changes_the_schedule(builder, tmp_path):
    """A record applied to its task yields a scheduled function different from the untuned one, and
    a record for another target is ignored."""
    import tvm
    import tvm.s_tir.meta_schedule as ms
    from tvm import relax

    from edgefit.compiler.backends.tvm.build import build_module
    from edgefit.compiler.backends.tvm.compile import legalize

    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    mod = legalize(build_module(_tiny(builder))[0], target)
    tasks = ms.relax_integration.extract_tasks(mod, target)
    conv = next(t for t in tasks if "conv" in t.task_name)
    sch = tvm.s_tir.Schedule(conv.dispatched[0])
    blocks = sch.get_child_blocks(sch.get_sblock("root", "main"))
    loops = sch.get_loops(blocks[-1])
    sch.parallel(loops[0])
    record = {
        "workload": tuning.workload_key(conv.dispatched[0]),
        "task": conv.task_name,
        "target": str(target),
        "run_secs": [1e-5],
        "trace": tuning._to_json(sch.trace.as_json()),
    }
    tuning._save_records(tmp_path, [record, {**record, "target": "other", "run_secs": [1e-9]}])
    database, applied = tuning.best_database(tasks, target, tmp_path)
    assert applied == 1
    with target, database:
        tuned = relax.transform.MetaScheduleApplyDatabase()(mod)
    name = next(gv for gv in mod.get_global_vars() if gv.name_hint == conv.task_name)
    assert "parallel" in tuned[name].script() and "parallel" not in mod[name].script()


def test_bad_input_is_a_user_error(builder, tmp_path):
    with pytest.raises(UserError, match=">= 0"):
        compile_tvm(_tiny(builder), HOST, tmp_path / "a.so", tune_trials=-1)
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / tuning.RECORDS).write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        compile_tvm(_tiny(builder), HOST, tmp_path / "a.so", tune_trials=2, tuning_db=tmp_path / "db")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="tuning database directory"):
        compile_tvm(_tiny(builder), HOST, tmp_path / "a.so", tune_trials=2, tuning_db=blocker / "db")
