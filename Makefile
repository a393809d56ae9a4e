# The README's two commands are `make demo` and `make test`; both run the set-up first.
.PHONY: setup demo test test-all lint format

setup:
	./scripts/setup.sh

demo: setup
	./scripts/demo.sh

# CI's test command: the representative subset (no `slow`), kept under ~25 min on 2 cores.
test: setup
	.venv/bin/python -m pytest -m "not slow" -q

test-all: setup
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
	find csrc -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' | xargs -r .venv/bin/clang-format --dry-run --Werror

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
	find csrc -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' | xargs -r .venv/bin/clang-format -i
