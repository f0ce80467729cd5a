"""The unsupervised task (`--task unsupervised`, metrics/unsupervised.py) against figures the official toolkit computed
(tests/fixtures/unsupervised, made by its make_fixture.py), and its input checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import metrics
from metrics import EvaluationError, Protocol, evaluate
from metrics.__main__ import main as cli
from metrics.measures import boundary_radius, f_measure, jaccard, pair_scores
from tests.conftest import write_sequence

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "unsupervised"
AGREEMENT = 1e-6  # metrics/README.md: the toolkit's figures to 1e-6


@pytest.fixture(scope="module")
def official() -> dict:
    return json.loads((FIXTURE / "official.json").read_text())


def assert_close(ours: float, theirs: float, what: str) -> None:
    assert (math.isnan(ours) and math.isnan(theirs)) or abs(ours - theirs) <= AGREEMENT, (what, ours, theirs)


def run_cli(out: Path, *extra: str, gt: Path = FIXTURE / "gt", pred: Path = FIXTURE / "pred") -> int:
    return cli([str(gt), str(pred), "--out", str(out), "--quiet", "--workers", "1", *extra])


def one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, err
    return err


# --- the toolkit's figures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_fixture_figures_equal_the_toolkits(official, workers):
    result = evaluate(FIXTURE / "gt", FIXTURE / "pred", official["sequences"], workers=workers, progress=False,
                      task="unsupervised")
    for key, value in official["global"].items():
        assert_close(result.global_statistics()[key], value, key)
    rows = {row.pop("Sequence"): row for row in result.object_statistics()}
    assert list(rows) == list(official["objects"])  # the toolkit's names and order: <sequence>_<row>
    for name, figures in official["objects"].items():
        for key, value in figures.items():
            assert_close(rows[name][key], value, f"{name} {key}")
    frames: dict[str, dict[str, list]] = {}
    for row in result.per_frame():
        entry = frames.setdefault(f"{row['Sequence']}_{row['Object']}", {"Frame": [], "J": [], "F": []})
        for key in entry:
            entry[key].append(row[key])
    for name, values in official["per_frame"].items():
        sequence = name.rsplit("_", 1)[0]
        # every frame is scored, the first and the last included
        assert frames[name]["Frame"] == sorted(p.stem for p in (FIXTURE / "gt" / sequence).glob("*.png"))
        np.testing.assert_allclose(frames[name]["J"], values["J"], rtol=0, atol=AGREEMENT, err_msg=name)
        np.testing.assert_allclose(frames[name]["F"], values["F"], rtol=0, atol=AGREEMENT, err_msg=name)


def test_rows_hold_the_matched_proposal_and_object(official):
    """The toolkit's rows are the matched proposals in proposal order: in `swap`, row 1 is proposal 1, which
    outlines object 3."""
    result = evaluate(FIXTURE / "gt", FIXTURE / "pred", ["swap", "missing"], workers=1, progress=False,
                      task="unsupervised")
    matches = {seq.sequence: seq.matches for seq in result.sequences}
    assert matches["swap"] == {1: (1, 3), 2: (2, 1), 3: (3, 2)}
    # two proposals for four objects: the two padded (empty) ones take the objects left
    assert [proposal for proposal, _ in matches["missing"].values()] == [1, 2, 3, 4]
    assert sorted(obj for _, obj in matches["missing"].values()) == [1, 2, 3, 4]


@pytest.mark.parametrize("change", [{"ignore_void": False}, {"skip_first_last": True}])
def test_the_fixture_tells_the_toolkits_rules_apart(official, change):
    """Void counted, or the first and last frame skipped (the semi-supervised rules), give other figures: the
    fixture checks both rules of the unsupervised task."""
    result = evaluate(FIXTURE / "gt", FIXTURE / "pred", official["sequences"], workers=1, progress=False,
                      protocol=Protocol(task="unsupervised", **change))
    assert abs(result.global_statistics()["J&F-Mean"] - official["global"]["J&F-Mean"]) > 100 * AGREEMENT


# --- the command line --------------------------------------------------------------------------------------------


def test_cli_writes_the_same_csvs(official, tmp_path):
    out = tmp_path / "scores"
    assert run_cli(out, "--task", "unsupervised", "--sequences", *official["sequences"], "--set", "val",
                   "--cache-dir", str(tmp_path / "cache")) == 0
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["global_results-val.csv", "per-frame_results-val.csv", "per-object_results-val.csv",
                     "per-sequence_results-val.csv", "protocol-val.json"]
    glob = pd.read_csv(out / "global_results-val.csv")
    for key, value in official["global"].items():
        assert abs(glob.loc[0, key] - value) <= 0.0005 + AGREEMENT  # "%.3f", as the toolkit's CSV
    objects = pd.read_csv(out / "per-object_results-val.csv").set_index("Sequence")
    for name, figures in official["objects"].items():
        for key, value in figures.items():
            assert_close(float(objects.loc[name, key]), value, f"{name} {key}")
    info = json.loads((out / "protocol-val.json").read_text())
    assert info["protocol"] == {"objects": "first-frame", "ignore_void": True, "decay_uint8_quirk": True,
                                "skip_first_last": False, "bound_th": 0.008, "task": "unsupervised"}
    assert info["matching"]["swap_1"] == {"proposal": 1, "object": 3}
    for key, value in official["global"].items():
        assert_close(info["global"][key], value, key)
    # again, from the ground-truth cache just built: the same tables
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    assert run_cli(out, "--task", "unsupervised", "--sequences", *official["sequences"], "--set", "val",
                   "--cache-dir", str(tmp_path / "cache")) == 0
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == before


def test_more_than_20_proposals_is_one_line_naming_the_sequence_and_nothing_is_written(official, tmp_path, capsys):
    """The toolkit calls sys.exit() mid-run; here: exit 1, one line naming the sequence and the PNG, no table."""
    assert "higher than the maximum number (20) of proposals" in official["refused"]["over20"]
    out = tmp_path / "scores"
    assert run_cli(out, "--task", "unsupervised", "--workers", "2") == 1  # all four sequences, over20 among them
    one_line_error(capsys, "pred/over20/00002.png: proposal id 21 in sequence over20", "at most 20 proposals")
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(EvaluationError, match="sequence over20"):
        evaluate(FIXTURE / "gt", FIXTURE / "pred", ["over20"], workers=1, progress=False, task="unsupervised")


def test_first_and_last_frame_need_a_proposal(tmp_path, capsys):
    """Every frame is scored: a result without its first frame is an error naming that PNG."""
    frames = [np.pad(np.ones((4, 4), np.uint8), 3)] * 3
    write_sequence(tmp_path / "gt", "seq", frames)
    write_sequence(tmp_path / "pred", "seq", frames)
    (tmp_path / "pred/seq/00000.png").unlink()
    assert run_cli(tmp_path / "out", "--task", "unsupervised", gt=tmp_path / "gt", pred=tmp_path / "pred") == 1
    one_line_error(capsys, "pred/seq/00000.png: missing prediction")
    assert not (tmp_path / "out").exists()


def test_a_proposal_of_another_size_is_named(tmp_path, capsys):
    write_sequence(tmp_path / "gt", "seq", [np.pad(np.ones((4, 4), np.uint8), 3)] * 2)
    write_sequence(tmp_path / "pred", "seq", [np.zeros((10, 11), np.uint8)] * 2)
    assert run_cli(tmp_path / "out", "--task", "unsupervised", gt=tmp_path / "gt", pred=tmp_path / "pred") == 1
    one_line_error(capsys, "pred/seq/00000.png: mask is 11x10", "predictions must have the size")


@pytest.mark.parametrize("option", [["--objects", "all"], ["--corrected"]])
def test_options_without_meaning_for_the_task_are_refused_before_scoring(tmp_path, capsys, option):
    assert run_cli(tmp_path / "out", "--task", "unsupervised", *option) == 2
    one_line_error(capsys, f"{option[0]}", "first frame only", "--exact-decay")
    assert not (tmp_path / "out").exists()


def test_exact_decay_applies(official, tmp_path):
    assert run_cli(tmp_path / "out", "--task", "unsupervised", "--exact-decay", "--sequences", "swap") == 0
    info = json.loads((tmp_path / "out/protocol-val.json").read_text())
    assert info["protocol"]["task"] == "unsupervised" and info["protocol"]["decay_uint8_quirk"] is False


def test_the_other_tasks_annotations_get_a_note(tmp_path, capsys):
    gt = tmp_path / "DAVIS" / "Annotations" / "480p"
    write_sequence(gt, "seq", [np.pad(np.ones((4, 4), np.uint8), 3)] * 3)
    write_sequence(tmp_path / "pred", "seq", [np.pad(np.ones((4, 4), np.uint8), 3)] * 3)
    assert run_cli(tmp_path / "out", "--task", "unsupervised", gt=gt, pred=tmp_path / "pred") == 0
    err = capsys.readouterr().err
    assert "looks like DAVIS's Annotations folder" in err and "Annotations_unsupervised/480p" in err


# --- the Python API ----------------------------------------------------------------------------------------------


def test_api_task_and_protocol():
    assert Protocol.unsupervised() == Protocol(task="unsupervised")
    unsupervised = Protocol(task="unsupervised")
    assert (unsupervised.ignore_void, unsupervised.skip_first_last) == (True, False)  # the toolkit's rules
    assert (Protocol().ignore_void, Protocol().skip_first_last) == (False, True)
    with pytest.raises(ValueError, match="not defined for the unsupervised task"):
        Protocol(task="unsupervised", objects="all")
    with pytest.raises(ValueError, match="task must be one of"):
        Protocol(task="interactive")
    with pytest.raises(ValueError, match="protocol's task is 'semi-supervised'"):
        evaluate(FIXTURE / "gt", FIXTURE / "pred", ["swap"], protocol=Protocol(), task="unsupervised")
    assert "unsupervised" in metrics.__doc__


# --- pair_scores against the plain definitions -------------------------------------------------------------------


def test_pair_scores_equal_the_full_frame_definitions():
    """J and F of every (proposal, object) pair equal `jaccard` and `f_measure` on the full frame (exactly), with
    void, ids above the objects, empty and edge-touching masks."""
    rng = np.random.default_rng(5)
    shape = (60, 90)
    for _ in range(12):
        gt = np.zeros(shape, np.uint8)
        pred = np.zeros(shape, np.uint8)
        for oid in range(1, 5):
            y, x = rng.integers(-5, shape[0]), rng.integers(-5, shape[1])
            gt[max(y, 0):y + rng.integers(3, 30), max(x, 0):x + rng.integers(3, 40)] = oid
        for pid in rng.choice(np.arange(1, 8), size=5, replace=False):
            y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            pred[y:y + rng.integers(2, 30), x:x + rng.integers(2, 40)] = pid
        void = np.zeros(shape, bool)
        void[rng.integers(0, 50):, rng.integers(0, 80):][:6, :9] = True
        n_objects, n_proposals = 3, 7  # gt id 4: above the objects, background
        radius = boundary_radius(shape)
        for v in (None, void):
            j, f = pair_scores(gt, pred, n_objects, n_proposals, radius, v)
            for p in range(1, n_proposals + 1):
                for o in range(1, n_objects + 1):
                    assert j[p - 1, o - 1] == jaccard(gt == o, pred == p, v), (p, o)
                    assert f[p - 1, o - 1] == f_measure(gt == o, pred == p, v), (p, o)
