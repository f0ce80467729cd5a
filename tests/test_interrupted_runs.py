"""Interrupted workflow runs (issue 19): kill a training mid-epoch, an inference mid-sequence and an evaluation
mid-write, rerun the same command, and get what an uninterrupted run gets.

One row of the embedded preset, `frtm-d-only` (generate the data, train D-only, infer, evaluate), cut to test
size, runs once uninterrupted (the reference) and once from scratch in another copy of the workflow, where the
whole Snakemake process group (Snakemake and its job) is SIGKILLed three times:

(a) in the training's second epoch: once its first epoch's line is in the job's log and its checkpoint
    `head.pt.work/checkpoint.pt` exists;
(b) in the inference: once some but not all of the mask PNGs exist (in the runner's staging folder);
(c) in the evaluation, between two files of its output set: the evaluator writes its five files in a few
    milliseconds, too fast to hit from outside, and the code has no fault hook, so the evaluator process of the
    Snakemake run is made to SIGKILL its own process group (Snakemake included) right after the second file of
    the set is in place: a `sitecustomize` on PYTHONPATH, active only in `python -m metrics` and only while
    VOS_TEST_KILL_AFTER names a file, wraps `atomic_path`. So the kill lands where it should every time, and it
    still goes through the workflow: what Snakemake does with a scores folder holding the target CSV but not
    the rest is what is tested.

After each kill nothing half-written may sit where an output goes, the rerun must run the killed job and those
after it (never skip one because a partial output looked complete), and at the end the scores, the masks and
the trained head's weights must equal the reference run's exactly (one thread: the same seed gives the same
bits), with no temporary file or staging folder left anywhere under results/ or resources/.

The command is the plain one, `snakemake --cores 1 <target>` (what `make run` runs): the workflow profile
(profiles/default, loaded on every run) sets `rerun-incomplete: true`, which is what lets the same command go
on after kill (c). Snakemake marks a job's outputs incomplete while it runs, and a rerun that finds an
existing output so marked (here the target CSV) refuses without it (IncompleteFilesException), so a partial
output is never taken as complete. Kills (a) and (b) leave no output at all (the weights and the mask folder
appear by rename); a kill between two outputs of one job (head.pt and head.json, the masks and timing.json)
leaves one, as (c) does. A SIGKILLed Snakemake cannot remove its lock
(.snakemake/locks) either: any rerun is refused until `snakemake --unlock` (Snakemake's message says so),
which the test runs before each rerun, as a user would.

Runtime: about 2 minutes on one core (113 s measured on a 1-CPU machine under load), most of it Snakemake
starting eight times; so it runs in the normal suite.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics.errors import EvaluationError
from metrics.tables import check_output_set
from tests.test_workflow import SNAKEMAKE, edit_embedded_preset, workflow_copy

TARGET = "results/embedded/embedded-val/frtm-d-only/scores/global_results-embedded-val.csv"
COMMAND = ["--cores", "1", TARGET]  # profiles/default: rerun-incomplete
ROW = Path("results/embedded/embedded-val/frtm-d-only")
TRAINING = Path("results/embedded/training/frtm-d-only")
TRAIN_LOG = Path("logs/embedded/train/frtm-d-only.log")
CSVS = [f"{kind}_results-embedded-val.csv" for kind in ("global", "per-sequence", "per-object", "per-frame")]
FRAMES = 2 * 8  # 2 val videos of 8 frames

# Loaded by every Python process of the run (PYTHONPATH); acts only in the evaluator, and only when asked.
KILL_HOOK = """
import os
import sys

_AFTER = os.environ.get("VOS_TEST_KILL_AFTER")
if _AFTER and sys.orig_argv[1:3] == ["-m", "metrics"]:
    import contextlib
    import signal

    import vos_datasets.fileio as _fileio

    _atomic_path = _fileio.atomic_path

    @contextlib.contextmanager
    def atomic_path(final):
        with _atomic_path(final) as tmp:
            yield tmp
        if os.path.basename(final) == _AFTER:  # in place: kill the evaluator and Snakemake, as a kill -9 would
            os.killpg(os.getpgrp(), signal.SIGKILL)

    _fileio.atomic_path = atomic_path
"""


def shrink(data: dict) -> None:
    """The embedded preset cut to the one row, 2 short videos, a 2-epoch D-only training (the first kill
    needs an epoch after the first) and light FRTM settings (as tests/test_workflow.py cuts them)."""
    data["datasets"]["embedded"].update(n_train=2, n_val=2, n_frames=8)
    data["datasets"]["embedded-heldout"].update(n_val=1, n_frames=8)
    data["rows"] = {"frtm-d-only": data["rows"]["frtm-d-only"]}
    data["method_defaults"]["frtm"].update(
        augmented_samples=3,
        target_channels=8,
        memory_capacity=8,
        init_cg_iterations=[2, 2],
        update_cg_iterations=2,
    )
    training = data["trainings"]["frtm-d-only"]
    training["settings"].update(
        epochs=2, lr_step=1, reference_frames_per_object=1, cache_samples=3, cache_init_cg_iterations=[2, 2]
    )
    training["validation"] = {**training["validation"], "samples": 2}


def environment(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    """One Snakemake run to its end."""
    return subprocess.run(
        [str(SNAKEMAKE), *args], cwd=work, env=environment(), capture_output=True, text=True, timeout=600
    )


def start(work: Path, log: Path, **extra_env: str) -> subprocess.Popen:
    """The command, in a process group of its own (Snakemake's jobs stay in it)."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [str(SNAKEMAKE), *COMMAND],
            cwd=work,
            env=environment(**extra_env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_group_gone(group: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {group} still alive {timeout} s after SIGKILL")


def kill_group_when(run: subprocess.Popen, log: Path, ready, what: str, timeout: float = 600) -> None:
    """SIGKILL the run's whole process group as soon as `ready()` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if run.poll() is not None:
            raise AssertionError(
                f"the run ended (code {run.returncode}) before {what}:\n{log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            os.killpg(run.pid, signal.SIGKILL)
            raise AssertionError(f"no {what} after {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    wait_group_gone(run.pid)


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table: the jobs it is about to run, by rule."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {
        rule: int(count)
        for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
        if rule != "total"
    }


def leftovers(work: Path) -> list[str]:
    """Temporary files and staging folders (atomic writes' `.<name>.*.tmp`, a training's `<out>.work`)."""
    return sorted(
        str(p.relative_to(work))
        for folder in ("results", "resources")
        for p in (work / folder).rglob("*")
        if p.name.endswith(".tmp") or p.name.endswith(".work")
    )


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def rerun_after_kill(work: Path, log: Path, **extra_env: str) -> subprocess.Popen:
    """Unlock (a SIGKILLed Snakemake leaves its lock) and run the same command again."""
    assert list((work / ".snakemake/locks").glob("*.lock")), "a SIGKILLed Snakemake leaves its lock"
    unlocked = snakemake(work, *COMMAND, "--unlock")
    assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr
    return start(work, log, **extra_env)


def assert_same_result(reference: Path, work: Path) -> None:
    ours, theirs = work / ROW, reference / ROW
    for name in CSVS:  # the official CSVs and ours: byte for byte
        assert (ours / "scores" / name).read_bytes() == (theirs / "scores" / name).read_bytes(), name
    untimed = [json.loads((row / "scores/protocol-embedded-val.json").read_text()) for row in (ours, theirs)]
    for protocol in untimed:  # the set's record: the CSVs' digests, the figures, the protocol; not the time
        del protocol["seconds"]
    assert untimed[0] == untimed[1]
    masks = sorted(p.relative_to(ours) for p in (ours / "masks").rglob("*.png"))
    assert masks == sorted(p.relative_to(theirs) for p in (theirs / "masks").rglob("*.png"))
    assert len(masks) == FRAMES
    for mask in masks:
        assert (ours / mask).read_bytes() == (theirs / mask).read_bytes(), mask
    maps = [np.load(row / "score-maps/synth-val-00.npz") for row in (ours, theirs)]
    assert sorted(maps[0].files) == sorted(maps[1].files)
    for key in maps[0].files:
        assert np.array_equal(maps[0][key], maps[1][key]), key
    heads = [
        torch.load(root / TRAINING / "head.pt", map_location="cpu", weights_only=True)
        for root in (work, reference)
    ]
    assert heads[0]["state_dict"].keys() == heads[1]["state_dict"].keys()
    for key, value in heads[0]["state_dict"].items():
        assert torch.equal(value, heads[1]["state_dict"][key]), key

    # the training's record: the same settings, losses and held-out measures epoch by epoch (times and the
    # target-model cache's hit counts say what each process did, not what it computed)
    def computed(entry: dict) -> dict:
        kept = {k: v for k, v in entry.items() if k not in ("seconds", "cache_hits", "cache_misses")}
        return {**kept, "validation": {k: v for k, v in entry["validation"].items() if k != "seconds"}}

    histories = [json.loads((root / TRAINING / "head.json").read_text()) for root in (work, reference)]
    assert histories[0]["config"] == histories[1]["config"]
    assert [computed(e) for e in histories[0]["history"]] == [computed(e) for e in histories[1]["history"]]
    assert len(histories[0]["history"]) == 2


@pytest.mark.slow
def test_killed_runs_rerun_to_the_uninterrupted_result(tmp_path):
    reference = workflow_copy(tmp_path / "reference")
    edit_embedded_preset(reference, shrink)
    done = snakemake(reference, *COMMAND)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert leftovers(reference) == []

    work = workflow_copy(tmp_path / "interrupted")
    edit_embedded_preset(work, shrink)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK)
    logs = tmp_path / "runs"
    logs.mkdir()

    # (a) the training, in its second epoch: its first epoch's line is logged and its checkpoint written
    checkpoint = work / TRAINING / "head.pt.work/checkpoint.pt"
    run = start(work, logs / "a.log")
    kill_group_when(
        run,
        logs / "a.log",
        lambda: checkpoint.is_file() and "epoch 1/2" in _text(work / TRAIN_LOG),
        "a checkpoint of the training's first epoch",
    )
    assert not (work / TRAINING / "head.pt").exists() and not (work / TRAINING / "head.json").exists()
    assert not (work / ROW).exists()

    # (b) the inference, mid-sequence: some but not all mask PNGs written (in the runner's staging folder)
    def some_masks() -> bool:
        count = len(list((work / ROW).glob(".masks.*.tmp/*/*.png")))
        return 0 < count < FRAMES

    run = rerun_after_kill(work, logs / "b.log")
    kill_group_when(run, logs / "b.log", some_masks, "a partly written mask folder")
    output = (logs / "b.log").read_text()
    assert job_counts(output) == {"train": 1, "infer": 1, "evaluate": 1}
    resumed = _text(work / TRAIN_LOG)
    assert "resuming from" in resumed and "training epochs 2-2 of 2" in resumed
    assert (work / TRAINING / "head.pt").is_file() and not (work / TRAINING / "head.pt.work").exists()
    assert not (work / ROW / "masks").exists() and not (work / ROW / "timing.json").exists()
    # what the killed runner had written: in its staging folder, which the next write of the masks removes
    assert list((work / ROW).glob(".masks.*.tmp"))

    # (c) the evaluation, mid-write: the target CSV and the next file of the set in place, the rest not yet
    run = rerun_after_kill(
        work,
        logs / "c.log",
        # the hook first, then the caller's path: the jobs import this checkout's code, not an installed copy's
        PYTHONPATH=os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
        VOS_TEST_KILL_AFTER="per-sequence_results-embedded-val.csv",
    )
    run.wait(timeout=600)
    output = (logs / "c.log").read_text()
    assert run.returncode == -signal.SIGKILL, output[-3000:]
    wait_group_gone(run.pid)
    assert job_counts(output) == {"infer": 1, "evaluate": 1}
    assert not list((work / ROW).glob(".*.tmp"))  # the inference ran again and removed (b)'s staging folders
    scores = work / ROW / "scores"
    assert (scores / CSVS[0]).is_file() and (scores / CSVS[1]).is_file()  # the target looks done ...
    assert not (scores / "protocol-embedded-val.json").exists()  # ... but its set has no completion marker
    with pytest.raises(EvaluationError, match="not a complete set"):
        check_output_set(scores, "embedded-val")

    # the same command again: only the evaluation is left, and it runs
    run = rerun_after_kill(work, logs / "d.log")
    assert run.wait(timeout=600) == 0, (logs / "d.log").read_text()[-3000:]
    assert job_counts((logs / "d.log").read_text()) == {"evaluate": 1}

    assert_same_result(reference, work)
    assert leftovers(work) == []
    assert files(work / "results") == files(reference / "results")


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
