"""Reproducer (not collected by pytest): apache-tvm 0.27.0.post1 + apache-tvm-ffi 0.1.15.post2 segfault in
`tvm::ffi::ToJSONGraph` on any object with a dtype field; with apache-tvm-ffi 0.1.14.post1 it prints ok.

Usage: python tests/backends/repro_metaschedule_crash.py [save_json|tune]
  save_json  tvm.ir.save_json(IntImm) - the root cause in one line
  tune       MetaSchedule's stock tune_tir on a 32x32 matmul (crashes initializing MutateParallel)
"""

import sys
import tempfile

import tvm
from tvm import tirx

if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "save_json"
    if what == "save_json":
        print(len(tvm.ir.save_json(tirx.IntImm("int32", 3))), "bytes: ok")
    else:
        import tvm.s_tir.meta_schedule as ms
        from tvm import te

        a = te.placeholder((32, 32), name="a")
        b = te.placeholder((32, 32), name="b")
        k = te.reduce_axis((0, 32), name="k")
        c = te.compute((32, 32), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="c")
        mod = tvm.IRModule({"main": te.create_prim_func([a, b, c])})
        ms.tir_integration.tune_tir(
            mod,
            tvm.target.Target({"kind": "llvm", "num-cores": 1}),
            tempfile.mkdtemp(),
            max_trials_global=4,
            num_trials_per_iter=4,
            cost_model="random",
            strategy="replay-trace",
        )
        print("tuned: ok")
