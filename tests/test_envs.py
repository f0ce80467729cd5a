"""envs/vos.yaml (snakemake --use-conda) pins the same versions as requirements.txt."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}  # run the workflow, not needed inside rules


def pins(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[name.strip().lower()] = version.strip()
    return out


def test_conda_env_matches_requirements():
    required = pins((REPO / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "envs/vos.yaml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert pins(pip_section) == {k: v for k, v in required.items() if k not in WORKFLOW_ONLY}
    assert "python=3.11" in env["dependencies"]
