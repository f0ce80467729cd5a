#!/usr/bin/env bash
# The prepared GPU run, one command for a reviewer or the device machine (one GPU, at most 10 minutes): the
# pre-flight of benchmarks/preflight.py (environment, weights files, one released-weights row on two DAVIS
# sequences, every paper training's first iterations, interactive FRTM and LWL with the released files on one
# DAVIS 2017 val sample at the track's settings, FPS of FRTM / LWL beside their backbones), written to
# benchmarks/RESULTS-gpu.md and, when the device runner sets $OUT, to $OUT/RESULTS-gpu.md.
#   bash benchmarks/gpu_check.sh [--released-weights DIR] [--davis DIR] [--interactive-root DIR] ...   # PYTHON=...
#   make preflight RELEASED_WEIGHTS=DIR                                        # the same
# The speed check alone (FPS and training iterations per second): python benchmarks/gpu_check.py
# The interactive track's full GPU run (DAVIS 2017 val, 90 samples, 8 interactions, 30 s an object; 6 GPU jobs a
# method, merged by the suite's summary; hours, not part of this check; docs/interactive-methods.md):
#   snakemake --cores 8 --use-conda reports/paper/interactive.md --config preset=paper released_weights=DIR
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
"$PYTHON" - <<'PY' || exit 2
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check.sh: no CUDA device visible to torch {torch.__version__} (CUDA build {torch.version.cuda}); "
             "run it on a GPU node with a CUDA build of envs/torch.yaml (or `make preflight-cpu` for the reduced CPU form)")
PY
# 570 s hard limit; the script starts no new training or part after 480 s and keeps what it checked
exec timeout --kill-after=10 570 "$PYTHON" benchmarks/preflight.py --budget-s 480 "$@"
