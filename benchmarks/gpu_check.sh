#!/usr/bin/env bash
# The prepared GPU check (one GPU, at most 8 minutes): FRTM / LWL inference FPS at 480p beside their
# backbones, and training iterations per second at the paper preset's batch sizes, written to
# benchmarks/RESULTS-gpu.md (and copied to $OUT when the device runner sets it). See benchmarks/gpu_check.py.
#   bash benchmarks/gpu_check.sh            # PYTHON=... to choose the interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
RESULTS=benchmarks/RESULTS-gpu.md
"$PYTHON" - <<'PY' || exit 2
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check.sh: no CUDA device here; run it on a GPU machine")
PY
status=0
# 480 s hard limit; the script itself stops starting new parts after 400 s and keeps what it measured
timeout --kill-after=10 480 "$PYTHON" benchmarks/gpu_check.py --device cuda --budget-s 400 --out "$RESULTS" || status=$?
if [ -n "${OUT:-}" ] && [ -f "$RESULTS" ]; then
    cp "$RESULTS" "$OUT/RESULTS-gpu.md"
fi
exit "$status"
