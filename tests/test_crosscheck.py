"""The optional cross-check against the official DAVIS toolkit: metrics/crosscheck.py, envs/davis2017-toolkit.yaml and
workflow/rules/crosscheck.smk (docs/official-toolkit.md).

The toolkit itself needs its own environment (NumPy < 1.24), which the suite's does not have: the comparison is tested
against the figures the toolkit recorded in ../shared/fixtures/metrics, and the `official` command runs only where
$DAVIS2017_TOOLKIT_PYTHON names a Python with the toolkit installed (e.g. the conda environment's)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from metrics import evaluate, write_tables
from metrics.crosscheck import AGREEMENT, GLOBAL_COLUMNS, OBJECT_COLUMNS, main
from tests.conftest import write_sequence
from tests.test_workflow import snakemake, workflow_copy

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "metrics" / "crosscheck.py"
TOOLKIT_PYTHON = "DAVIS2017_TOOLKIT_PYTHON"


def write_official(out: Path, global_figures: dict, objects: dict, full: bool = True, subset: str = "val") -> Path:
    """Figures in the toolkit's layout: its two CSVs with "%.3f" (evaluation_method.py), and with `full` the
    per-object table at full precision that `crosscheck.py official` adds."""
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([{"Sequence": name, **figures} for name, figures in objects.items()],
                         columns=["Sequence", *OBJECT_COLUMNS])
    pd.DataFrame([global_figures], columns=GLOBAL_COLUMNS).to_csv(out / f"global_results-{subset}.csv", index=False,
                                                                 float_format="%.3f")
    table[["Sequence", "J-Mean", "F-Mean"]].to_csv(out / f"per-sequence_results-{subset}.csv", index=False,
                                                   float_format="%.3f")
    if full:
        table.to_csv(out / f"per-object_results-{subset}.csv", index=False)
    return out


def compare(official: Path, suite: Path, report: Path, suite_set: str = "mo") -> int:
    return main(["compare", str(official), str(suite), "--official-set", "val", "--suite-set", suite_set,
                 "--report", str(report)])


def one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# --- the comparison, against the figures the official toolkit recorded ----------------------------------------------


@pytest.fixture(scope="module")
def multiobject(shared, tmp_path_factory):
    """The multi-object fixture: its recorded official figures, and the suite's tables of the same masks."""
    fixture = json.loads((shared / "fixtures/metrics/multiobject/official.json").read_text())
    pred = shared / "fixtures/metrics/multiobject/pred"
    names = sorted(p.name for p in pred.iterdir() if p.is_dir())
    suite = tmp_path_factory.mktemp("suite")
    result = evaluate(shared / "data/davis2017-val-osvos", pred, names, workers=1, progress=False)
    write_tables(result, suite, "mo")
    return fixture, suite


@pytest.mark.shared
@pytest.mark.parametrize("full", [True, False], ids=["per-object", "printed-only"])
def test_recorded_official_figures_agree(multiobject, tmp_path, full):
    fixture, suite = multiobject
    official = write_official(tmp_path / "official", fixture["global"], fixture["objects"], full)
    assert compare(official, suite, tmp_path / "report.md") == 0
    report = (tmp_path / "report.md").read_text()
    assert "**Result: passed**" in report
    figures = 7 + 30 * (6 if full else 2)
    assert f"{figures} figures compared: 7 global, {figures - 7} per object (30 objects)" in report
    assert "| global | J&F-Mean | 0.692 | 0.692064" in report  # printed with 3 decimals, the suite's in full


@pytest.mark.shared
def test_a_figure_off_by_more_than_the_agreement_fails_naming_it(multiobject, tmp_path, capsys):
    fixture, suite = multiobject
    objects = json.loads(json.dumps(fixture["objects"]))
    objects["judo_2"]["J-Decay"] += 1e-4  # far below the 3 decimals the toolkit prints, far above 1e-6
    official = write_official(tmp_path / "official", fixture["global"], objects)
    assert compare(official, suite, tmp_path / "report.md") == 1
    one_line_error(capsys, "1 of 187 figures beyond tolerance", "worst: J-Decay of judo_2", "1.00e-04 > 1e-06")
    report = (tmp_path / "report.md").read_text()
    assert "**Result: FAILED**" in report
    assert re.search(r"\| judo_2 \| J-Decay \| .* \| 1\.00e-04 \*\*over\*\* \| 1e-06 \|", report)


@pytest.mark.shared
def test_a_global_figure_off_by_a_printed_digit_fails(multiobject, tmp_path, capsys):
    fixture, suite = multiobject
    official = write_official(tmp_path / "official", {**fixture["global"], "F-Recall": 0.825}, fixture["objects"])
    assert compare(official, suite, tmp_path / "report.md") == 1
    one_line_error(capsys, "worst: F-Recall of global: official 0.825", "> 0.000501")


@pytest.mark.shared
def test_objects_scored_by_one_side_only_fail(multiobject, tmp_path, capsys):
    fixture, suite = multiobject
    objects = {name: figures for name, figures in fixture["objects"].items() if name != "pigs_3"}
    official = write_official(tmp_path / "official", fixture["global"], objects)
    assert compare(official, suite, tmp_path / "report.md") == 1
    one_line_error(capsys, "objects scored by one side only: pigs_3 (suite only)")


@pytest.mark.shared
def test_suite_tables_of_another_protocol_are_refused(multiobject, tmp_path, capsys):
    fixture, suite = multiobject
    other = tmp_path / "suite"
    shutil.copytree(suite, other)
    marker = other / "protocol-mo.json"
    info = json.loads(marker.read_text())
    info["protocol"]["objects"] = "all"
    marker.write_text(json.dumps(info))
    official = write_official(tmp_path / "official", fixture["global"], fixture["objects"])
    assert compare(official, other, tmp_path / "report.md") == 1
    one_line_error(capsys, str(marker), "{'objects': 'all'}", "not the official protocol")
    assert not (tmp_path / "report.md").exists()


# --- without ../shared: the comparison's logic on a small synthetic evaluation ----------------------------------------


def test_comparison_logic_without_shared_data(tmp_path, capsys):
    """The suite's own figures stand in for the official ones (identical: passes; one nudged: fails)."""
    frames = []
    for t in range(6):
        ids = np.zeros((30, 40), np.uint8)
        ids[5 + t:15 + t, 5:15] = 1
        ids[18:26, 20 + t:30 + t] = 2
        frames.append(ids)
    write_sequence(tmp_path / "gt", "toy", frames)
    write_sequence(tmp_path / "pred", "toy", [np.roll(ids, 1, axis=1) for ids in frames])
    suite = tmp_path / "suite"
    write_tables(evaluate(tmp_path / "gt", tmp_path / "pred", workers=1, progress=False), suite, "toy")
    objects = pd.read_csv(suite / "per-object_results-toy.csv").set_index("Sequence")
    figures = {name: row.to_dict() for name, row in objects.iterrows()}
    glob = json.loads((suite / "protocol-toy.json").read_text())["global"]
    official = write_official(tmp_path / "official", glob, figures)
    assert compare(official, suite, tmp_path / "ok.md", "toy") == 0
    figures["toy_2"]["F-Mean"] += 2 * AGREEMENT
    official = write_official(tmp_path / "nudged", glob, figures)
    assert compare(official, suite, tmp_path / "bad.md", "toy") == 1
    one_line_error(capsys, "worst: F-Mean of toy_2")


def test_missing_official_table_is_named(tmp_path, capsys):
    assert compare(tmp_path / "nowhere", tmp_path / "nowhere", tmp_path / "r.md") == 1
    one_line_error(capsys, "protocol-mo.json: absent")


def test_an_evaluation_scoring_later_objects_is_refused_before_the_toolkit_runs(tmp_path, capsys):
    code = main(["official", str(tmp_path), str(tmp_path), "--sequences", "a", "--objects", "all",
                 "--evaluation", "embedded-val", "--out", str(tmp_path / "out")])
    assert code == 1
    one_line_error(capsys, "evaluations.embedded-val.objects is 'all'", "objects: first-frame")
    assert not (tmp_path / "out").exists()


def test_toolkit_environment_is_pinned():
    env = yaml.safe_load((REPO / "envs/davis2017-toolkit.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    pins = dict(line.split("==") for line in pip if "==" in line)
    assert pins["numpy"] < "1.24"  # the toolkit calls np.bool, removed in NumPy 1.24
    assert all("==" in line or line.startswith("git+") for line in pip), pip
    (url,) = [line for line in pip if line.startswith("git+")]
    assert re.fullmatch(r"git\+https://github\.com/davisvideochallenge/davis2017-evaluation\.git@[0-9a-f]{40}", url)


# --- the official toolkit itself, where its environment is available ---------------------------------------------------


def run_official(tmp_path: Path, dataset: Path, masks: Path, *args: str) -> Path:
    python = os.environ.get(TOOLKIT_PYTHON)
    if not python:
        pytest.skip(f"needs the official toolkit: set ${TOOLKIT_PYTHON} to a Python with davis2017-evaluation "
                    "installed (e.g. the envs/davis2017-toolkit.yaml environment's bin/python)")
    out = tmp_path / "official"
    done = subprocess.run([python, str(SCRIPT), "official", str(dataset), str(masks), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def assert_objects_match(out: Path, recorded: dict, names: list[str]) -> None:
    table = pd.read_csv(out / "per-object_results-val.csv").set_index("Sequence")
    expected = {key: figures for key, figures in recorded["objects"].items() if key.rsplit("_", 1)[0] in names}
    assert set(table.index) == set(expected)
    for key, figures in expected.items():
        for column, value in figures.items():
            assert table.loc[key, column] == pytest.approx(value, abs=AGREEMENT), (key, column)


@pytest.mark.shared
def test_official_command_reproduces_the_recorded_multiobject_figures(shared, tmp_path):
    dataset = tmp_path / "davis"
    (dataset / "Annotations").mkdir(parents=True)
    (dataset / "Annotations" / "480p").symlink_to(shared / "data/davis2017-val-osvos")
    names = ["judo", "lab-coat"]
    out = run_official(tmp_path, dataset, shared / "fixtures/metrics/multiobject/pred", "--sequences", *names)
    recorded = json.loads((shared / "fixtures/metrics/multiobject/official.json").read_text())
    assert_objects_match(out, recorded, names)


@pytest.mark.shared
def test_official_command_reads_davis2016_masks_as_one_object(shared, davis16_osvos_pred, tmp_path):
    names = ["car-shadow", "motocross-jump"]
    out = run_official(tmp_path, shared / "data/davis2016", davis16_osvos_pred, "--year", "2016",
                       "--sequences", *names)
    recorded = json.loads((shared / "fixtures/metrics/davis16-val-osvos.json").read_text())
    assert_objects_match(out, recorded, names)


# --- the unsupervised task: the toolkit's figures of tests/fixtures/unsupervised (no ../shared needed) -----------------

UNSUPERVISED = REPO / "tests" / "fixtures" / "unsupervised"


@pytest.fixture(scope="module")
def unsupervised(tmp_path_factory):
    """The unsupervised fixture: the figures the toolkit recorded, and the suite's tables of the same masks."""
    fixture = json.loads((UNSUPERVISED / "official.json").read_text())
    suite = tmp_path_factory.mktemp("suite-unsupervised")
    write_tables(evaluate(UNSUPERVISED / "gt", UNSUPERVISED / "pred", fixture["sequences"], workers=1,
                          progress=False, task="unsupervised"), suite, "un")
    return fixture, suite


def test_unsupervised_comparison_passes_with_its_task(unsupervised, tmp_path):
    fixture, suite = unsupervised
    official = write_official(tmp_path / "official", fixture["global"], fixture["objects"])
    assert main(["compare", str(official), str(suite), "--suite-set", "un", "--task", "unsupervised",
                 "--report", str(tmp_path / "report.md")]) == 0
    assert "**Result: passed**" in (tmp_path / "report.md").read_text()


def test_tables_of_the_other_task_are_refused(unsupervised, multiobject_free_suite, tmp_path, capsys):
    """Unsupervised tables compared as semi-supervised (the default --task), and the reverse, fail in one line."""
    fixture, suite = unsupervised
    official = write_official(tmp_path / "official", fixture["global"], fixture["objects"])
    assert main(["compare", str(official), str(suite), "--suite-set", "un", "--report", str(tmp_path / "r.md")]) == 1
    one_line_error(capsys, "protocol-un.json", "'task': 'unsupervised'", "not the official protocol of the semi-supervised task")
    semi = multiobject_free_suite
    assert main(["compare", str(official), str(semi), "--suite-set", "toy", "--task", "unsupervised",
                 "--report", str(tmp_path / "r.md")]) == 1
    one_line_error(capsys, "protocol-toy.json", "'task': 'semi-supervised'", "not the official protocol of the unsupervised task")


@pytest.fixture
def multiobject_free_suite(tmp_path):
    """Semi-supervised tables of a small synthetic evaluation (tables written before the task existed record no
    task: the field is removed, and they still read as semi-supervised)."""
    frames = [np.pad(np.ones((6, 6), np.uint8), 4)] * 4
    write_sequence(tmp_path / "gt", "toy", frames)
    write_sequence(tmp_path / "pred", "toy", frames)
    suite = tmp_path / "semi"
    write_tables(evaluate(tmp_path / "gt", tmp_path / "pred", workers=1, progress=False), suite, "toy")
    marker = suite / "protocol-toy.json"
    info = json.loads(marker.read_text())
    del info["protocol"]["task"]
    marker.write_text(json.dumps(info))
    return suite


def test_unsupervised_davis2016_is_refused_before_the_toolkit_runs(tmp_path, capsys):
    code = main(["official", str(tmp_path), str(tmp_path), "--sequences", "a", "--year", "2016", "--task",
                 "unsupervised", "--out", str(tmp_path / "out")])
    assert code == 1
    one_line_error(capsys, "DAVIS 2016 has no unsupervised annotations")
    assert not (tmp_path / "out").exists()


def test_official_command_reproduces_the_recorded_unsupervised_figures(tmp_path):
    """`official --task unsupervised` on the fixture (laid out as DATASET/Annotations_unsupervised/480p) gives the
    figures make_fixture.py recorded; also the refusal of over 20 proposals."""
    fixture = json.loads((UNSUPERVISED / "official.json").read_text())
    dataset = tmp_path / "davis"
    (dataset / "Annotations_unsupervised").mkdir(parents=True)
    (dataset / "Annotations_unsupervised" / "480p").symlink_to(UNSUPERVISED / "gt")
    out = run_official(tmp_path, dataset, UNSUPERVISED / "pred", "--task", "unsupervised",
                       "--sequences", *fixture["sequences"])
    table = pd.read_csv(out / "per-object_results-val.csv").set_index("Sequence")
    assert list(table.index) == list(fixture["objects"])
    for name, figures in fixture["objects"].items():
        for column, value in figures.items():
            assert table.loc[name, column] == pytest.approx(value, abs=AGREEMENT), (name, column)
    done = subprocess.run([os.environ[TOOLKIT_PYTHON], str(SCRIPT), "official", str(dataset),
                           str(UNSUPERVISED / "pred"), "--task", "unsupervised", "--sequences", "over20",
                           "--out", str(tmp_path / "refused")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "the official toolkit stopped" in done.stderr and "a proposal id above 20" in done.stderr
    assert fixture["refused"]["over20"] in done.stdout


# --- the workflow rule ----------------------------------------------------------------------------------------------


def with_crosscheck_rules(work: Path) -> Path:
    """The workflow copy with workflow/rules/crosscheck.smk included (as the Snakefile will)."""
    snakefile = work / "Snakefile"
    text = snakefile.read_text()
    if "workflow/rules/crosscheck.smk" not in text:
        snakefile.write_text(text + '\n\ninclude: "workflow/rules/crosscheck.smk"\n')
    return work


def test_dry_run_shows_the_toolkit_command(tmp_path, shared):
    work = with_crosscheck_rules(workflow_copy(tmp_path))
    target = "results/ci/davis2016-val-subset/first-frame-copy/official-crosscheck.md"
    done = snakemake(work, "-n", "-p", target, "--config", "preset=ci", f"shared_dir={shared}")
    out = done.stdout
    assert re.search(r"^crosscheck_official\s+1$", out, re.MULTILINE)
    assert (f"python {work}/metrics/crosscheck.py official {shared}/data/davis2016 "
            "results/ci/davis2016-val-subset/first-frame-copy/masks --split val --year 2016 "
            "--sequences blackswan car-shadow dog kite-surf --task semi-supervised --objects first-frame") in out
    assert (f"python {work}/metrics/crosscheck.py compare results/ci/davis2016-val-subset/first-frame-copy/official "
            "results/ci/davis2016-val-subset/first-frame-copy/scores --official-set val "
            f"--suite-set davis2016-val-subset --task semi-supervised --report {target}") in out


def test_an_unsupervised_evaluation_is_scored_and_cross_checked_with_its_task(tmp_path, shared):
    """An evaluation with `task: unsupervised` on the downloaded unsupervised archive: the archive is fetched, the
    masks are scored against its Annotations_unsupervised/480p with --task unsupervised, and the cross-check runs
    the toolkit's unsupervised task; on DAVIS 2016 the task is refused."""
    work = with_crosscheck_rules(workflow_copy(tmp_path))
    preset = work / "config/presets/ci.yaml"
    data = yaml.safe_load(preset.read_text())
    data["datasets"]["davis2017-unsupervised"] = {"kind": "davis", "download": "davis2017-unsupervised"}
    data["evaluations"]["davis2017-unsupervised-val"] = {"dataset": "davis2017-unsupervised", "split": "val",
                                                         "sequences": ["bmx-trees"], "task": "unsupervised"}
    data["rows"]["first-frame-copy"]["evaluate_on"].append("davis2017-unsupervised-val")
    preset.write_text(yaml.safe_dump(data))
    target = "results/ci/davis2017-unsupervised-val/first-frame-copy/official-crosscheck.md"
    done = snakemake(work, "-n", "-p", target, "--config", "preset=ci", f"shared_dir={shared}")
    dataset = "resources/datasets/davis2017-unsupervised"
    assert "python -m vos_datasets.download davis2017-unsupervised resources/datasets" in done.stdout
    assert (f"python -m metrics {dataset}/Annotations_unsupervised/480p "
            "results/ci/davis2017-unsupervised-val/first-frame-copy/masks") in done.stdout
    assert "--sequences bmx-trees --task unsupervised --objects first-frame" in done.stdout
    assert f"official {dataset} " in done.stdout
    assert done.stdout.count("--task unsupervised") == 3  # the suite's scoring, the toolkit's, the comparison
    data["evaluations"]["davis2016-val-subset"]["task"] = "unsupervised"
    preset.write_text(yaml.safe_dump(data))
    done = snakemake(work, "-n", target, "--config", "preset=ci", f"shared_dir={shared}", check=False)
    assert done.returncode != 0
    assert "evaluations.davis2016-val-subset.task: unsupervised is a DAVIS 2017 task" in done.stdout + done.stderr


def test_default_target_runs_no_crosscheck(tmp_path):
    done = snakemake(with_crosscheck_rules(workflow_copy(tmp_path)), "-n")
    assert "crosscheck" not in done.stdout
