"""interactive.summary against the package's own EvaluationService.summarize_report (to 1e-12) on synthetic
reports: complete, with timed-out samples (reconstructed), with and without a time limit, and merged from
chunks. The package is an optional extra: the comparisons skip without it, the rest runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interactive.dataset import InteractiveDataError, InteractiveDataset
from interactive.summary import package_summary, read_reports, summarize

# Three sequences with different numbers of objects, frames and scribbles.
ENTRIES = {
    "aa": {"num_objects": 1, "num_frames": 3, "num_scribbles": 2},
    "bb": {"num_objects": 3, "num_frames": 2, "num_scribbles": 1},
    "cc": {"num_objects": 2, "num_frames": 4, "num_scribbles": 3},
}
ENTRIES = {name: {"name": name, "set": "val", "image_size": [8, 6], **entry} for name, entry in ENTRIES.items()}
COLUMNS = ["session_id", "sequence", "scribble_idx", "interaction", "object_id", "frame", "jaccard", "contour",
           "j_and_f", "timing"]


def synthetic_report(seed: int, max_interactions: int, reached: dict | None = None) -> pd.DataFrame:
    """A report as a session writes it, random figures; `reached[(sequence, scribble)]`: the interactions a
    sample got through before its time ran out (default: all)."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, entry in ENTRIES.items():
        for scribble in range(1, entry["num_scribbles"] + 1):
            for interaction in range(1, (reached or {}).get((name, scribble), max_interactions) + 1):
                timing = float(rng.uniform(0.5, 20.0))
                for obj in range(1, entry["num_objects"] + 1):
                    for frame in range(entry["num_frames"]):
                        jaccard, contour = rng.uniform(0, 1, 2)
                        rows.append(("s", name, scribble, interaction, obj, frame, jaccard, contour,
                                     0.5 * jaccard + 0.5 * contour, timing))
    return pd.DataFrame(rows, columns=COLUMNS)


def dataset(root) -> InteractiveDataset:
    """The synthetic dataset, with the (empty) files the package's service checks for."""
    for name, entry in ENTRIES.items():
        for index in range(entry["num_frames"]):
            path = root / f"Annotations/480p/{name}/{index:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        for index in range(1, entry["num_scribbles"] + 1):
            path = root / f"Scribbles/{name}/{index:03d}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    return InteractiveDataset(root, ENTRIES, True, "synthetic")


@pytest.fixture(scope="module")
def package():
    pytest.importorskip("davisinteractive", reason="the optional extra `interactive` (make interactive-setup)")
    from interactive.compat import load_davisinteractive

    return load_davisinteractive()


def flat(table: list[dict]) -> list[float]:
    return [row[key] for row in table for key in ("interaction", "J", "F", "J&F")]


def assert_equal_to_the_package(ours: dict, theirs: dict) -> None:
    assert ours["auc"] == pytest.approx(theirs["auc"], abs=1e-12, rel=0)
    assert ours["jf_at_60s"] == pytest.approx(theirs["metric_at_threshold"]["J_AND_F"], abs=1e-12, rel=0)
    assert ours["curve"]["time"] == pytest.approx(theirs["curve"]["time"], abs=1e-12, rel=0)
    assert ours["curve"]["J&F"] == pytest.approx(theirs["curve"]["J_AND_F"], abs=1e-12, rel=0)
    table = [row["J&F"] for row in ours["per_interaction"]]
    assert table == pytest.approx(theirs["curve"]["J_AND_F"][1:-1], abs=1e-12, rel=0)


TIMED_OUT = {("aa", 2): 1, ("bb", 1): 3, ("cc", 3): 0}  # cc scribble 3: not even its first interaction


@pytest.mark.parametrize("max_time", [None, 30.0], ids=["no-time-limit", "time-limit"])
@pytest.mark.parametrize("reached", [None, TIMED_OUT], ids=["complete", "timed-out"])
def test_the_summary_equals_the_packages(package, tmp_path, max_time, reached):
    report = synthetic_report(1, 5, reached)
    ours = summarize(report, ENTRIES, 5, max_time)
    assert_equal_to_the_package(ours, package_summary(report, dataset(tmp_path), 5, max_time))
    assert len(ours["per_interaction"]) == 5 and ours["max_time"] == max_time


def test_the_per_interaction_table_is_the_mean_over_objects_of_the_frame_means():
    """Without timeouts: J, F and J&F of interaction i are the mean over (sequence, scribble, object) of the
    mean over frames; the curve's end point without a time limit is 5 x the longest timing."""
    report = synthetic_report(2, 5)
    ours = summarize(report, ENTRIES, 5, None)
    per_object = report.groupby(["interaction", "sequence", "scribble_idx", "object_id"]).mean(numeric_only=True)
    for row in ours["per_interaction"]:
        expected = per_object.loc[row["interaction"]]
        assert row["J"] == pytest.approx(expected["jaccard"].mean(), abs=1e-12)
        assert row["F"] == pytest.approx(expected["contour"].mean(), abs=1e-12)
        assert row["J&F"] == pytest.approx(expected["j_and_f"].mean(), abs=1e-12)
    assert ours["curve"]["time"][-1] == 5 * report["timing"].max()
    assert ours["curve"]["J&F"][0] == 0.0 and ours["curve"]["J&F"][-1] == ours["per_interaction"][-1]["J&F"]


def test_a_timed_out_sample_keeps_its_last_result_at_no_cost():
    report = synthetic_report(3, 4, TIMED_OUT)
    with_timeouts = summarize(report, ENTRIES, 4, 30.0)
    padded = [report]
    for (name, scribble), reached in TIMED_OUT.items():
        sample = report[(report["sequence"] == name) & (report["scribble_idx"] == scribble)]
        last = sample[sample["interaction"] == reached]
        if reached == 0:  # nothing measured: zeros
            objects = range(1, ENTRIES[name]["num_objects"] + 1)
            last = pd.DataFrame([("s", name, scribble, 0, obj, 0, 0.0, 0.0, 0.0, 0.0) for obj in objects],
                                columns=COLUMNS)
        for interaction in range(reached + 1, 5):
            padded.append(last.assign(interaction=interaction, timing=0.0))
    complete = summarize(pd.concat(padded, ignore_index=True), ENTRIES, 4, 30.0)
    assert flat(with_timeouts["per_interaction"]) == pytest.approx(flat(complete["per_interaction"]), abs=1e-12)
    for key in ("time", "J&F"):
        assert with_timeouts["curve"][key] == pytest.approx(complete["curve"][key], abs=1e-12)


def test_chunks_split_by_sequences_merge_into_the_whole_runs_summary(package, tmp_path):
    report = synthetic_report(4, 3, TIMED_OUT)
    chunks = []
    for index, names in enumerate([["aa", "cc"], ["bb"]]):
        path = tmp_path / f"chunk{index}" / "report.csv"
        path.parent.mkdir()
        report[report["sequence"].isin(names)].assign(session_id=f"chunk{index}").to_csv(path, index=False)
        chunks.append(path)
    merged = read_reports(chunks)
    assert len(merged) == len(report)
    whole = summarize(report, ENTRIES, 3, None)
    ours = summarize(merged, ENTRIES, 3, None)
    assert flat(ours["per_interaction"]) == pytest.approx(flat(whole["per_interaction"]), abs=1e-12)
    assert ours["auc"] == pytest.approx(whole["auc"], abs=1e-12)
    assert_equal_to_the_package(ours, package_summary(report, dataset(tmp_path / "root"), 3, None))


def test_a_row_in_two_chunks_is_refused(tmp_path):
    report = synthetic_report(5, 2)
    for name in ("a.csv", "b.csv"):
        report[report["sequence"] == "bb"].to_csv(tmp_path / name, index=False)
    with pytest.raises(InteractiveDataError, match="bb scribble 1 interaction 1 appears in more than one report"):
        read_reports([tmp_path / "a.csv", tmp_path / "b.csv"])
    with pytest.raises(InteractiveDataError, match="missing.csv: report not found"):
        read_reports([tmp_path / "missing.csv"])
