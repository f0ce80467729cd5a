"""Local YouTube-VOS scoring (metrics.youtube_vos) and the YouTube-VOS reader / submission writer."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from metrics.davis import EvaluationError
from metrics.measures import f_measure
from metrics.youtube_vos import (
    NO_SPLIT_NOTE,
    YouTubeVOSResult,
    evaluate_youtube_vos,
    write_youtube_vos_tables,
)
from vos_datasets.masks import read_label_png, write_label_png
from vos_datasets.sequence import DatasetError
from vos_datasets.youtube_vos import YouTubeVOSDataset, write_submission_zip

HEIGHT, WIDTH = 64, 96
ANNOTATED = ["00000", "00005", "00010", "00015", "00020"]

# video -> object id -> (category, first annotated frame index, top-left corner at frame 0, size)
VIDEOS = {
    "vid_a": {1: ("cat", 0, (5, 5), (12, 16)), 2: ("dog", 2, (35, 50), (14, 10))},  # object 2 enters at 00010
    "vid_b": {1: ("dog", 0, (20, 10), (16, 16))},
    "vid_c": {1: ("cat", 0, (10, 30), (10, 10))},
}


def box(video: str, oid: int, index: int) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of an object in annotated frame `index`: it moves 2 px right per annotation."""
    _, _, (y, x), (h, w) = VIDEOS[video][oid]
    return y, x + 2 * index, y + h, x + 2 * index + w


def gt_frame(video: str, index: int) -> np.ndarray:
    ids = np.zeros((HEIGHT, WIDTH), np.uint8)
    for oid, (_, first, _, _) in VIDEOS[video].items():
        if index >= first:
            y0, x0, y1, x1 = box(video, oid, index)
            ids[y0:y1, x0:x1] = oid
    return ids


def meta_dict() -> dict:
    return {"videos": {
        video: {"objects": {str(oid): {"category": cat, "frames": ANNOTATED[first:]}
                            for oid, (cat, first, _, _) in objects.items()}}
        for video, objects in VIDEOS.items()
    }}


@pytest.fixture()
def ytvos(tmp_path: Path) -> tuple[Path, Path]:
    """(annotations root, meta.json path) of the synthetic train split."""
    gt_root = tmp_path / "train" / "Annotations"
    for video in VIDEOS:
        for index, frame in enumerate(ANNOTATED):
            write_label_png(gt_root / video / f"{frame}.png", gt_frame(video, index))
    meta_path = tmp_path / "train" / "meta.json"
    meta_path.write_text(json.dumps(meta_dict()))
    return gt_root, meta_path


def write_prediction(root: Path, edit=None) -> Path:
    """Perfect prediction in `root`, each frame passed through edit(video, index, ids) when given."""
    for video in VIDEOS:
        for index, frame in enumerate(ANNOTATED):
            ids = gt_frame(video, index)
            if edit is not None:
                ids = edit(video, index, ids)
            if ids is not None:
                write_label_png(root / video / f"{frame}.png", ids)
    return root


def by_object(result: YouTubeVOSResult) -> dict[tuple[str, int], tuple[float, float, int]]:
    return {(o.video, o.object_id): (o.j_mean, o.f_mean, o.n_frames) for o in result.objects}


def test_perfect_prediction_scores_one(ytvos, tmp_path):
    gt_root, meta_path = ytvos
    pred = write_prediction(tmp_path / "pred")
    result = evaluate_youtube_vos(gt_root, pred, meta_path, workers=2, progress=False)
    scores = by_object(result)
    assert set(scores) == {("vid_a", 1), ("vid_a", 2), ("vid_b", 1), ("vid_c", 1)}
    for j, f, _ in scores.values():
        assert j == 1.0 and f == 1.0
    # Scored by default (the authors' protocol): the annotated frames strictly after the object's first one,
    # the video's last annotated frame excluded.
    assert scores[("vid_a", 1)][2] == 3 and scores[("vid_a", 2)][2] == 1
    frames = {(o.video, o.object_id): o.frames for o in result.objects}
    assert frames[("vid_a", 1)] == ("00005", "00010", "00015") and frames[("vid_a", 2)] == ("00015",)
    assert result.frames == "authors" and result.global_row()["frames"] == "authors"
    every = evaluate_youtube_vos(gt_root, pred, meta_path, workers=1, progress=False, frames="all-after-first")
    frames = {(o.video, o.object_id): o.frames for o in every.objects}
    assert frames[("vid_a", 1)] == ("00005", "00010", "00015", "00020") and frames[("vid_a", 2)] == ("00015", "00020")
    assert result.J == result.F == result.G == 1.0
    assert not result.has_split and result.J_seen is None and result.F_unseen is None
    assert result.note == NO_SPLIT_NOTE and "no seen/unseen split" in result.summary()


def test_first_frame_of_each_object_is_not_scored(ytvos, tmp_path):
    gt_root, meta_path = ytvos

    def wrong_at_first(video, index, ids):
        if index == 0:
            return None  # nobody is scored on 00000: the file is not even needed
        if video == "vid_a" and index == 2:  # object 2's first frame: drawn elsewhere, object 1 dropped
            ids = np.zeros_like(ids)
            ids[0:8, 0:8] = 2
        return ids

    pred = write_prediction(tmp_path / "pred", wrong_at_first)
    result = evaluate_youtube_vos(gt_root, pred, meta_dict(), workers=1, progress=False)
    scores = by_object(result)
    assert scores[("vid_a", 2)][:2] == (1.0, 1.0)
    # Object 1 of vid_a is scored on 00010 (after its own first frame), where it was dropped: one of its
    # three scored frames (00005, 00010, 00015; the last, 00020, is not scored by default).
    assert scores[("vid_a", 1)][0] == pytest.approx(2 / 3)
    for key in [("vid_b", 1), ("vid_c", 1)]:
        assert scores[key][:2] == (1.0, 1.0)


def test_last_frame_is_scored_only_by_the_named_option(ytvos, tmp_path):
    gt_root, meta_path = ytvos

    def drop_last(video, index, ids):
        return np.zeros_like(ids) if (video, index) == ("vid_b", 4) else ids

    pred = write_prediction(tmp_path / "pred", drop_last)
    every = evaluate_youtube_vos(gt_root, pred, meta_path, workers=1, progress=False, frames="all-after-first")
    assert by_object(every)[("vid_b", 1)][:2] == (pytest.approx(3 / 4), pytest.approx(3 / 4))
    authors = evaluate_youtube_vos(gt_root, pred, meta_path, workers=1, progress=False)
    assert by_object(authors)[("vid_b", 1)][:2] == (1.0, 1.0)
    # The authors' protocol does not even need the last frame's prediction; the named option does.
    for video in VIDEOS:
        (pred / video / f"{ANNOTATED[-1]}.png").unlink()
    assert evaluate_youtube_vos(gt_root, pred, meta_path, workers=1, progress=False).J == 1.0
    with pytest.raises(EvaluationError, match="00020.png: missing prediction"):
        evaluate_youtube_vos(gt_root, pred, meta_path, workers=1, progress=False, frames="all-after-first")


def test_the_last_frame_decides_which_result_wins(ytvos, tmp_path):
    """Two results of one video: one loses its object on the last annotated frame, the other half of it on a
    middle frame. The authors' protocol (frtm-vos lib/davis.py, pytracking evaluate_vos.py: the last
    annotated frame is not scored) ranks the first higher, scoring every frame ranks the second higher."""
    gt_root, meta_path = ytvos

    def lose_last(video, index, ids):
        return np.zeros_like(ids) if index == len(ANNOTATED) - 1 else ids

    def halve_middle(video, index, ids):
        if index == 2:
            y0, _, y1, _ = box(video, 1, index)
            ids = ids.copy()
            ids[(y0 + y1) // 2:y1][ids[(y0 + y1) // 2:y1] == 1] = 0  # object 1's lower half: J = 1/2
        return ids

    first = write_prediction(tmp_path / "lose_last", lose_last)
    second = write_prediction(tmp_path / "halve_middle", halve_middle)

    def j(pred, frames):
        result = evaluate_youtube_vos(gt_root, pred, meta_path, videos=["vid_b"], workers=1, progress=False,
                                      frames=frames)
        return result.J

    assert j(first, "authors") == 1.0 and j(second, "authors") == pytest.approx((1 + 0.5 + 1) / 3)
    assert j(first, "all-after-first") == pytest.approx(3 / 4)
    assert j(second, "all-after-first") == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    assert j(first, "authors") > j(second, "authors") and j(first, "all-after-first") < j(second, "all-after-first")


def test_an_object_entering_on_the_second_last_frame_is_unscored_by_the_authors_protocol(ytvos, tmp_path):
    gt_root, _ = ytvos
    meta = meta_dict()
    meta["videos"]["vid_a"]["objects"]["2"]["frames"] = ANNOTATED[3:]  # object 2 given on 00015
    pred = write_prediction(tmp_path / "pred")
    authors = evaluate_youtube_vos(gt_root, pred, meta, workers=1, progress=False)
    assert ("vid_a", 2) in authors.unscored and ("vid_a", 2) not in by_object(authors)
    every = evaluate_youtube_vos(gt_root, pred, meta, workers=1, progress=False, frames="all-after-first")
    assert by_object(every)[("vid_a", 2)][2] == 1 and not every.unscored


def test_unknown_frame_rule_is_refused(ytvos, tmp_path):
    gt_root, meta_path = ytvos
    with pytest.raises(ValueError, match="frames='last'"):
        evaluate_youtube_vos(gt_root, write_prediction(tmp_path / "pred"), meta_path, workers=1, progress=False,
                             frames="last")


def test_missing_object_scores_zero(ytvos, tmp_path):
    gt_root, meta_path = ytvos

    def drop_object_2(video, index, ids):
        return np.where(ids == 2, 0, ids).astype(np.uint8) if video == "vid_a" else ids

    result = evaluate_youtube_vos(gt_root, write_prediction(tmp_path / "pred", drop_object_2), meta_path,
                                  workers=1, progress=False)
    scores = by_object(result)
    assert scores[("vid_a", 2)] == (0.0, 0.0, 1)
    assert scores[("vid_a", 1)][:2] == (1.0, 1.0)
    row = result.global_row()
    assert row["J"] == pytest.approx(3 / 4) and row["F"] == pytest.approx(3 / 4)


def test_g_with_unseen_category_is_mean_of_four(ytvos, tmp_path):
    gt_root, meta_path = ytvos

    def edit(video, index, ids):
        if video == "vid_a":  # object 2 (dog, unseen) missing: J = F = 0
            return np.where(ids == 2, 0, ids).astype(np.uint8)
        if video == "vid_c":  # object 1 (cat, seen) twice as wide as the truth: J = 1/2
            y0, x0, y1, x1 = box("vid_c", 1, index)
            out = ids.copy()
            out[y0:y1, x0:x1 + (x1 - x0)] = 1
            return out
        return ids

    pred = write_prediction(tmp_path / "pred", edit)
    f_c = np.mean([f_measure(gt_frame("vid_c", i) == 1, read_label_png(pred / "vid_c" / f"{ANNOTATED[i]}.png") == 1)
                   for i in range(1, 4)])  # the scored frames: after the first, before the last
    assert 0 < f_c < 1
    result = evaluate_youtube_vos(gt_root, pred, meta_path, unseen_categories={"dog"}, workers=2, progress=False)
    # seen (cat): vid_a/1 = (1, 1), vid_c/1 = (1/2, f_c); unseen (dog): vid_a/2 = (0, 0), vid_b/1 = (1, 1)
    j_seen, f_seen = (1 + 0.5) / 2, (1 + f_c) / 2
    j_unseen, f_unseen = (0 + 1) / 2, (0 + 1) / 2
    assert result.has_split
    assert result.J_seen == pytest.approx(j_seen) and result.F_seen == pytest.approx(f_seen)
    assert result.J_unseen == pytest.approx(j_unseen) and result.F_unseen == pytest.approx(f_unseen)
    hand_g = (j_seen + j_unseen + f_seen + f_unseen) / 4
    row = result.global_row()
    assert row["G"] == pytest.approx(hand_g)
    assert row["J"] == pytest.approx((1 + 0.5 + 0 + 1) / 4) and row["F"] == pytest.approx((1 + f_c + 0 + 1) / 4)

    no_split = evaluate_youtube_vos(gt_root, pred, meta_path, workers=1, progress=False)
    assert not no_split.has_split and no_split.J_seen is None
    plain = no_split.global_row()
    assert (plain["J"], plain["F"]) == (row["J"], row["F"])
    assert plain["G"] == pytest.approx((row["J"] + row["F"]) / 2) and plain["J_seen"] is None

    paths = write_youtube_vos_tables(result, tmp_path / "tables")
    objects = pd.read_csv(paths["per_object"])
    assert list(objects.columns) == ["video", "object", "category", "seen_unseen", "J", "F", "n_frames"]
    assert len(objects) == 4
    row = objects[(objects.video == "vid_a") & (objects.object == 2)].iloc[0]
    assert (row.category, row.seen_unseen, row.J, row.n_frames) == ("dog", "unseen", 0.0, 1)
    glob = pd.read_csv(paths["global"])
    assert len(glob) == 1 and glob.G[0] == pytest.approx(result.G) and glob.split[0] == "seen/unseen"
    no_split_glob = pd.read_csv(write_youtube_vos_tables(no_split, tmp_path / "t2")["global"])
    assert no_split_glob.split[0] == "none" and "no seen/unseen split" in no_split_glob.G_definition[0]
    assert not [p for p in (tmp_path / "tables").iterdir() if p.name.endswith(".tmp")]


def test_split_with_no_unseen_object_is_an_error(ytvos, tmp_path):
    gt_root, meta_path = ytvos
    with pytest.raises(EvaluationError, match="no scored object is unseen"):
        evaluate_youtube_vos(gt_root, write_prediction(tmp_path / "pred"), meta_path,
                             unseen_categories={"horse"}, workers=1, progress=False)


def test_missing_prediction_file_is_named(ytvos, tmp_path):
    gt_root, meta_path = ytvos
    pred = write_prediction(tmp_path / "pred")
    missing = pred / "vid_b" / "00010.png"
    missing.unlink()
    with pytest.raises(EvaluationError, match="missing prediction") as info:
        evaluate_youtube_vos(gt_root, pred, meta_path, workers=1, progress=False)
    assert str(missing) in str(info.value)


def test_wrong_size_is_named(ytvos, tmp_path):
    gt_root, meta_path = ytvos
    pred = write_prediction(tmp_path / "pred")
    wrong = pred / "vid_c" / "00015.png"
    write_label_png(wrong, np.zeros((HEIGHT, WIDTH - 1), np.uint8))
    with pytest.raises(EvaluationError, match="95x64") as info:
        evaluate_youtube_vos(gt_root, pred, meta_path, workers=2, progress=False)
    assert str(wrong) in str(info.value)


def test_unknown_id_is_named(ytvos, tmp_path):
    gt_root, meta_path = ytvos
    pred = write_prediction(tmp_path / "pred")
    bad = pred / "vid_b" / "00015.png"
    ids = gt_frame("vid_b", 3)
    ids[0:4, 0:4] = 7
    write_label_png(bad, ids)
    with pytest.raises(EvaluationError, match=r"\[7\]") as info:
        evaluate_youtube_vos(gt_root, pred, meta_path, workers=1, progress=False)
    assert str(bad) in str(info.value)


def test_video_subset_and_unknown_video(ytvos, tmp_path):
    gt_root, meta_path = ytvos
    pred = write_prediction(tmp_path / "pred")
    result = evaluate_youtube_vos(gt_root, pred, meta_path, videos=["vid_b"], workers=1, progress=False)
    assert [(o.video, o.object_id) for o in result.objects] == [("vid_b", 1)]
    with pytest.raises(EvaluationError, match="vid_z"):
        evaluate_youtube_vos(gt_root, pred, meta_path, videos=["vid_z"], workers=1, progress=False)


# --- vos_datasets.youtube_vos ---------------------------------------------------------------------------

ALL_FRAMES = [f"{i:05d}" for i in range(21)]


def write_jpg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(path)


@pytest.fixture()
def ytvos_valid(tmp_path: Path) -> Path:
    """A valid split: every 5th frame in valid/, all frames in valid_all_frames/, first-frame masks."""
    root = tmp_path / "ytvos"
    (root / "valid").mkdir(parents=True)
    (root / "valid" / "meta.json").write_text(json.dumps(meta_dict()))
    for video, objects in VIDEOS.items():
        for frame in ANNOTATED:
            write_jpg(root / "valid" / "JPEGImages" / video / f"{frame}.jpg")
        for frame in ALL_FRAMES:
            write_jpg(root / "valid_all_frames" / "JPEGImages" / video / f"{frame}.jpg")
        for index in sorted({first for _, first, _, _ in objects.values()}):
            ids = gt_frame(video, index)
            given = [oid for oid, (_, first, _, _) in objects.items() if first == index]
            write_label_png(root / "valid" / "Annotations" / video / f"{ANNOTATED[index]}.png",
                            np.where(np.isin(ids, given), ids, 0).astype(np.uint8))
    return root


def test_dataset_reads_meta_and_first_frames(ytvos_valid):
    dataset = YouTubeVOSDataset(ytvos_valid, split="valid")
    assert dataset.video_names == ["vid_a", "vid_b", "vid_c"] and len(dataset) == 3
    objects = dataset.objects("vid_a")
    assert set(objects) == {1, 2}
    assert (objects[1].category, objects[1].first_frame) == ("cat", "00000")
    assert (objects[2].category, objects[2].first_frame) == ("dog", "00010")
    assert objects[2].frames == ("00010", "00015", "00020")
    assert dataset.scored_frames("vid_a") == tuple(ANNOTATED)
    sequence = dataset.sequence("vid_a")
    assert sequence.frames == tuple(ALL_FRAMES)  # runs on valid_all_frames
    assert sequence.first_frames == {1: "00000", 2: "00010"}
    assert sequence.mask_dir == ytvos_valid / "valid" / "Annotations" / "vid_a"
    assert YouTubeVOSDataset(ytvos_valid, split="valid", all_frames=False).sequence("vid_a").frames == tuple(ANNOTATED)
    assert YouTubeVOSDataset(ytvos_valid, split="valid", videos=["vid_c"]).video_names == ["vid_c"]
    with pytest.raises(DatasetError, match="meta.json"):
        YouTubeVOSDataset(ytvos_valid, split="train")


def test_submission_zip_holds_exactly_the_scored_frames(ytvos_valid, tmp_path):
    dataset = YouTubeVOSDataset(ytvos_valid, split="valid")
    pred = tmp_path / "pred"
    for video in VIDEOS:
        for frame in ALL_FRAMES:  # predictions on every frame; only every 5th goes into the zip
            write_label_png(pred / video / f"{frame}.png", np.zeros((HEIGHT, WIDTH), np.uint8))
    out = tmp_path / "submission" / "results.zip"
    assert write_submission_zip(dataset, pred, out) == 3 * len(ANNOTATED)
    with zipfile.ZipFile(out) as archive:
        names = sorted(archive.namelist())
    assert names == sorted(f"Annotations/{v}/{f}.png" for v in VIDEOS for f in ANNOTATED)

    missing = pred / "vid_b" / "00015.png"
    missing.unlink()
    out2 = tmp_path / "submission2" / "results.zip"
    with pytest.raises(DatasetError, match="missing prediction") as info:
        write_submission_zip(dataset, pred, out2)
    assert str(missing) in str(info.value)
    assert not out2.exists()
    assert not out2.parent.exists() or not list(out2.parent.iterdir())


def test_scoring_cli_writes_the_tables_the_workflow_reads(ytvos, tmp_path):
    from metrics.youtube_vos import main as score_main

    gt_root, _ = ytvos
    pred = write_prediction(tmp_path / "pred")
    out = tmp_path / "scores"
    root = gt_root.parent.parent
    assert score_main([str(root), "train", str(pred), "--out", str(out), "--set", "jj", "--videos", "vid_a", "vid_c",
                       "--workers", "1", "--quiet"]) == 0
    table = pd.read_csv(out / "global_results-jj.csv")
    assert table.loc[0, "J"] == 1.0 and table.loc[0, "n_objects"] == 3  # vid_a's two objects and vid_c's
    assert table.loc[0, "frames"] == "authors"
    assert (out / "per-object_results-jj.csv").is_file()
    assert score_main([str(root), "train", str(pred), "--out", str(tmp_path / "every"), "--set", "jj", "--videos",
                       "vid_a", "--frames", "all-after-first", "--workers", "1", "--quiet"]) == 0
    every = pd.read_csv(tmp_path / "every" / "global_results-jj.csv")
    per_object = pd.read_csv(tmp_path / "every" / "per-object_results-jj.csv")
    assert every.loc[0, "frames"] == "all-after-first" and list(per_object["n_frames"]) == [4, 2]
    (pred / "vid_a" / f"{ANNOTATED[2]}.png").unlink()
    assert score_main([str(root), "train", str(pred), "--out", str(tmp_path / "s2"), "--quiet"]) == 1


def test_submission_cli_names_what_to_do_next(ytvos_valid, tmp_path, capsys):
    from vos_datasets.youtube_vos import main as submit_main

    pred = tmp_path / "pred"
    for video in VIDEOS:
        for frame in ANNOTATED:
            write_label_png(pred / video / f"{frame}.png", np.zeros((HEIGHT, WIDTH), np.uint8))
    out = tmp_path / "submission.zip"
    assert submit_main(["submit", str(ytvos_valid), "valid", str(pred), str(out)]) == 0
    assert "server results file" in capsys.readouterr().out and zipfile.is_zipfile(out)
    (pred / "vid_a" / f"{ANNOTATED[0]}.png").unlink()
    assert submit_main(["submit", str(ytvos_valid), "valid", str(pred), str(tmp_path / "other.zip")]) == 1
    assert "missing prediction" in capsys.readouterr().err


def zero_predictions(root: Path) -> Path:
    for video in VIDEOS:
        for frame in ANNOTATED:
            write_label_png(root / video / f"{frame}.png", np.zeros((HEIGHT, WIDTH), np.uint8))
    return root


BAD_PREDICTIONS = {
    "rgb": (lambda path: Image.new("RGB", (WIDTH, HEIGHT), (128, 0, 0)).save(path), "RGB image, not an indexed mask"),
    "wrong-size": (lambda path: write_label_png(path, np.zeros((HEIGHT // 2, WIDTH), np.uint8)),
                   f"mask is {WIDTH}x{HEIGHT // 2} but its frame .*00010.jpg is {WIDTH}x{HEIGHT}"),
    "text": (lambda path: path.write_text("not a mask\n"), "not a readable PNG"),
    "unknown-id": (lambda path: write_label_png(path, np.full((HEIGHT, WIDTH), 7, np.uint8)),
                   r"object ids \[7\] are not in the meta.json objects of vid_b \(\[1\]\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_PREDICTIONS))
def test_submission_zip_checks_each_mask_as_the_evaluator_does(ytvos_valid, tmp_path, case):
    write, reason = BAD_PREDICTIONS[case]
    pred = zero_predictions(tmp_path / "pred")
    bad = pred / "vid_b" / f"{ANNOTATED[2]}.png"
    write(bad)
    out = tmp_path / "submission" / "results.zip"

    with pytest.raises(DatasetError, match=f"^{bad}: .*{reason}") as info:
        write_submission_zip(YouTubeVOSDataset(ytvos_valid, split="valid"), pred, out)

    assert "\n" not in str(info.value)
    assert not out.exists()


def test_submission_zip_refuses_a_video_with_no_scored_frames(ytvos_valid, tmp_path):
    for jpg in (ytvos_valid / "valid" / "JPEGImages" / "vid_c").glob("*.jpg"):
        jpg.unlink()
    pred = zero_predictions(tmp_path / "pred")
    out = tmp_path / "results.zip"

    with pytest.raises(DatasetError, match="video vid_c is listed in meta.json but has no frames"):
        write_submission_zip(YouTubeVOSDataset(ytvos_valid, split="valid"), pred, out)

    assert not out.exists()


def test_submission_cli_refuses_an_rgb_mask_in_one_line(ytvos_valid, tmp_path, capsys):
    from vos_datasets.youtube_vos import main as submit_main

    pred = zero_predictions(tmp_path / "pred")
    bad = pred / "vid_a" / f"{ANNOTATED[1]}.png"
    Image.new("RGB", (WIDTH, HEIGHT)).save(bad)
    assert submit_main(["submit", str(ytvos_valid), "valid", str(pred), str(tmp_path / "out.zip")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: RGB image") and err.count("\n") == 1
    assert not (tmp_path / "out.zip").exists()


@pytest.mark.parametrize("split", ["valid", "train"])
def test_a_missing_all_frames_folder_is_an_error_not_a_fallback(ytvos_valid, tmp_path, split, capsys):
    """The authors run on every frame (frtm-vos evaluate.py: valid_all_frames; the held-out train videos on
    train_all_frames): with only the every-5th-frame folder the run stops, naming the missing folder."""
    import shutil

    from methods.__main__ import main as methods_main
    from vos_datasets.build import build_dataset

    root = tmp_path / "every-5th"
    shutil.copytree(ytvos_valid / "valid", root / split)  # the every-5th-frame folder only
    missing = root / f"{split}_all_frames" / "JPEGImages"
    spec = {"kind": "youtube_vos", "root": str(root), "split": split}
    with pytest.raises(DatasetError) as error:
        build_dataset(spec)
    assert str(error.value).startswith(f"{missing}: not found (only the every-5th-frame {root / split / 'JPEGImages'}")
    assert f"download {split}_all_frames from https://youtube-vos.org/dataset/vos/" in str(error.value)
    out = tmp_path / "masks"
    assert methods_main(["infer", "--method", "first_frame_copy", "--dataset", json.dumps(spec), "--out", str(out),
                         "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {error.value}" and not out.exists()
    # trainings read the annotated frames only (workflow: all_frames false), and so does the submission zip
    annotated = build_dataset({**spec, "all_frames": False})
    assert annotated.sequence("vid_a").frames == tuple(ANNOTATED)
    if split == "valid":
        from vos_datasets.youtube_vos import main as submit_main

        predictions = tmp_path / "pred"
        for video in VIDEOS:
            for frame in ANNOTATED:
                write_label_png(predictions / video / f"{frame}.png", np.zeros((HEIGHT, WIDTH), np.uint8))
        assert submit_main(["submit", str(root), split, str(predictions), str(tmp_path / "s.zip")]) == 0
