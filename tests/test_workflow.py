"""The Snakemake workflow, run as a user runs it, in a scratch copy of the workflow files."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from reporting.job_budget import budget, parse_dry_run, report

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def workflow_copy(tmp_path: Path) -> Path:
    work = tmp_path / "wf"
    work.mkdir(parents=True)
    # reporting/: the rules read its published.yaml (the package itself shadows the installed one, unchanged)
    for item in ("Snakefile", "config.yaml", "config", "workflow", "envs", "profiles", "reporting"):
        source = REPO / item
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / item, **ignored_caches(source))
    return work


def ignored_caches(source: Path) -> dict:
    return {"ignore": shutil.ignore_patterns("__pycache__")} if source.is_dir() else {}


# Snakemake with `import torch` failing in its own process (jobs are other processes): building the DAG needs
# no torch (methods.registry), so a plain Snakemake environment can drive --use-conda
WITHOUT_TORCH = "import sys; sys.modules['torch'] = None; from snakemake.cli import main; sys.exit(main())"


def snakemake(work: Path, *args: str, check: bool = True, torch: bool = True,
              timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [str(SNAKEMAKE)] if torch else [sys.executable, "-c", WITHOUT_TORCH]
    done = subprocess.run([*command, "--cores", "2", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def shrink_embedded_preset(data: dict) -> None:
    """The embedded preset cut to test size: 2 short videos, one row per FRTM head kind, 1-epoch trainings.
    The full default DAG is measured as a workflow run, not in the tests (see README)."""
    data["datasets"]["embedded"].update(n_train=2, n_val=2, n_frames=8)
    data["rows"] = {name: data["rows"][name] for name in ("first-frame-copy", "frtm-ours", "frtm-d-only",
                                                          "frtm-base-net-ft", "lwl-box-init")}
    data["rows"]["frtm-base-net-ft"]["settings"] = {"fine_tune_iterations": 1}
    data["method_defaults"]["frtm"].update(augmented_samples=3, target_channels=8, memory_capacity=8,
                                           init_cg_iterations=[2, 2], update_cg_iterations=2)
    data["method_defaults"]["lwl"].update(crop_size=[96, 160], init_iterations=3)
    for training in data["trainings"].values():
        if training["method"] == "frtm":
            training["settings"].update(epochs=1, lr_step=1, reference_frames_per_object=1, cache_samples=3,
                                        cache_init_cg_iterations=[2, 2])
        else:  # LWL: stage 1 -> stage 2 -> box encoder, one tiny epoch each
            training["settings"].update(epochs=1, iterations_per_epoch=1, batch_size=1, crop_size=[96, 160],
                                        milestones=[1])
    data["seed_repeats"] = {"rows": ["frtm-d-only"], "seeds": [1]}  # the seeds table, on the cheapest training


@pytest.mark.slow
def test_default_dag_produces_the_tables(tmp_path):
    work = workflow_copy(tmp_path)
    # the run's own copy of the code (it shadows the installed packages): the code-change check below edits it
    for package in ("methods", "metrics", "vos_datasets"):
        shutil.copytree(REPO / package, work / package, **ignored_caches(REPO / package))
    edit_embedded_preset(work, shrink_embedded_preset)
    snakemake(work, "reports/tables.md")
    tables = (work / "reports/tables.md").read_text()
    assert tables == (work / "reports/embedded/tables.md").read_text().replace("](figures/", "](embedded/figures/") \
        .replace("](provenance.json)", "](embedded/provenance.json)")
    assert "Preset `embedded` at commit" in tables
    assert "| First-frame copy (lower bound) (`first-frame-copy`) |" in tables
    for label in ("FRTM Ours (`frtm-ours`)", "FRTM D-only (`frtm-d-only`)", "FRTM Base net + F-T (`frtm-base-net-ft`)",
                  "LWL box-init (`lwl-box-init`)"):
        assert f"| {label} |" in tables, label
    # the papers' tables: published / reproduced (difference) on the stand-in, other methods published only
    assert "### FRTM Table 1: ablation" in tables and "### LWL Table 4: box initialisation" in tables
    assert "| D-only (row `frtm-d-only`) | x |  |  |  | 58.8 / " in tables
    assert "| Ours - no update (row `frtm-no-update`) | x | x |  |  | 67.6 / not run |" in tables
    assert "| FEELVOS | 71.5 | 69.1 | 74.0 | 81.7 | 81.1 | 82.2 | 2.22 |" in tables
    # the seed repeat: in the seeds table only (not in the tables above it, nor in the figures)
    tables_part, seeds_part = tables.split("## Seeds: the spread of the trainings")
    assert "frtm-d-only.seed-1" not in tables_part
    assert "| FRTM D-only (`frtm-d-only`) | 0, 1 | " in seeds_part
    assert "| RGMP | 66.7 | 64.8 | 68.6 | 81.8 | 81.5 | 82.0 | 7.7 |" in tables
    figures = work / "reports/embedded/figures"
    expected = {"speed_accuracy.png", "per_sequence-embedded-val.png", "decay-embedded-val.png",
                "attributes-embedded-val.png"}
    assert expected <= {p.name for p in figures.glob("*.png")}
    strips = {p.stem for p in (figures / "qualitative-embedded-val").glob("*.png")}
    assert strips == {"first-frame-copy", "frtm-ours", "frtm-d-only", "frtm-base-net-ft", "lwl-box-init"}
    for name in expected:
        assert f"](embedded/figures/{name})" in tables
    maps = list((work / "results/embedded/embedded-val/frtm-ours/score-maps").glob("*.npz"))
    assert [p.stem for p in maps] == ["synth-val-00"]  # the figures' sequence only
    base_net_maps = work / "results/embedded/embedded-val/frtm-base-net-ft/score-maps"
    assert not list(base_net_maps.glob("*.npz"))  # no target model, no maps
    manifest = json.loads((work / "reports/embedded/provenance.json").read_text())
    assert manifest["preset"] == "embedded" and "results/embedded/training/frtm-refiner/head.pt" in manifest["trained_weights"]
    assert manifest["datasets"]["embedded"]["files"] > 0 and manifest["config"]["preset"] == "embedded"
    snakemake(work, "--report", "report.html")
    html = (work / "report.html").read_text(errors="replace")
    assert "speed_accuracy.png" in html and "Speed against accuracy" in html
    summary = pd.read_csv(work / "results/embedded/summary.csv")
    assert set(summary["preset"]) == {"embedded"} and len(summary) == 6
    assert summary.set_index("row").loc[["frtm-d-only", "frtm-d-only.seed-1"], "training_seed"].tolist() == [0, 1]
    # the summary's figure is the evaluator's, re-computed here independently
    from metrics import Protocol, evaluate

    result = evaluate(work / "resources/generated/embedded/embedded/Annotations/480p",
                      work / "results/embedded/embedded-val/first-frame-copy/masks",
                      ["synth-val-00", "synth-val-01"],
                      protocol=Protocol(objects="all"), workers=1, progress=False)
    row = summary.set_index("row").loc["first-frame-copy"]
    assert row["J&F-Mean"] == pytest.approx(result.global_statistics()["J&F-Mean"], abs=1e-12)
    timing = json.loads((work / "results/embedded/embedded-val/frtm-ours/timing.json").read_text())
    assert timing["settings"]["backbone"] == "efficientnet_lite0" and timing["settings"]["target_channels"] == 8
    assert timing["settings"]["checkpoint"] == "results/embedded/training/frtm-refiner/head.pt"
    for log in ("logs/embedded/infer/embedded-val/first-frame-copy.log",
                "logs/embedded/train/frtm-refiner.log",
                "logs/embedded/benchmarks/train/frtm-base-net.tsv",
                "logs/embedded/benchmarks/evaluate/embedded-val/first-frame-copy.tsv"):
        assert (work / log).is_file(), log
    again = snakemake(work, "reports/tables.md")  # nothing left to do
    assert "Nothing to be done" in again.stdout + again.stderr
    preset = yaml.safe_load((work / "config/presets/embedded.yaml").read_text())
    frtm_rows = {row for row, spec in preset["rows"].items() if spec["method"] == "frtm"}
    frtm_trainings = {preset["rows"][row]["training"] for row in frtm_rows} | {"frtm-d-only.seed-1"}
    frtm_rows |= {"frtm-d-only.seed-1"}
    # comments, docstrings and formatting are not code changes (methods/core/code_digest.py); turning
    # keep_checkpoints_across_code_changes on or off changes no job's parameters: neither reruns anything
    with open(work / "methods/frtm/tracker.py", "a") as tracker:
        tracker.write('\n\n# a comment\n"""a bare string"""\n')
    with open(work / "methods/frtm/training.py", "a") as training:
        training.write("# a comment of FRTM's training\n")
    for setting in ("false", "true"):
        again = snakemake(work, "-n", "reports/tables.md", "--config", f"keep_checkpoints_across_code_changes={setting}")
        assert "Nothing to be done" in again.stdout + again.stderr, setting
    # finished trainings after a code change declared harmless: planned again with the rows reading them;
    # --touch of the target records the new code as their outputs' own, in dependency order (README): nothing
    # reruns
    with open(work / "methods/frtm/training.py", "a") as training:
        training.write("HARMLESS_EDIT = True\n")
    planned = planned_jobs(snakemake(work, "-n", "reports/tables.md").stdout)
    assert planned["train"] == {f"training={training}" for training in frtm_trainings}
    snakemake(work, "--touch", "reports/tables.md")
    again = snakemake(work, "-n", "reports/tables.md")
    assert "Nothing to be done" in again.stdout + again.stderr
    # a change of FRTM's code reruns FRTM's jobs that run it, and what reads their outputs, nothing else: the
    # digest of a method's inference code is a parameter of its infer jobs, that of its training code (the
    # training module and what it imports) of its train jobs
    with open(work / "methods/frtm/tracker.py", "a") as tracker:
        tracker.write("INFERENCE_EDITED = True  # a change of FRTM's inference\n")
    planned = planned_jobs(snakemake(work, "-n", "reports/tables.md").stdout)
    for rule in ("infer", "evaluate"):
        assert planned[rule] == {f"evaluation=embedded-val, row={row}" for row in frtm_rows}, rule
    assert "train" not in planned and "generate_embedded" not in planned
    assert {"aggregate", "plot_evaluation", "render_tables"} <= set(planned)
    with open(work / "methods/frtm/training.py", "a") as training:
        training.write("TRAINING_EDITED = True  # a change of FRTM's training\n")
    planned = planned_jobs(snakemake(work, "-n", "reports/tables.md").stdout)
    assert planned["train"] == {f"training={training}" for training in frtm_trainings}
    assert planned["infer"] == {f"evaluation=embedded-val, row={row}" for row in frtm_rows}

def test_keep_checkpoints_across_code_changes_reaches_the_jobs_environment(tmp_path):
    """The setting reaches the trainer through the environment Snakemake's jobs inherit (the trainer's
    --keep-checkpoint-on-code-change defaults to it: tests/test_frtm_training.py), not through a parameter or
    the command, which would rerun trainings when it is turned on (test_default_dag_produces_the_tables)."""
    from methods.core.code_digest import KEEP_CHECKPOINTS_VARIABLE

    work = workflow_copy(tmp_path)
    for setting, value in (("false", "0"), ("true", "1")):
        # the environment the Snakefile leaves for its jobs, printed as Snakemake exits
        show = (f"import atexit, os, sys; atexit.register(lambda: print('ENV', os.environ.get({KEEP_CHECKPOINTS_VARIABLE!r})));"
                f"sys.argv = ['snakemake', '--cores', '1', '-n', 'reports/tables.md', '--config', "
                f"'keep_checkpoints_across_code_changes={setting}']; from snakemake.cli import main; main()")
        env = {k: v for k, v in os.environ.items() if k != KEEP_CHECKPOINTS_VARIABLE}
        done = subprocess.run([sys.executable, "-c", show], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300)
        assert f"ENV {value}" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


def job_blocks(dry_run: str) -> list[str]:
    """A dry run's job descriptions, one text block per job ("rule train:" / "localrule ...:" and its lines)."""
    return re.split(r"^(?=(?:local)?rule \w+:$)", dry_run, flags=re.MULTILINE)[1:]


def planned_jobs(dry_run: str) -> dict[str, set[str]]:
    """The jobs a dry run lists: rule -> the wildcards of its jobs ('' for a rule without wildcards)."""
    planned: dict[str, set[str]] = {}
    for block in job_blocks(dry_run):
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        wildcards = re.search(r"^    wildcards: (.*)$", block, re.MULTILINE)
        planned.setdefault(rule, set()).add(wildcards.group(1) if wildcards else "")
    return planned


def test_ci_preset_plans_its_rows(tmp_path, shared):
    """The ci preset itself runs in `make regression` (compared with the committed baseline): its fixed-weight
    rows read the committed weights, its trained rows train, with the seed `training_seed` gives."""
    work = workflow_copy(tmp_path)
    shutil.copytree(REPO / "tests/regression/weights", work / "tests/regression/weights")
    done = snakemake(work, "-n", "-p", "results/ci/summary.csv", "--config", "preset=ci", f"shared_dir={shared}",
                     "training_seed=7")
    baseline = yaml.safe_load((REPO / "tests/regression/ci-baseline.yaml").read_text())
    for key in baseline["rows"]:
        assert f"row={key.split('@')[0]} evaluation=" in done.stdout, key
    assert "tests/regression/weights/frtm-refiner.pt" in done.stdout
    assert done.stdout.count('"seed": 7') == 3  # the three trainings
    # a fixed LWL copy without its pretrained backbone builds it from the preset's file, fetched before it runs
    lwl_fixed = next(block for block in job_blocks(done.stdout)
                     if block.startswith("rule infer:") and "row=lwl-weight-predictor-fixed" in block)
    assert "resources/weights/efficientnet-lite0-57934424.pth" in re.search(r"^    input: (.*)$", lwl_fixed,
                                                                             re.MULTILINE).group(1)
    preset = yaml.safe_load((work / "config/presets/ci.yaml").read_text())
    assert {name for name, row in preset["rows"].items() if row.get("checkpoint")} == {
        "frtm-ours-fixed", "frtm-d-only-fixed", "lwl-weight-predictor-fixed"}


def test_the_training_most_rows_wait_on_is_scheduled_first(tmp_path):
    """A train job's priority is the number of rows waiting on it, through the trainings that start from it too:
    on 2 cores the embedded preset's R (five rows, minutes) must start at once, not after the short trainings."""
    done = snakemake(workflow_copy(tmp_path), "-n", "reports/tables.md")
    priorities = {}
    for block in job_blocks(done.stdout):
        if block.startswith("rule train:"):
            training = re.search(r"wildcards: training=(\S+)", block).group(1)
            priorities[training] = int(re.search(r"priority: (\d+)", block).group(1))
    rows = yaml.safe_load((REPO / "config/presets/embedded.yaml").read_text())["rows"]
    assert priorities["frtm-refiner"] == sum(row.get("training") == "frtm-refiner" for row in rows.values()) == 5
    # lwl-stage1: its own row, and the four rows of stage 2 and the box encoder that start from it
    assert priorities["lwl-stage1"] == 5 and priorities["lwl-stage2"] == 4 and priorities["lwl-box-encoder"] == 1
    assert priorities["frtm-refiner"] == max(priorities.values())


def test_a_row_takes_a_training_or_a_checkpoint_not_both(tmp_path):
    work = workflow_copy(tmp_path)
    edit_embedded_preset(work, lambda data: data["rows"]["frtm-ours"].update(checkpoint="some/head.pt"))
    done = snakemake(work, "-n", check=False)
    assert ("rows.frtm-ours: a row of method frtm needs `variant:` and exactly one of `training:`" in done.stdout + done.stderr
            and "it has ['training', 'checkpoint']" in done.stdout + done.stderr)


def youtube_vos_paths(tmp_path: Path) -> str:
    roots = {year: tmp_path / f"ytvos{year}" for year in ("2018", "2019")}
    for root in roots.values():
        root.mkdir()
    return f"paths={{youtube_vos_2018: {roots['2018']}, youtube_vos_2019: {roots['2019']}}}"


def test_a_youtube_vos_evaluation_without_its_all_frames_folder_is_refused_before_any_job(tmp_path):
    """The methods run on every frame (valid_all_frames, train_all_frames for the held-out videos), as the
    authors'; a folder with only the every-5th-frame valid/ stops the DAG naming the missing folder."""
    work = workflow_copy(tmp_path)
    paths = youtube_vos_paths(tmp_path)
    (tmp_path / "ytvos2018" / "valid" / "JPEGImages").mkdir(parents=True)
    done = snakemake(work, "-n", "results/paper/ytvos2018-valid/frtm-ours/masks", "--config", "preset=paper", paths,
                     check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert (f"evaluations.ytvos2018-valid: {tmp_path / 'ytvos2018' / 'valid_all_frames' / 'JPEGImages'}: not found "
            f"(only the every-5th-frame {tmp_path / 'ytvos2018' / 'valid' / 'JPEGImages'} is there)") in out, out[-3000:]
    (tmp_path / "ytvos2018" / "valid_all_frames" / "JPEGImages").mkdir(parents=True)
    snakemake(work, "-n", "results/paper/ytvos2018-valid/frtm-ours/masks", "--config", "preset=paper", paths)


# the pretrained files of the paper preset's trainings and rows (methods/core/backbone_names.py)
# (ResNet-18's file only for the released rn18 rows, left out of a run without their files)
PAPER_WEIGHTS = ("resnet101-63fe2227.pth", "resnet50-0676ba61.pth", "e2e_mask_rcnn_R_50_FPN_1x_converted.pkl")


def paper_slurm_dry_run(work: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return snakemake(work, "-n", "--profile", "profiles/slurm", "reports/tables.md", "--config", "preset=paper",
                     youtube_vos_paths(tmp_path))


def test_paper_preset_dry_runs_through_the_slurm_profile(tmp_path):
    """Every paper row from download to tables, as SLURM jobs: GPUs mapped, torchrun for multi-GPU trainings."""
    work = workflow_copy(tmp_path)
    done = paper_slurm_dry_run(work, tmp_path)
    out = done.stdout
    # with the workflow profile (profiles/default) beside it: "Using profiles profiles/slurm and workflow ..."
    assert re.search(r"Using profiles? profiles/slurm", out + done.stderr)
    for rule, count in (("download_davis", 2), ("train", 16), ("train_part", 27), ("infer", 29), ("evaluate", 14),
                        ("evaluate_youtube_vos", 10), ("submission_zip", 5), ("render_tables", 1)):
        assert re.search(rf"^{rule}\s+{count}$", out, re.MULTILINE), (rule, count)
    assert "torchrun --standalone --nproc_per_node 4 -m methods.lwl.training" in out
    # trainings read YouTube-VOS's annotated frames (no all-frames folder), the infer jobs every frame
    assert '"videos_list": "frtm_ytvos2018_jjtrain", "all_frames": false}' in out
    # the partition follows the gpu resource (config.yaml slurm_partitions; tests/test_envs.py)
    assert re.search(r"runtime=\d+, gpu=4, slurm_partition=gpu$", out, re.MULTILINE)  # LWL trainings: 4 GPUs
    assert re.search(r"runtime=\d+, gpu=1, slurm_partition=gpu$", out, re.MULTILINE)  # inference of a GPU row
    assert re.search(r"runtime=60, gpu=0, slurm_partition=cpu$", out, re.MULTILINE)  # the first-frame copy's
    assert "frtm_ytvos2018_jjvalid" in out and "submission.zip" in out
    # trainings on thousands of YouTube-VOS videos name their split file; the ids are not spelled out inline
    trainings = [command for command in shell_commands(out) if ".training --config" in command]
    assert len(trainings) == 16 + 27 and sum('"videos_list": "' in command for command in trainings) >= 8
    assert max(map(len, trainings)) < 4000, max(map(len, trainings))  # before: 45 kB
    # the backbone files: fetched by local jobs (on the submitting machine: compute nodes may have no internet;
    # a dry run does not tell local jobs apart, the rule file says it), each an input of the jobs that read it
    # and listed before them
    assert re.search(r"^localrules:\n    fetch_weights,$", (work / "workflow/rules/weights.smk").read_text(), re.MULTILINE)
    blocks = job_blocks(out)
    fetched = [re.search(r"^    output: (.*)$", block, re.MULTILINE).group(1)
               for block in blocks if block.startswith("rule fetch_weights:")]
    assert set(fetched) == {f"resources/weights/{name}" for name in PAPER_WEIGHTS}
    listed = set()
    for block in blocks:
        if block.startswith("rule fetch_weights:"):
            listed.add(re.search(r"^    output: (.*)$", block, re.MULTILINE).group(1))
        inputs = re.search(r"^    input: (.*)$", block, re.MULTILINE)
        weights = {f for f in (inputs.group(1).split(", ") if inputs else []) if f.startswith("resources/weights/")}
        assert weights <= listed, block[:300]
    needs = {}
    for block in blocks:
        if block.startswith(("rule train:", "rule infer:")):
            inputs = re.search(r"^    input: (.*)$", block, re.MULTILINE)
            files = {f for f in (inputs.group(1).split(", ") if inputs else []) if f.startswith("resources/weights/")}
            wildcards = re.search(r"^    wildcards: (.*)$", block, re.MULTILINE).group(1)
            needs[wildcards] = files
    assert needs["training=frtm-refiner"] == {"resources/weights/resnet101-63fe2227.pth"}
    assert needs["training=lwl-stage1"] == {"resources/weights/e2e_mask_rcnn_R_50_FPN_1x_converted.pkl"}
    assert not needs["evaluation=davis2017-val, row=first-frame-copy"]  # no backbone
    assert all(files for wildcards, files in needs.items() if wildcards.startswith("training="))


def job_resources(dry_run: str) -> dict[str, dict[str, str]]:
    """'rule (wildcards)' -> the job's resources, from a dry run."""
    jobs = {}
    for block in job_blocks(dry_run):
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        wildcards = re.search(r"^    wildcards: (.*)$", block, re.MULTILINE)
        resources = re.search(r"^    resources: (.*)$", block, re.MULTILINE).group(1)
        jobs[f"{rule} ({wildcards.group(1)})" if wildcards else rule] = dict(re.findall(r"(\w+)=([^,\s]+)", resources))
    return jobs


def test_paper_jobs_fit_the_clusters_time_limit_and_long_trainings_run_as_chains(tmp_path):
    """No job asks for more than job_time_limit_hours (config.yaml: 24 h); a training expected to take longer
    runs as train_part jobs, each stopping at its share of the epochs, and the train job that resumes after them;
    GPU inference asks for the papers' FPS over its frames with the margin (workflow/rules/resources.smk);
    docs/reproducing.md gives the totals."""
    work = workflow_copy(tmp_path)
    out = paper_slurm_dry_run(work, tmp_path).stdout
    jobs = job_resources(out)
    assert max(int(resources["runtime"]) for resources in jobs.values()) <= 24 * 60
    # LWL stage 1: 21 h (LWL section 4) x 1.5 = 31.5 h on 4 GPUs: two jobs of 15.75 h, 35 of 70 epochs each
    assert jobs["train_part (training=lwl-stage1, part=1)"]["runtime"] == "945"
    assert jobs["train (training=lwl-stage1)"] == {**jobs["train_part (training=lwl-stage1, part=1)"]}
    assert jobs["train (training=lwl-stage1)"]["gpu"] == "4"
    commands = shell_commands(out)
    assert sum("--stop-at-epoch 35 " in command and "lwl-stage1/head.pt" in command for command in commands) == 1
    # FRTM: 72 h x 1.5 on one GPU = five jobs of 21.6 h, 36 of 180 epochs each
    assert {f"train_part (training=frtm-refiner, part={part})" for part in range(1, 5)} <= set(jobs)
    assert jobs["train (training=frtm-refiner)"]["runtime"] == "1296"
    assert "lwl-davis-finetune, part=1" not in out  # 3 h x 1.5: one job
    # DAVIS 2016 val (1376 frames) at FRTM's 14.6 FPS, x 3 and 10 minutes to start; 16 GB beside the GPU
    frtm_davis16 = jobs["infer (evaluation=davis2016-val, row=frtm-ours)"]
    assert frtm_davis16["runtime"] == "15" and frtm_davis16["mem_mb"] == "16000" and frtm_davis16["gpu"] == "1"
    # YouTube-VOS 2018 valid: at most 474 x 180 frames x 1.76 objects at LWL's 14 FPS
    assert jobs["infer (evaluation=ytvos2018-valid, row=lwl)"]["runtime"] == str(math.ceil(10 + 3 * 150163 / 14 / 60))
    # the GPU-hours, peak GPUs and longest job of docs/reproducing.md are reporting.job_budget's figures of this dry
    # run (the command given there regenerates them)
    page = (REPO / "docs" / "reproducing.md").read_text()
    for line in report(budget(parse_dry_run(out))).splitlines():
        assert f"    {line}\n" in page, line


def test_the_local_profile_refuses_a_training_on_more_gpus_than_it_allows_when_the_dag_is_built(tmp_path):
    """profiles/local allows gpu=1: the paper preset's 4-GPU LWL trainings stop the dry run in one line naming
    the training and what to do, not the run hours later; --resources gpu=4 (a 4-GPU machine) plans them."""
    work = workflow_copy(tmp_path)
    paths = youtube_vos_paths(tmp_path)
    done = snakemake(work, "-n", "--profile", "profiles/local", "reports/tables.md", "--config", "preset=paper", paths,
                     check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert re.search(r"training lwl-[\w.-]+ asks 4 GPUs \(config/presets/paper.yaml trainings.lwl-[\w.-]+.gpus\) but "
                     r"this run allows gpu=1 \(the profile's `resources: gpu`, or --resources gpu=N\): on a machine "
                     r"with 4 GPUs pass --resources gpu=4; otherwise run the trainings with profiles/slurm", out), out[-3000:]
    done = snakemake(work, "-n", "--profile", "profiles/local", "reports/tables.md", "--config", "preset=paper", paths,
                     "--resources", "gpu=4")
    assert "torchrun --standalone --nproc_per_node 4" in done.stdout


@pytest.mark.slow
def test_a_training_split_into_jobs_runs_as_a_chain_and_is_then_up_to_date(tmp_path):
    """With a job limit shorter than a training (here the CPU trainings' 2 h against 1 h), Snakemake runs it as
    train_part then train, the last resuming from the first's checkpoint; the part's mark is temporary, and
    once the weights are there nothing is to be done."""
    work = workflow_copy(tmp_path)

    def two_epochs(data):
        shrink_embedded_preset(data)
        data["trainings"]["frtm-d-only"]["settings"]["epochs"] = 2

    edit_embedded_preset(work, two_epochs)
    target = "results/embedded/training/frtm-d-only/head.pt"
    snakemake(work, target, "--config", "job_time_limit_hours=1")
    assert (work / "logs/embedded/train/frtm-d-only.part-1.log").is_file()
    log = (work / "logs/embedded/train/frtm-d-only.log").read_text()
    assert "resuming from" in log and "after epoch 1" in log, log
    assert not (work / "results/embedded/training/frtm-d-only/part-1.done").exists()  # temp(): gone
    assert len(json.loads((work / "results/embedded/training/frtm-d-only/head.json").read_text())["history"]) == 2
    again = snakemake(work, "-n", target, "--config", "job_time_limit_hours=1")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]


def test_paper_preset_names_the_missing_youtube_vos_folder(tmp_path):
    done = snakemake(workflow_copy(tmp_path), "-n", "--config", "preset=paper", check=False)
    assert done.returncode != 0
    assert "paths.youtube_vos_2018 in config.yaml" in done.stdout + done.stderr


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


def test_unknown_variant_and_training_are_named(tmp_path):
    work = workflow_copy(tmp_path)
    edit_embedded_preset(work, lambda data: data["rows"]["frtm-ours"].update(variant="best"))
    done = snakemake(work, "-n", check=False)
    assert "rows.frtm-ours.variant: frtm has no variant 'best'" in done.stdout + done.stderr
    work = workflow_copy(tmp_path / "second")
    edit_embedded_preset(work, lambda data: data["rows"]["frtm-ours"].update(training="nope"))
    done = snakemake(work, "-n", check=False)
    assert "rows.frtm-ours.training: unknown training 'nope'" in done.stdout + done.stderr


def test_a_row_whose_training_builds_another_network_is_named(tmp_path):
    """An LWL Table 1 row is its network's switches: the row's training must build that network."""
    work = workflow_copy(tmp_path)
    edit_embedded_preset(work, lambda data: data["rows"]["lwl-baseline"].update(training="lwl-stage1"))
    done = snakemake(work, "-n", check=False)
    assert "rows.lwl-baseline: its variant needs a network with" in done.stdout + done.stderr
    work = workflow_copy(tmp_path / "second")
    edit_embedded_preset(work, lambda data: data["rows"]["lwl"].update(training="frtm-refiner"))
    done = snakemake(work, "-n", check=False)
    assert "rows.lwl.training: 'frtm-refiner' trains frtm, not lwl" in done.stdout + done.stderr


def test_davis2016_check_preset_plans_every_frtm_row(tmp_path, shared):
    done = snakemake(workflow_copy(tmp_path), "-n", "--config", "preset=davis2016", f"shared_dir={shared}")
    assert "train" in done.stdout and done.stdout.count("rule infer") + done.stdout.count("localrule infer") >= 9
    # the issue's five rows at seeds 1 and 2 besides their own run (their trainings' repeats: R, D-only, two LWL)
    planned = planned_jobs(done.stdout)
    for training in ("frtm-refiner", "frtm-d-only", "lwl-baseline", "lwl-weight-predictor"):
        assert {f"training={training}.seed-{seed}" for seed in (1, 2)} <= planned["train"]


def test_seed_repeats_train_again_at_their_seeds_and_are_checked(tmp_path):
    """A preset's seed_repeats add the rows again on their trainings retrained at each seed (rows sharing a
    training share its repeat); training_seed sets the other trainings' seed, not the repeats'; a bad entry is
    one line naming the key."""
    work = workflow_copy(tmp_path)
    edit_embedded_preset(work, lambda data: data.update(seed_repeats={"rows": ["frtm-ours", "frtm-no-update"],
                                                                      "seeds": [1, 2]}))
    done = snakemake(work, "-n", "-p", "reports/tables.md", "--config", "training_seed=7")
    trains = [line for line in shell_commands(done.stdout) if " --out results/embedded/training/frtm-refiner" in line]
    words = [shlex.split(line) for line in trains]
    assert sorted(json.loads(command[command.index("--config") + 1])["seed"] for command in words) == [1, 2, 7]
    planned = planned_jobs(done.stdout)
    for row in ("frtm-ours.seed-1", "frtm-ours.seed-2", "frtm-no-update.seed-1", "frtm-no-update.seed-2"):
        assert any(f"row={row}" in wildcards for wildcards in planned["infer"]), row
    work = workflow_copy(tmp_path / "same-seed")
    edit_embedded_preset(work, lambda data: data.update(seed_repeats={"rows": ["frtm-ours"], "seeds": [0, 1]}))
    done = snakemake(work, "-n", check=False)
    assert "config/presets/embedded.yaml seed_repeats.seeds: 0 is the seed training frtm-refiner runs at already" \
        in done.stdout + done.stderr
    work = workflow_copy(tmp_path / "copy")
    edit_embedded_preset(work, lambda data: data.update(seed_repeats={"rows": ["first-frame-copy"], "seeds": [1]}))
    done = snakemake(work, "-n", check=False)
    assert "seed_repeats.rows: row 'first-frame-copy' uses no training of the preset" in done.stdout + done.stderr


INJECTED = "; touch pwned ;"


def shell_commands(output: str) -> list[str]:
    return [line.split("Shell command: ", 1)[1] for line in output.splitlines() if "Shell command: " in line]


def test_config_values_reach_the_shell_quoted(tmp_path):
    """Config values (the mirror, dataset paths, splits, sequence names, the cache folder) are single words
    of every data, training, inference and scoring command, whatever they hold."""
    import shlex

    work = workflow_copy(tmp_path)

    def inject(data):
        data["evaluations"]["davis2016-val"].update(qualitative_sequence=f"blackswan{INJECTED}",
                                                    sequences=["blackswan", f"bear{INJECTED}"])
        data["evaluations"]["ytvos2018-jjvalid"]["split"] = f"train{INJECTED}"

    preset = work / "config/presets/paper.yaml"
    data = yaml.safe_load(preset.read_text())
    inject(data)
    preset.write_text(yaml.safe_dump(data))
    ytvos = tmp_path / f"ytvos 2018{INJECTED}"
    ytvos.mkdir()
    (tmp_path / "ytvos2019").mkdir()
    done = snakemake(work, "-n", "-p", "--config", "preset=paper",
                     f"downloads={{mirror: 'http://127.0.0.1/x{INJECTED}'}}", f"ground_truth_cache=cache{INJECTED}",
                     f"paths={{youtube_vos_2018: '{ytvos}', youtube_vos_2019: {tmp_path / 'ytvos2019'}}}")
    commands = [c for c in shell_commands(done.stdout) if not c.startswith("python -m reporting")]  # reports.smk: not here
    programs = {" ".join(shlex.split(c)[:3]) for c in commands}
    assert {"python -m vos_datasets.download", "python -m metrics", "python -m metrics.youtube_vos",
            "python -m vos_datasets.youtube_vos", "python -m methods"} <= programs
    assert any(c.startswith("torchrun ") for c in commands) and any("--score-map-sequences" in c for c in commands)
    carrying = [c for c in commands if "touch pwned" in c]
    assert len(carrying) > 20
    for command in carrying:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        assert ";" not in list(lexer), command  # no value ends the command and starts another
    text = "\n".join(commands)
    assert f"--mirror 'http://127.0.0.1/x{INJECTED}'" in text and f"--score-map-sequences 'blackswan{INJECTED}'" in text
    assert f"--sequences blackswan 'bear{INJECTED}'" in text and f"--cache-dir 'cache{INJECTED}'" in text


def test_names_that_become_files_and_command_words_are_restricted(tmp_path):
    work = workflow_copy(tmp_path)
    edit_embedded_preset(work, lambda data: data["rows"].update({
        f"copy{INJECTED}": {"method": "first_frame_copy", "evaluate_on": ["embedded-val"]}}))
    done = snakemake(work, "-n", check=False)
    assert done.returncode != 0
    assert f"config rows: name 'copy{INJECTED}' is not allowed" in done.stdout + done.stderr


def test_a_config_typo_is_one_line_with_the_allowed_keys(tmp_path):
    done = snakemake(workflow_copy(tmp_path), "-n", "--config", "downloads={retires: 3}", check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert ("config key downloads.retires: unknown key; allowed here: archives, mirror, retries, sha256; "
            "did you mean 'retries'?") in out
    assert "Failed validating" not in out and len(out.splitlines()) < 12  # not the schema (680 lines)
    done = snakemake(workflow_copy(tmp_path / "second"), "-n", "--config",
                     "datasets={embedded: {kind: synth}}", check=False)
    assert ("config datasets.embedded.kind: 'synth' is not allowed; choose one of ['synthetic', 'davis', "
            "'youtube_vos']") in done.stdout + done.stderr


def test_nested_config_integers_are_accepted(tmp_path):
    done = snakemake(workflow_copy(tmp_path), "-n", "-p", "resources/datasets/davis2017", "--config", "preset=paper",
                     "downloads={retries: 3}", "training_seed=null", youtube_vos_paths(tmp_path))
    assert "--retries 3 >" in done.stdout
    done = snakemake(workflow_copy(tmp_path / "second"), "-n", "--config", "downloads={retries: many}", check=False)
    assert "config downloads.retries: 'many' is a string, expected integer" in done.stdout + done.stderr


def test_held_out_youtube_vos_scoring_follows_the_authors_unless_named(tmp_path):
    """The paper preset's held-out YouTube-VOS evaluations pass the authors' frame rule (the last annotated frame
    not scored) to metrics.youtube_vos; `frames` names the other rule, and a wrong value or a DAVIS evaluation
    given `frames` fails the dry run in one line."""
    paths = youtube_vos_paths(tmp_path)

    def jobs(work):
        done = snakemake(work, "-n", "-p", "--config", "preset=paper", paths)
        return [command for command in shell_commands(done.stdout) if "-m metrics.youtube_vos" in command]

    def edit_paper(work, change):
        preset = work / "config/presets/paper.yaml"
        data = yaml.safe_load(preset.read_text())
        change(data["evaluations"])
        preset.write_text(yaml.safe_dump(data))

    scoring = jobs(workflow_copy(tmp_path / "default"))
    assert len(scoring) == 10 and all("--frames authors" in command for command in scoring)
    work = workflow_copy(tmp_path / "named")
    edit_paper(work, lambda evaluations: evaluations["ytvos2019-jjvalid"].update(frames="all-after-first"))
    scoring = jobs(work)
    assert {("ytvos2019-jjvalid" in c, "--frames all-after-first" in c) for c in scoring} == {(True, True), (False, False)}
    work = workflow_copy(tmp_path / "wrong")
    edit_paper(work, lambda evaluations: evaluations["ytvos2018-jjvalid"].update(frames="last"))
    done = snakemake(work, "-n", "--config", "preset=paper", paths, check=False)
    assert "evaluations.ytvos2018-jjvalid.frames: 'last' is not one of ['all-after-first', 'authors']" in done.stdout + done.stderr
    work = workflow_copy(tmp_path / "davis")
    edit_paper(work, lambda evaluations: evaluations["davis2016-val"].update(frames="authors"))
    done = snakemake(work, "-n", "--config", "preset=paper", paths, check=False)
    assert "evaluations.davis2016-val.frames: only a local YouTube-VOS scoring" in done.stdout + done.stderr
