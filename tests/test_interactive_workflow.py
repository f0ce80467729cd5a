"""The interactive track in the workflow (workflow/rules/interactive.smk): a preset's `interactive:` section plans
its stand-in or its downloads, one job per session with the session's settings on the command line, and the
report; a session naming what does not exist is one line when the DAG is built."""

from __future__ import annotations

import shutil

import yaml

from tests.test_workflow import REPO, job_blocks, shell_commands, snakemake, workflow_copy, youtube_vos_paths


def planned_rules(dry_run: str) -> list[str]:
    return sorted(block.split(":", 1)[0].removeprefix("local").removeprefix("rule ") for block in job_blocks(dry_run))


def test_the_ci_preset_plans_the_stand_in_sessions_and_report(tmp_path, shared):
    work = workflow_copy(tmp_path)
    shutil.copytree(REPO / "tests/regression/weights", work / "tests/regression/weights")
    done = snakemake(work, "-n", "-p", "reports/ci/interactive.md", "--config", "preset=ci", f"shared_dir={shared}")
    # fetch_weights: EfficientNet-Lite0's ImageNet file, which the FRTM and LWL sessions' backbone starts from
    assert planned_rules(done.stdout) == ["fetch_weights", "interactive_report", "interactive_session", "interactive_session",
                                          "interactive_session", "interactive_standin", "interactive_summary",
                                          "interactive_summary", "interactive_summary"]
    commands = shell_commands(done.stdout)
    standin = next(c for c in commands if "interactive standin" in c)
    assert "--kind single" in standin and "--sequences blackswan,car-shadow,drift-straight,horsejump-high,kite-surf" in standin
    session = next(c for c in commands if "interactive session" in c and "--method scribble_copy" in c)
    assert "--scribbles 1" in session and "--max-interactions 8" in session and "--chunk 1/1" in session
    assert "--max-time" not in session  # no time limit: the per-interaction result alone
    assert "resources/interactive/ci/davis2016-standin" in session
    # FRTM and LWL sessions: their variant `interactive` < method_defaults, the fixed weights as checkpoint
    frtm = next(c for c in commands if "interactive session" in c and "--method frtm" in c)
    for setting in ('"scribble_dilation": 2', '"backbone": "efficientnet_lite0"', '"input_size": [240, 432]',
                    '"checkpoint": "tests/regression/weights/frtm-refiner.pt"'):
        assert setting in frtm
    lwl = next(c for c in commands if "interactive session" in c and "--method lwl" in c)
    assert '"crop_size": [240, 432]' in lwl and '"checkpoint": "tests/regression/weights/lwl-weight-predictor.pt"' in lwl
    summary = next(c for c in commands if "interactive summarize" in c and "frtm-interactive" in c)
    assert "--reports results/ci/interactive/frtm-interactive/chunks/1-of-1/report.csv" in summary
    report = next(c for c in commands if "reporting interactive" in c)
    assert "FRTM interactive (fixed weights)" in report
    # the regression check's target plans no interactive job
    regression = snakemake(work, "-n", "results/ci/summary.csv", "--config", "preset=ci", f"shared_dir={shared}")
    assert "interactive" not in " ".join(planned_rules(regression.stdout))


def test_the_paper_preset_downloads_davis_2017_and_its_scribbles_and_keeps_the_tracks_time_limit(tmp_path):
    work = workflow_copy(tmp_path)
    done = snakemake(work, "-n", "-p", "reports/paper/interactive.md", "--config", "preset=paper",
                     youtube_vos_paths(tmp_path))
    rules = planned_rules(done.stdout)
    assert {"download_davis", "interactive_davis2017", "interactive_report", "interactive_session",
            "interactive_summary", "train"} <= set(rules)
    # scribble copy in one job; FRTM and LWL (the preset's trainings; the released sessions left out without
    # the files) in 6 chunks each, merged by the summary
    assert rules.count("interactive_session") == 1 + 6 + 6 and rules.count("interactive_summary") == 3
    assert "interactive session frtm-interactive-released left out" in done.stderr
    commands = shell_commands(done.stdout)
    assert any("interactive download-scribbles --davis-root resources/datasets/davis2017-interactive" in c
               for c in commands)
    session = next(c for c in commands if "interactive session" in c and "--method scribble_copy" in c)
    assert "--max-time 30" in session and "--scribbles" not in session  # all three scribbles of every sequence
    frtm = [c for c in commands if "interactive session" in c and "--method frtm" in c]
    assert sorted(c.split("--chunk ")[1].split()[0] for c in frtm) == [f"{k}/6" for k in range(1, 7)]
    assert all('"checkpoint": "results/paper/training/frtm-refiner/head.pt"' in c and '"backbone": "resnet101"' in c
               and '"device": "cuda"' in c and "--max-time 30" in c for c in frtm)
    lwl = next(c for c in commands if "interactive session" in c and "--method lwl" in c)
    assert '"checkpoint": "results/paper/training/lwl-davis-finetune/head.pt"' in lwl
    gpu_jobs = [block for block in job_blocks(done.stdout) if "rule interactive_session:" in block
                and "method frtm" in block]
    assert gpu_jobs and all("gpu=1" in block for block in gpu_jobs)


def test_a_session_on_an_unknown_dataset_or_method_is_one_line(tmp_path, shared):
    work = workflow_copy(tmp_path)
    preset = work / "config/presets/ci.yaml"
    data = yaml.safe_load(preset.read_text())
    data["interactive"]["sessions"]["scribble-copy"]["dataset"] = "nowhere"
    preset.write_text(yaml.safe_dump(data))
    done = snakemake(work, "-n", "reports/ci/interactive.md", "--config", "preset=ci", f"shared_dir={shared}",
                     check=False)
    assert done.returncode != 0
    assert "interactive.sessions.scribble-copy.dataset: 'nowhere' is not an entry of interactive.datasets" in (
        done.stdout + done.stderr)
    data["interactive"]["sessions"]["scribble-copy"].update(dataset="davis2016-standin", method="first_frame_copy")
    preset.write_text(yaml.safe_dump(data))
    done = snakemake(work, "-n", "reports/ci/interactive.md", "--config", "preset=ci", f"shared_dir={shared}",
                     check=False)
    assert "interactive.sessions.scribble-copy.method: 'first_frame_copy' is not an interactive method" in (
        done.stdout + done.stderr)


def test_a_frtm_or_lwl_session_names_a_variant_one_weights_file_and_settings_its_job_takes(tmp_path, shared):
    work = workflow_copy(tmp_path)
    preset = work / "config/presets/ci.yaml"
    data = yaml.safe_load(preset.read_text())
    session = data["interactive"]["sessions"]["frtm-interactive"]
    cases = [
        ({"variant": None}, "frtm-interactive.variant: a session of frtm names a variant"),
        ({"training": "frtm-refiner"}, "needs exactly one of `training:`"),
        ({"settings": {"scribble_dilaton": 2}}, "scribble_dilaton"),
        ({"checkpoint": None, "training": "lwl-weight-predictor"}, "'lwl-weight-predictor' is not a frtm training"),
        ({"chunks": 6}, "chunks: 6 jobs for the 5 sequence(s)"),
    ]
    for change, message in cases:
        changed = {key: value for key, value in {**session, **change}.items() if value is not None}
        data["interactive"]["sessions"]["frtm-interactive"] = changed
        preset.write_text(yaml.safe_dump(data))
        done = snakemake(work, "-n", "reports/ci/interactive.md", "--config", "preset=ci", f"shared_dir={shared}",
                         check=False)
        assert done.returncode != 0 and message in done.stdout + done.stderr, (change, done.stderr[-2000:])
        assert "interactive.sessions.frtm-interactive" in done.stdout + done.stderr
    data["interactive"]["sessions"]["frtm-interactive"] = session
    data["interactive"]["sessions"]["scribble-copy"]["checkpoint"] = "x.pt"
    preset.write_text(yaml.safe_dump(data))
    done = snakemake(work, "-n", "reports/ci/interactive.md", "--config", "preset=ci", f"shared_dir={shared}",
                     check=False)
    assert done.returncode != 0 and "scribble_copy takes no variant or weights (checkpoint)" in done.stdout + done.stderr
