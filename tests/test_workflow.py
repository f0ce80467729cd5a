"""The Snakemake workflow, run as a user runs it, in a scratch copy of the workflow files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def workflow_copy(tmp_path: Path) -> Path:
    work = tmp_path / "wf"
    work.mkdir()
    for item in ("Snakefile", "config.yaml", "config", "workflow", "envs"):
        source = REPO / item
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / item)
    return work


def snakemake(work: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(SNAKEMAKE), "--cores", "2", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@pytest.mark.slow
def test_default_dag_produces_the_tables(tmp_path):
    work = workflow_copy(tmp_path)
    snakemake(work, "reports/tables.md")
    tables = (work / "reports/tables.md").read_text()
    assert "**Preset:** `embedded`" in tables
    assert "| First-frame copy (lower bound) |" in tables
    summary = pd.read_csv(work / "results/embedded/summary.csv")
    assert list(summary["preset"]) == ["embedded"]
    # the summary's figure is the evaluator's, re-computed here independently
    from metrics import Protocol, evaluate

    result = evaluate(work / "resources/embedded/embedded/Annotations/480p",
                      work / "results/embedded/embedded-val/first-frame-copy/masks",
                      ["synth-val-00", "synth-val-01", "synth-val-02", "synth-val-03"],
                      protocol=Protocol(objects="all"), workers=1, progress=False)
    assert summary["J&F-Mean"][0] == pytest.approx(result.global_statistics()["J&F-Mean"], abs=1e-12)
    for log in ("logs/embedded/infer/embedded-val/first-frame-copy.log",
                "logs/embedded/benchmarks/evaluate/embedded-val/first-frame-copy.tsv"):
        assert (work / log).is_file(), log
    again = snakemake(work, "reports/tables.md")  # nothing left to do
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
@pytest.mark.shared
def test_ci_preset_runs_on_shared_davis(tmp_path, shared):
    work = workflow_copy(tmp_path)
    snakemake(work, "reports/tables.md", "--config", "preset=ci", f"shared_dir={shared}")
    assert "**Preset:** `ci`" in (work / "reports/tables.md").read_text()


def test_paper_preset_plans_downloads(tmp_path):
    work = workflow_copy(tmp_path)
    done = snakemake(work, "-n", "--config", "preset=paper")
    assert "download_davis" in done.stdout


def test_unknown_preset_is_named(tmp_path):
    done = snakemake(workflow_copy(tmp_path), "-n", "--config", "preset=nope", check=False)
    assert done.returncode != 0
    assert "unknown preset 'nope'" in done.stdout + done.stderr


def edit_embedded_preset(work: Path, change) -> None:
    """Apply `change` to the parsed embedded preset of a workflow copy and write it back."""
    preset = work / "config/presets/embedded.yaml"
    data = yaml.safe_load(preset.read_text())
    change(data)
    preset.write_text(yaml.safe_dump(data))


def test_bad_config_value_is_named(tmp_path):
    work = workflow_copy(tmp_path)
    edit_embedded_preset(work, lambda data: data["datasets"]["embedded"].update(n_frames=2))
    done = snakemake(work, "-n", check=False)
    assert done.returncode != 0
    assert "n_frames" in done.stdout + done.stderr


def test_unknown_evaluation_reference_is_named(tmp_path):
    work = workflow_copy(tmp_path)
    edit_embedded_preset(work, lambda data: data["rows"]["first-frame-copy"].update(evaluate_on=["nowhere"]))
    done = snakemake(work, "-n", check=False)
    assert "rows.first-frame-copy.evaluate_on: unknown evaluation 'nowhere'" in done.stdout + done.stderr
