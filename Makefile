# The README's two commands are `make demo` and `make test`; both run the set-up first.
.PHONY: setup demo test test-all lint format test-sanitize fuzz-build fuzz fuzz-ci

setup:
	./scripts/setup.sh

demo: setup
	./scripts/demo.sh

# CI's test command: the C++ tests under ASan/UBSan, a short fuzz of the loader, then the
# representative pytest subset (no `slow`); kept under ~25 min on 2 cores.
test: setup
	$(MAKE) test-sanitize fuzz-ci
	.venv/bin/python -m pytest -m "not slow" -q

test-all: setup
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
	find csrc -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' | xargs -r .venv/bin/clang-format --dry-run --Werror

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
	find csrc -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' | xargs -r .venv/bin/clang-format -i

# ---- C++ under sanitizers and the loader fuzzer, each in its own build directory (never the
# Python extension's). A fresh directory gets Ninja; an existing one keeps its generator.
ASAN_DIR := build/asan
FUZZ_DIR := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_CI_RUNS ?= 200000
# rss_limit: a long run's RSS grows past libFuzzer's 2 GB default (1.3 GB after 2M inputs: ASan's
# quarantine, and the runtime's thread_local scratch vectors keep their high-water mark).
FUZZ_FLAGS = -dict=csrc/tests/fuzz_loader.dict -artifact_prefix=$(FUZZ_DIR)/crashes/ -timeout=20 \
	-rss_limit_mb=4096 -print_final_stats=1
generator = $(if $(wildcard $(1)/CMakeCache.txt),,-G Ninja)

# Debug + ASan/UBSan (-fno-sanitize-recover: UB fails the test), only the C++ test binary.
test-sanitize:
	cmake -S . -B $(ASAN_DIR) $(call generator,$(ASAN_DIR)) -DCMAKE_BUILD_TYPE=Debug \
	  -DEDGEFIT_SANITIZE=ON -DEDGEFIT_BUILD_PYTHON=OFF >/dev/null
	cmake --build $(ASAN_DIR) --target edgefit_core_tests
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --test-dir $(ASAN_DIR) --output-on-failure

# The libFuzzer target (clang) and its seed corpus: small real artifacts, one per weight encoding.
fuzz-build:
	cmake -S . -B $(FUZZ_DIR) $(call generator,$(FUZZ_DIR)) -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGEFIT_FUZZ=ON -DEDGEFIT_BUILD_PYTHON=OFF \
	  -DEDGEFIT_BUILD_TESTS=OFF >/dev/null
	cmake --build $(FUZZ_DIR) --target fuzz_loader
	.venv/bin/python scripts/fuzz_seeds.py $(FUZZ_DIR)/seeds

# `make fuzz FUZZ_SECONDS=600`: grows $(FUZZ_DIR)/corpus; a crash lands in $(FUZZ_DIR)/crashes/.
fuzz: fuzz-build
	mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/crashes
	nice -n 19 $(FUZZ_DIR)/fuzz_loader -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) \
	  $(FUZZ_DIR)/corpus $(FUZZ_DIR)/seeds

# CI: a fixed number of mutations grown from the seeds alone (seed 1: the same inputs every run;
# new inputs go to a scratch corpus, not into the seeds). verbosity=0: final stats and crash
# reports only, not a line per new input.
fuzz-ci: fuzz-build
	rm -rf $(FUZZ_DIR)/ci-corpus && mkdir -p $(FUZZ_DIR)/ci-corpus $(FUZZ_DIR)/crashes
	$(FUZZ_DIR)/fuzz_loader -runs=$(FUZZ_CI_RUNS) -seed=1 -verbosity=0 $(FUZZ_FLAGS) \
	  $(FUZZ_DIR)/ci-corpus $(FUZZ_DIR)/seeds
