"""reporting.job_budget: GPU-hours, peak GPUs and the longest job of a dry run (the README's cluster figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reporting.job_budget import budget, parse_dry_run, report

REPO = Path(__file__).resolve().parent.parent


def job(rule: str, wildcards: str, inputs: str, outputs: str, runtime: int, gpu: int) -> str:
    """One job as `snakemake -n` lists it."""
    return (f"rule {rule}:\n    input: {inputs}\n    output: {outputs}\n    jobid: 1\n"
            f"    wildcards: {wildcards}\n    resources: tmpdir=<TBD>, mem_mb=4000, runtime={runtime}, gpu={gpu}, "
            f"slurm_partition={'gpu' if gpu else 'cpu'}\n\n")


# two 4-GPU parts of a training in a chain, its last job on 4 GPUs, two 1-GPU inferences after it and one beside
DRY_RUN = ("Building DAG of jobs...\nJob stats:\n...\n"
           + job("train_part", "training=a, part=1", "data", "a/part-1.done", 600, 4)
           + job("train", "training=a", "data, a/part-1.done", "a/head.pt, a/head.json", 300, 4)
           + job("infer", "evaluation=e, row=r1", "data, a/head.pt", "r1/masks, r1/timing.json", 60, 1)
           + job("infer", "evaluation=e, row=r2", "data, a/head.pt", "r2/masks, r2/timing.json", 120, 1)
           + job("infer", "evaluation=e, row=copy", "data", "copy/masks, copy/timing.json", 30, 0)
           + "localrule render_tables:\n    input: r1/timing.json, r2/timing.json, copy/timing.json\n"
           + "    output: tables.md\n    jobid: 0\n    resources: tmpdir=<TBD>, runtime=5, gpu=0\n\n"
           + "This was a dry-run (flag -n). The order of jobs does not reflect the order of execution.\n")


def test_the_figures_follow_the_jobs_and_their_order():
    jobs = parse_dry_run(DRY_RUN)
    assert [j.name for j in jobs][:2] == ["train_part (training=a, part=1)", "train (training=a)"]
    figures = budget(jobs)
    assert figures["jobs"] == 6 and figures["gpu_jobs"] == 4
    assert figures["gpu_hours"] == pytest.approx((600 * 4 + 300 * 4 + 60 + 120) / 60)
    # the chain's jobs one after the other (never 8 GPUs), the two inferences together after it
    assert figures["peak_gpus"] == 4
    assert figures["longest_job"] == "train_part (training=a, part=1)" and figures["longest_job_hours"] == 10
    assert figures["wall_hours"] == pytest.approx((600 + 300 + 120 + 5) / 60)


def test_jobs_that_can_run_together_add_their_gpus():
    text = job("train", "training=a", "data", "a.pt", 60, 4) + job("train", "training=b", "data", "b.pt", 30, 2)
    assert budget(parse_dry_run(text))["peak_gpus"] == 6


def test_the_longest_job_is_the_same_whatever_order_the_dry_run_lists_its_jobs_in():
    """Jobs asking as long: the first by name, and how many they are (the README's figures stay the same)."""
    parts = [job("train_part", f"training={name}, part=1", "data", f"{name}/part-1.done", 600, 1) for name in "ba"]
    for text in ("".join(parts), "".join(reversed(parts))):
        figures = budget(parse_dry_run(text + job("infer", "row=r", "data", "r/masks", 60, 1)))
        assert figures["longest_job"] == "train_part (training=a, part=1)" and figures["as_long_jobs"] == 2
        assert "longest job: train_part (training=a, part=1), 10.0 h (2 jobs ask as long)" in report(figures)


def test_a_text_without_jobs_is_one_line():
    done = subprocess.run([sys.executable, "-m", "reporting.job_budget"], input="Nothing to be done.\n", cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: no job in the dry run: pass the output of `snakemake -n ...` (jobs to run, "
                                   "with resources)")
