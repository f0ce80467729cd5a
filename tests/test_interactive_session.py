"""The interactive session runner, the stand-in builder and the command line, end to end on a tiny stand-in
(2 sequences of 4 frames at a quarter of their size, built by the builder itself) with scribble_copy.
Needs the shared folder and the optional extra `interactive`; skips, saying which, without them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from interactive.__main__ import main

SEQUENCES = ["blackswan", "dog"]
SUMMARY_KEYS = {"dataset", "method", "settings", "max_interactions", "max_time", "per_interaction", "auc",
                "jf_at_60s", "time_threshold", "curve", "package_summary", "device", "threads"}


@pytest.fixture(scope="module")
def package():
    pytest.importorskip("davisinteractive", reason="the optional extra `interactive` (make interactive-setup)")
    from interactive.compat import load_davisinteractive

    return load_davisinteractive()


def build(shared: Path, out: Path, kind: str = "single", sequences=SEQUENCES) -> Path:
    assert main(["standin", "--quiet", "--shared", str(shared), "--kind", kind, "--sequences", ",".join(sequences),
                 "--max-frames", "4", "--scale", "0.25", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def tiny(shared, package, tmp_path_factory) -> Path:
    return build(shared, tmp_path_factory.mktemp("standin") / "root")


def session(root: Path, out: Path, *extra: str, interactions: int = 3) -> dict:
    assert main(["session", "--quiet", "--root", str(root), "--method", "scribble_copy",
                 "--max-interactions", str(interactions), "--out-dir", str(out), *extra]) == 0
    return json.loads((out / "summary.json").read_text())


def files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_two_builds_of_a_stand_in_are_byte_identical_and_labelled(shared, package, tiny, tmp_path):
    again = build(shared, tmp_path / "again")
    assert files(again) == files(tiny)
    metadata = json.loads((tiny / "standin.json").read_text())
    assert metadata["label"] == "stand-in" and metadata["scribbles"].startswith("stand-in scribbles")
    assert metadata["sequences"]["dog"]["image_size"] == [214, 120]  # 854 x 480 at a quarter
    scribble = json.loads((tiny / "Scribbles/dog/001.json").read_text())
    assert scribble["label"] == "stand-in scribbles" and sum(map(len, scribble["scribbles"])) >= 1
    multi = build(shared, tmp_path / "multi", "multi", ["bmx-trees"])
    assert files(build(shared, tmp_path / "multi-again", "multi", ["bmx-trees"])) == files(multi)
    assert json.loads((multi / "standin.json").read_text())["sequences"]["bmx-trees"]["num_objects"] == 2


def test_two_sessions_give_identical_results_and_the_summary_equals_the_packages(tiny, tmp_path):
    first, second = session(tiny, tmp_path / "a"), session(tiny, tmp_path / "b")
    assert set(first) == SUMMARY_KEYS
    assert first["per_interaction"] == second["per_interaction"]  # exactly: the robot is pinned
    reports = [pd.read_csv(tmp_path / name / "report.csv") for name in "ab"]
    for column in ("sequence", "scribble_idx", "interaction", "object_id", "frame", "jaccard", "contour"):
        assert reports[0][column].tolist() == reports[1][column].tolist()
    assert len(reports[0]) == 2 * 3 * 4  # sequences x interactions x frames (one object each)
    assert first["dataset"] == {"root": str(tiny), "standin": True, "label": "stand-in (single)",
                                "sequences": SEQUENCES, "scribbles": None}
    assert [row["interaction"] for row in first["per_interaction"]] == [1, 2, 3]
    theirs = first["package_summary"]
    assert first["auc"] == pytest.approx(theirs["auc"], abs=1e-12, rel=0)
    assert first["jf_at_60s"] == pytest.approx(theirs["metric_at_threshold"]["J_AND_F"], abs=1e-12, rel=0)
    assert first["curve"]["J&F"] == pytest.approx(theirs["curve"]["J_AND_F"], abs=1e-12, rel=0)
    assert first["curve"]["time"] == pytest.approx(theirs["curve"]["time"], abs=1e-12, rel=0)
    timing = json.loads((tmp_path / "a/timing.json").read_text())
    assert timing["device"] == "cpu" and len(timing["interactions"]) == 6
    assert all(entry["seconds"] > 0 and entry["scribbled_frames"] for entry in timing["interactions"])
    assert sorted(path.name for path in (tmp_path / "a").iterdir()) == ["report.csv", "summary.json", "timing.json"]


def test_chunks_by_sequence_summarised_together_equal_the_whole_run(tiny, tmp_path):
    whole = session(tiny, tmp_path / "whole", "--scribbles", "1", interactions=2)
    chunks = [session(tiny, tmp_path / f"chunk{part}", "--chunk", f"{part}/2", "--scribbles", "1", interactions=2)
              for part in (1, 2)]
    assert [chunk["dataset"]["sequences"] for chunk in chunks] == [[name] for name in SEQUENCES]  # every 2nd
    assert main(["summarize", "--quiet", "--reports", *(str(tmp_path / f"chunk{part}" / "report.csv")
                                                         for part in (1, 2)),
                 "--root", str(tiny), "--out", str(tmp_path / "merged.json")]) == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["dataset"]["sequences"] == SEQUENCES and merged["max_interactions"] == 2
    for ours, theirs in zip(merged["per_interaction"], whole["per_interaction"], strict=True):
        assert ours == pytest.approx(theirs, abs=1e-12)
    assert merged["auc"] == pytest.approx(merged["package_summary"]["auc"], abs=1e-12, rel=0)
    assert merged["jf_at_60s"] == pytest.approx(merged["package_summary"]["metric_at_threshold"]["J_AND_F"],
                                                abs=1e-12, rel=0)


@pytest.mark.parametrize("missing", ["Scribbles/dog/001.json", "Annotations/480p/blackswan/00002.png",
                                     "JPEGImages/480p/dog/00003.jpg"])
def test_a_missing_file_is_one_line_naming_it_and_nothing_is_written(tiny, tmp_path, capsys, missing):
    root = tmp_path / "root"
    shutil.copytree(tiny, root)
    (root / missing).unlink()
    capsys.readouterr()
    assert main(["session", "--quiet", "--root", str(root), "--method", "scribble_copy", "--max-interactions", "2",
                 "--out-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(root / missing) in error and "rebuild the stand-in" in error
    assert not (tmp_path / "out").exists()
    assert sorted(files(root)) == sorted(name for name in files(tiny) if name != missing)  # nothing downloaded


@pytest.mark.parametrize(("argv", "message"), [
    (["--method", "toy"], "unknown interactive method 'toy'"),
    (["--method", "scribble_copy", "--settings", '{"radius": 2}'], "unknown scribble_copy setting"),
    (["--method", "scribble_copy", "--sequences", "bear"], "no sequence ['bear']"),
    (["--method", "scribble_copy", "--scribbles", "2"], "choose scribbles 1..k"),
    (["--method", "scribble_copy", "--chunk", "3/2"], "--chunk 3/2: give K/N with 1 <= K <= N"),
    (["--method", "scribble_copy", "--chunk", "3/3"], "--chunk 3/3: only 2 sequence(s) to share"),
])
def test_bad_arguments_are_one_line(tiny, tmp_path, capsys, argv, message):
    capsys.readouterr()
    assert main(["session", "--quiet", "--root", str(tiny), "--max-interactions", "2",
                 "--out-dir", str(tmp_path / "out"), *argv]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not (tmp_path / "out").exists()


def test_samples_past_their_time_are_reconstructed_as_the_package_does(tiny, tmp_path):
    """--max-time 1 microsecond an object: every submission comes too late and is not scored; the summary (the
    package's and ours) counts every interaction as unscored: J&F 0 at no time."""
    summary = session(tiny, tmp_path / "late", "--max-time", "0.000001", interactions=2)
    assert [row["J&F"] for row in summary["per_interaction"]] == [0.0, 0.0]
    assert summary["curve"] == {"time": [0.0, 0.0, 0.0, 0.000001], "J&F": [0.0, 0.0, 0.0, 0.0]}
    assert summary["package_summary"]["curve"]["J_AND_F"] == summary["curve"]["J&F"]
    timing = json.loads((tmp_path / "late/timing.json").read_text())
    assert [entry["seconds"] for entry in timing["interactions"]] == [None, None]  # one a sample, not scored


def test_scribble_labels_are_the_packages_label_maps_of_the_scribbled_frames(package):
    from interactive.session import scribble_labels

    lines = [{"path": [[0.1, 0.1], [0.8, 0.5]], "object_id": 2}, {"path": [[0.5, 0.9], [0.9, 0.9]], "object_id": 0}]
    scribble = {"sequence": "s", "scribbles": [[], lines[:1], [], lines]}
    labels = scribble_labels(package, scribble, (30, 40))
    whole = package.scribbles2mask(scribble, (30, 40))
    assert list(labels) == [1, 3] and all((labels[frame] == whole[frame]).all() for frame in labels)
    assert set(labels[3].ravel()) == {-1, 0, 2}


def test_masks_that_are_not_object_ids_at_the_frames_size_are_refused_naming_the_method():
    from types import SimpleNamespace

    import numpy as np

    from interactive.session import _check_masks

    sequence = SimpleNamespace(name="blackswan", frames=("a.jpg", "b.jpg"), size=(3, 4))
    ids = np.zeros((2, 3, 4), np.uint8)
    assert _check_masks(ids, sequence, "m") is not None
    with pytest.raises(ValueError, match=r"m: interact\(\) returned masks of shape \(2, 3, 4\) \(float32\) for blackswan"):
        _check_masks(ids.astype(np.float32), sequence, "m")  # probabilities, not ids
    with pytest.raises(ValueError, match=r"shape \(1, 3, 4\)"):
        _check_masks(ids[:1], sequence, "m")  # one frame short
