#!/usr/bin/env bash
# Snakemake runs this once, inside the new envs/interactive.yaml environment: the official DAVIS interactive
# package without resolving its metadata's dependencies (scikit-learn==0.20.3; the environment pins what it needs).
# Keep the version equal to INTERACTIVE_PACKAGE in the Makefile (tests/test_envs.py).
set -euo pipefail
python -m pip install --no-deps --no-build-isolation davisinteractive==1.0.4
