# Two entry points for a fresh machine; each sets up the pinned virtual environment it needs.
#   make run    the main job: the whole default DAG (embedded data, CPU) -> reports/tables.md, report.html
#   make test   ruff, snakemake --lint, the test suite and the regression check (what CI runs: .ci/run)
#   make regression   the ci preset on the shared DAVIS 2016 data, compared with tests/regression/ci-baseline.yaml
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 2
TARGET ?= reports/tables.md
SHARED ?= $(if $(VOS_SHARED),$(VOS_SHARED),../shared)
BASELINE := tests/regression/ci-baseline.yaml
SNAKEMAKE := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake

.PHONY: setup run test lint regression regression-baseline bench clean-outputs

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(STAMP)

run: $(STAMP)
	$(SNAKEMAKE) --cores $(CORES) $(TARGET)
	$(SNAKEMAKE) --report report.html $(TARGET)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(SNAKEMAKE) --lint

test: lint
	$(BIN)/pytest
	$(MAKE) regression

# The ci preset's rows against the committed baseline; skipped, saying why, without the shared data.
# --forceall: Snakemake does not see code changes inside the packages the rules call, so everything reruns.
regression: $(STAMP)
	@if [ ! -d "$(SHARED)/data/davis2016" ]; then \
	  echo "regression check SKIPPED: no shared data at $(SHARED)/data/davis2016 (put ../shared beside the repository or set VOS_SHARED)"; \
	else \
	  $(SNAKEMAKE) --cores $(CORES) --forceall results/ci/summary.csv --config preset=ci shared_dir=$(SHARED) && \
	  $(BIN)/python -m reports regress --summary results/ci/summary.csv --baseline $(BASELINE); \
	fi

# After an intended change of the ci preset's figures: rerun it and rewrite the baseline (commit both).
regression-baseline: $(STAMP)
	$(SNAKEMAKE) --cores $(CORES) --forceall results/ci/summary.csv --config preset=ci shared_dir=$(SHARED)
	$(BIN)/python -m reports baseline --summary results/ci/summary.csv --out $(BASELINE)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps vos-benchmark==0.1.0  # comparison only, not a dependency
	$(BIN)/python benchmarks/evaluator_speed.py --workers 2 --repeats 5 --record benchmarks/RESULTS-evaluator.md

clean-outputs:
	rm -rf results resources/generated reports/tables.md reports/embedded reports/ci reports/davis2016 reports/paper .snakemake
