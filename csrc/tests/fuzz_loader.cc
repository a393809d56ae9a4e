// libFuzzer target for the artifact loader (docs/artifact-format.md) and what runs after it: every
// input goes through load_model_bytes and, when accepted, the executor's node validation, planner
// and one run (fuzz_harness.h). Built by -DEDGEFIT_FUZZ=ON with clang (-fsanitize=fuzzer,address,
// undefined); `make fuzz` runs it on seeds from scripts/fuzz_seeds.py. A crash, sanitizer report
// or any exception other than LoadError is a bug.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  edgefit::fuzzing::run_one(data, size);
  return 0;
}
