# Two entry points for a fresh machine; each sets up the pinned virtual environment it needs.
#   make run    the main job: the whole default DAG (embedded data, CPU) -> reports/tables.md, report.html
#               (installs requirements.txt only)
#   make test   ruff, snakemake --lint, the test suite (the official-equivalence tests also on one thread) and the
#               regression check (what CI runs: .ci/run); adds the test and lint tools of requirements-dev.txt
#   make regression   the ci preset on the shared DAVIS 2016 data, compared with tests/regression/ci-baseline.yaml
#   make regression-baseline / regression-weights   refresh the baseline (measured spread) / the fixed weights
#   make preflight    the reviewers' first GPU run (10 minutes, one GPU): benchmarks/RESULTS-gpu.md; preflight-cpu
#                     its reduced CPU form
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# requirements.txt and the suite (editable): what the workflow runs; then requirements-dev.txt's test and lint tools
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
INTERACTIVE_STAMP := $(VENV)/.installed-interactive
CORES  ?= 2
TARGET ?= reports/tables.md
SHARED ?= $(if $(VOS_SHARED),$(VOS_SHARED),../shared)
BASELINE := tests/regression/ci-baseline.yaml
SNAKEMAKE := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake
# Every job on one thread, CORES of them side by side: on 2 cores two one-thread jobs get through about 1.7x the
# work of one two-thread job (much of a job is single-threaded: start-up, data, Python); each row's FPS says
# its thread count. Put it after the target: --set-threads takes every word that follows it.
ONE_THREAD_JOBS := --set-threads train=1 infer=1 evaluate=1

.PHONY: setup interactive-setup run test test-one-thread lint regression regression-baseline regression-weights bench preflight \
	preflight-cpu clean-outputs

# The main job needs no test tools: `make run` leaves them to the first `make test` (one stamp per set; a
# change of requirements.txt reinstalls both).
# Packages are installed with uv (pinned; pip installs it): it keeps every unpacked package in its cache
# (~/.cache/uv) and links them into a new .venv, which takes seconds once the cache holds them, where pip unpacked
# 6 GB of wheels (torch's CUDA libraries) for every fresh clone (docs/environments.md, "make's virtual environment").
# uv does not read pip's configuration: behind a package mirror, set UV_DEFAULT_INDEX (or UV_INDEX_URL).
# Then compileall byte-compiles on every core, passing over the test folders (no job imports them) and, like pip,
# the few files written for a newer Python (torch's py312 tests). The .pyc files matter where
# PYTHONDONTWRITEBYTECODE is set: without them every job compiles torch on import.
UV_VERSION := 0.13.10
INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python
COMPILE := $(BIN)/python -c "import compileall, re, sysconfig; compileall.compile_dir(sysconfig.get_path('purelib'), \
	quiet=2, workers=0, rx=re.compile('/tests/'))"
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(INSTALL) -r requirements.txt
	$(INSTALL) --no-deps --no-build-isolation -e .
	$(COMPILE)
	touch $@

$(DEV_STAMP): $(INTERACTIVE_STAMP) requirements-dev.txt
	$(INSTALL) -r requirements-dev.txt
	$(COMPILE)
	touch $@

# The DAVIS interactive track's official package (docs/interactive.md): its dependencies pinned, then the
# package without resolving its own metadata (which pins scikit-learn 0.20.3; requirements-interactive.txt).
# `make test` installs it too: the interactive tests skip without it, CI runs them.
INTERACTIVE_PACKAGE := davisinteractive==1.0.4
$(INTERACTIVE_STAMP): $(STAMP) requirements-interactive.txt
	$(INSTALL) -r requirements-interactive.txt
	$(INSTALL) --no-deps --no-build-isolation $(INTERACTIVE_PACKAGE)
	touch $@

interactive-setup: $(INTERACTIVE_STAMP)

setup: $(DEV_STAMP)

run: $(STAMP)
	$(SNAKEMAKE) --cores $(CORES) $(TARGET) $(ONE_THREAD_JOBS)
	$(SNAKEMAKE) --report report.html $(TARGET)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(SNAKEMAKE) --lint

test: lint
	$(BIN)/pytest
	$(MAKE) test-one-thread
	$(MAKE) regression

# The official-equivalence tests again on one thread, as SLURM jobs and many CI runners give (about a minute): each
# thread count sums in its own order, and their tolerances (tests/official_fixtures.py) must hold for every order.
# On x86-64 once more with AVX2 vector kernels (what a machine without AVX-512 computes; with them 7 of these tests
# failed by rounding before their tolerances came from the arithmetic).
OFFICIAL_TESTS := tests/test_official_frtm.py tests/test_official_lwl.py tests/test_official_refinement.py
AVX2_KERNELS := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
test-one-thread: $(DEV_STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/pytest $(OFFICIAL_TESTS)
	@if [ "$$(uname -m)" = x86_64 ]; then \
	  echo "$(AVX2_KERNELS) OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/pytest $(OFFICIAL_TESTS)"; \
	  $(AVX2_KERNELS) OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/pytest $(OFFICIAL_TESTS); \
	fi

# The ci preset's rows against the committed baseline; skipped, saying why, without the shared data.
# Jobs whose code changed rerun (each rule's code digest is a parameter: README, "Code changes rerun what they
# affect"); the rest is reused.
# One-thread jobs side by side (ONE_THREAD_JOBS): the baseline's tolerances cover 1 and 2 threads (its runs include
# seed 0 at one thread).
CI_RUN := $(SNAKEMAKE) results/ci/summary.csv --config preset=ci shared_dir=$(SHARED)
regression: $(STAMP)
	@if [ ! -d "$(SHARED)/data/davis2016" ]; then \
	  echo "regression check SKIPPED: no shared data at $(SHARED)/data/davis2016 (put ../shared beside the repository or set VOS_SHARED)"; \
	else \
	  $(CI_RUN) --cores $(CORES) $(ONE_THREAD_JOBS) && \
	  $(BIN)/python -m reporting regress --results results/ci --baseline $(BASELINE) \
	    --preset-file config/presets/ci.yaml; \
	fi

# After an intended change of the ci preset's figures: the preset's DAG once per (training seed, threads), then
# the baseline with each row's tolerance derived from the spread of these runs, the first run giving the fixed
# rows' per-frame reference (commit both files with the change). The
# target-model cache of FRTM's training is emptied before each run: a run reuses no models of another thread count.
# ROWS="row ..." remakes only those rows' entries (after an intended change of those rows alone) and keeps the
# others as they were measured; the runs are still the whole preset's DAG.
SPREAD_RUNS ?= 0:2 1:2 2:2 0:1
ROWS ?=
regression-baseline: $(STAMP)
	@$(BIN)/python -c "import sys, yaml; rows = yaml.safe_load(open('config/presets/ci.yaml'))['rows']; \
	  bad = [r for r in sys.argv[1:] if r not in rows]; \
	  sys.exit(f'ROWS: {bad} are not rows of config/presets/ci.yaml (its rows: {sorted(rows)})' if bad else 0)" $(ROWS)
	rm -rf results/ci-runs && mkdir -p results/ci-runs
	@set -e; for run in $(SPREAD_RUNS); do \
	  case "$$run" in *[0-9]:[0-9]*) ;; *) echo "SPREAD_RUNS: '$$run' is not SEED:THREADS (e.g. 0:2)"; exit 2;; esac; \
	  seed=$${run%:*}; threads=$${run#*:}; \
	  echo "ci preset, training seed $$seed, $$threads thread(s)"; \
	  rm -rf resources/cache/target-models-ci; \
	  $(CI_RUN) training_seed=$$seed --cores $$threads --forceall; \
	  cp -r results/ci results/ci-runs/seed$$seed-threads$$threads; \
	done
	$(BIN)/python -m reporting baseline --preset-file config/presets/ci.yaml --out $(BASELINE) \
	  $(if $(strip $(ROWS)),--rows $(ROWS)) --run \
	  $(foreach run,$(SPREAD_RUNS),results/ci-runs/seed$(word 1,$(subst :, ,$(run)))-threads$(word 2,$(subst :, ,$(run))))

# The fixed weights of the ci preset's `-fixed` rows: compact int8 copies of its trainings (training seed
# WEIGHTS_SEED). Refresh them only when a network's parameters change (names or shapes), then refresh the
# baseline. Check that the copies segment (tests/regression/README.md: the committed R is seed 1's, because
# seed 0's short CPU training gave an R that marks almost nothing) before committing them.
FIXED_TRAININGS := frtm-refiner frtm-d-only lwl-weight-predictor
WEIGHTS_SEED ?= 0
regression-weights: $(STAMP)
	$(SNAKEMAKE) --cores $(CORES) --forcerun train --config preset=ci shared_dir=$(SHARED) training_seed=$(WEIGHTS_SEED) -- \
	  $(foreach t,$(FIXED_TRAININGS),results/ci/training/$(t)/head.pt)
	@set -e; for t in $(FIXED_TRAININGS); do \
	  $(BIN)/python -m methods fix-weights --checkpoint results/ci/training/$$t/head.pt --out tests/regression/weights/$$t.pt; \
	done

bench: $(DEV_STAMP)
	$(INSTALL) --no-deps vos-benchmark==0.1.0  # comparison only, not a dependency
	@set -e; mkdir -p benchmarks/results; run=benchmarks/results/$$(date -u +%Y-%m-%dT%H%M%SZ); \
	  $(BIN)/pytest benchmarks -o addopts= -ra --benchmark-only --benchmark-min-rounds=3 --benchmark-autosave \
	    --benchmark-json=$$run.json $(BENCH_ARGS); \
	  $(BIN)/python benchmarks/report.py $$run.json --out $$run.md

# The reviewers' pre-flight before any GPU week (docs/reproducing.md, "The pre-flight: run it first"): on one GPU, at most 10
# minutes, benchmarks/RESULTS-gpu.md. RELEASED_WEIGHTS: the folder of the authors' files (default: config.yaml's
# released_weights); PREFLIGHT_ARGS: more options (python benchmarks/preflight.py --help). preflight-cpu: the same
# script in its reduced CPU form (tiny inputs, random backbones: a test of the script, not a measurement).
RELEASED_WEIGHTS ?=
PREFLIGHT_ARGS ?=
PREFLIGHT_OPTIONS = $(if $(RELEASED_WEIGHTS),--released-weights $(RELEASED_WEIGHTS)) $(PREFLIGHT_ARGS)
preflight: $(STAMP)
	PYTHON=$(BIN)/python bash benchmarks/gpu_check.sh $(PREFLIGHT_OPTIONS)

preflight-cpu: $(STAMP)
	$(BIN)/python benchmarks/preflight.py --reduced $(PREFLIGHT_OPTIONS)

clean-outputs:
	rm -rf results resources/generated .snakemake
	find reports -mindepth 1 ! -name README.md -delete
