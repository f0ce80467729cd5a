# Two entry points for a fresh machine; each sets up the pinned virtual environment it needs.
#   make run    the main job: the whole default DAG (embedded data, CPU) -> reports/tables.md
#   make test   ruff, snakemake --lint and the test suite (what CI runs through .ci/run)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 2
TARGET ?= reports/tables.md

.PHONY: setup run test lint bench clean-outputs

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) $(TARGET)

lint: $(STAMP)
	$(BIN)/ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps vos-benchmark==0.1.0  # comparison only, not a dependency
	$(BIN)/python benchmarks/evaluator_speed.py --workers 2 --repeats 5 --record benchmarks/RESULTS-evaluator.md

clean-outputs:
	rm -rf results resources/generated reports/tables.md reports/embedded reports/ci reports/davis2016 reports/paper .snakemake
