"""The interactive track in the workflow (workflow/rules/interactive.smk): a preset's `interactive:` section plans
its stand-in or its downloads, one job per session with the session's settings on the command line, and the
report; a session naming what does not exist is one line when the DAG is built."""

from __future__ import annotations

import shutil

import yaml

from tests.test_workflow import REPO, job_blocks, shell_commands, snakemake, workflow_copy, youtube_vos_paths


def planned_rules(dry_run: str) -> list[str]:
    return sorted(block.split(":", 1)[0].removeprefix("local").removeprefix("rule ") for block in job_blocks(dry_run))


def test_the_ci_preset_plans_the_stand_in_session_and_report(tmp_path, shared):
    work = workflow_copy(tmp_path)
    done = snakemake(work, "-n", "-p", "reports/ci/interactive.md", "--config", "preset=ci", f"shared_dir={shared}")
    assert planned_rules(done.stdout) == ["interactive_report", "interactive_session", "interactive_standin"]
    commands = shell_commands(done.stdout)
    standin = next(c for c in commands if "interactive standin" in c)
    assert "--kind single" in standin and "--sequences blackswan,car-shadow,drift-straight,horsejump-high,kite-surf" in standin
    session = next(c for c in commands if "interactive session" in c)
    assert "--method scribble_copy" in session and "--scribbles 1" in session and "--max-interactions 8" in session
    assert "--max-time" not in session  # no time limit: the per-interaction result alone
    assert "resources/interactive/ci/davis2016-standin" in session
    # the regression check's target plans no interactive job
    shutil.copytree(REPO / "tests/regression/weights", work / "tests/regression/weights")
    regression = snakemake(work, "-n", "results/ci/summary.csv", "--config", "preset=ci", f"shared_dir={shared}")
    assert "interactive" not in " ".join(planned_rules(regression.stdout))


def test_the_paper_preset_downloads_davis_2017_and_its_scribbles_and_keeps_the_tracks_time_limit(tmp_path):
    work = workflow_copy(tmp_path)
    done = snakemake(work, "-n", "-p", "reports/paper/interactive.md", "--config", "preset=paper",
                     youtube_vos_paths(tmp_path))
    assert planned_rules(done.stdout) == ["download_davis", "interactive_davis2017", "interactive_report",
                                          "interactive_session"]
    commands = shell_commands(done.stdout)
    assert any("interactive download-scribbles --davis-root resources/datasets/davis2017-interactive" in c
               for c in commands)
    session = next(c for c in commands if "interactive session" in c)
    assert "--max-time 30" in session and "--scribbles" not in session  # all three scribbles of every sequence


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
