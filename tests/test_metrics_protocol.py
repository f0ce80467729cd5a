"""The evaluator's building blocks and protocol rules on small hand-made cases, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from metrics import EvaluationError, Protocol, evaluate
from metrics.__main__ import main as cli
from metrics.davis import ground_truth_frame
from metrics.measures import boundary_map, f_measure, frame_scores, jaccard, statistics
from tests.conftest import write_sequence


def random_blobs(rng, shape, n_ids):
    ids = np.zeros(shape, np.uint8)
    for _ in range(rng.integers(0, 4)):
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        h, w = rng.integers(1, shape[0] // 2 + 2), rng.integers(1, shape[1] // 2 + 2)
        ids[y:y + h, x:x + w] = rng.integers(1, n_ids + 1)
    return ids


def test_boundary_map_rules():
    seg = np.zeros((4, 5), bool)
    seg[1:3, 1:3] = True
    bmap = boundary_map(seg)
    # a pixel differing from its E, S or SE neighbour is on the boundary (worked out by hand)
    expected = [[1, 1, 1, 0, 0], [1, 0, 1, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]]
    np.testing.assert_array_equal(bmap, np.array(expected, bool))
    full = np.ones((3, 3), bool)
    assert not boundary_map(full)[-1, -1]  # the corner is never set


@pytest.mark.parametrize("seed", range(6))
def test_fast_scores_equal_reference(seed):
    """Cropped per-object scoring (on hand-cleaned labels, and on the frame the evaluator builds from the
    decoded labels) equals the full-frame formulas, including masks on the image border, single pixels,
    empty and void regions."""
    rng = np.random.default_rng(seed)
    shape = (37, 53)
    for _ in range(40):
        gt, pred = random_blobs(rng, shape, 3), random_blobs(rng, shape, 3)
        if rng.random() < 0.3:
            gt[-1, -1] = 2  # corner pixel
        if rng.random() < 0.3:
            gt[rng.integers(0, 37), :3] = 255  # void
        ignore_void = bool(rng.random() < 0.5)
        void = (gt == 255) if ignore_void else None
        clean = np.where(gt == 255, 0, gt).astype(np.uint8)
        objects = [1, 2, 3]
        radius = 2
        j, f = frame_scores(clean, pred, objects, radius, void)
        frame = ground_truth_frame(gt, ignore_void)
        j_cached, f_cached = frame_scores(frame.ids, pred, objects, radius, frame.void)
        for index, oid in enumerate(objects):
            expected_j = jaccard(clean == oid, pred == oid, void)
            expected_f = f_measure(clean == oid, pred == oid, void, bound_th=radius)
            assert j[index] == pytest.approx(expected_j) and j_cached[index] == pytest.approx(expected_j)
            assert f[index] == pytest.approx(expected_f) and f_cached[index] == pytest.approx(expected_f)


def test_empty_against_empty_scores_one():
    empty = np.zeros((10, 10), np.uint8)
    j, f = frame_scores(empty, empty, [1], 1)
    assert j[0] == 1.0 and f[0] == 1.0
    assert jaccard(empty, empty) == 1.0 and f_measure(empty, empty) == 1.0


def test_statistics_recall_counts_nan_as_miss_and_decay_quirk():
    mean, recall, _ = statistics(np.array([0.9, np.nan, 0.2, 0.8]))
    assert mean == pytest.approx((0.9 + 0.2 + 0.8) / 3)
    assert recall == pytest.approx(2 / 4)
    values = np.linspace(1.0, 0.0, 300)
    quirky = statistics(values, decay_uint8_quirk=True)[2]
    exact = statistics(values, decay_uint8_quirk=False)[2]
    assert exact == pytest.approx(np.mean(values[:75]) - np.mean(values[224:]), abs=0.01)
    assert quirky != pytest.approx(exact)  # bin edges wrap past 255 in the official toolkit


def make_case(tmp_path, gt_frames, pred_frames, name="seq"):
    write_sequence(tmp_path / "gt", name, gt_frames)
    write_sequence(tmp_path / "pred", name, pred_frames)
    return tmp_path / "gt", tmp_path / "pred"


def square(shape, y, x, size, value=1, base=None):
    ids = np.zeros(shape, np.uint8) if base is None else base.copy()
    ids[y:y + size, x:x + size] = value
    return ids


def test_first_and_last_frames_are_not_scored(tmp_path):
    good = square((20, 20), 5, 5, 6)
    wrong = square((20, 20), 12, 12, 4)
    gt, pred = make_case(tmp_path, [good] * 5, [wrong, good, good, good, wrong])
    result = evaluate(gt, pred, workers=1, progress=False)
    assert result.global_statistics()["J-Mean"] == 1.0
    assert result.sequences[0].frames[1] == ["00001", "00002", "00003"]


def test_unpredicted_object_is_scored_as_empty_and_gaps_count(tmp_path):
    # First frame holds ids 1 and 3: the toolkit scores objects 1..3, so id 2 is an (empty) object.
    first = square((20, 20), 2, 2, 4, 1)
    first = square((20, 20), 12, 12, 4, 3, first)
    gt, pred = make_case(tmp_path, [first] * 4, [square((20, 20), 2, 2, 4, 1)] * 4)
    result = evaluate(gt, pred, workers=1, progress=False)
    rows = {row["Sequence"]: row for row in result.object_statistics()}
    assert set(rows) == {"seq_1", "seq_2", "seq_3"}
    assert rows["seq_1"]["J-Mean"] == 1.0
    assert rows["seq_2"]["J-Mean"] == 1.0  # empty against empty
    assert rows["seq_3"]["J-Mean"] == 0.0  # never predicted
    corrected = evaluate(gt, pred, workers=1, progress=False, protocol=Protocol.corrected())
    assert {row["Sequence"] for row in corrected.object_statistics()} == {"seq_1", "seq_3"}


def test_objects_entering_later(tmp_path):
    early = square((20, 20), 2, 2, 4, 1)
    both = square((20, 20), 12, 12, 4, 2, early)
    gt_frames = [early, early, both, both, both, both]
    gt, pred = make_case(tmp_path, gt_frames, gt_frames)
    with pytest.raises(EvaluationError, match="--objects all"):
        evaluate(gt, pred, workers=1, progress=False)  # official: id 2 is not a first-frame object
    result = evaluate(gt, pred, workers=1, progress=False, protocol=Protocol(objects="all"))
    seq = result.sequences[0]
    assert seq.object_ids == [1, 2]
    assert seq.frames[2] == ["00003", "00004"]  # given at 00002, scored after it, last frame excluded


def test_an_object_given_on_the_last_scored_frame_is_known_but_not_scored(tmp_path):
    """Given on frame 00004 of 6 (the last scored frame), object 2 has no frame to score; a method that paints
    it where it is given (as every method does) is not an error. Before: "object ids [2] are not in the ground
    truth" (the embedded preset at 160x288 has such an object: the toy-method workflow test caught it)."""
    early = square((20, 20), 2, 2, 4, 1)
    late = square((20, 20), 12, 12, 4, 2, early)
    gt_frames = [early, early, early, early, late, late]
    gt, pred = make_case(tmp_path, gt_frames, gt_frames)
    result = evaluate(gt, pred, workers=1, progress=False, protocol=Protocol(objects="all"))
    assert result.sequences[0].object_ids == [1]
    assert result.global_statistics()["J-Mean"] == 1.0
    write_sequence(tmp_path / "pred", "seq", [square((20, 20), 2, 2, 4, 3)] * 6)  # an id never annotated
    with pytest.raises(EvaluationError, match=r"object ids \[3\] .*annotated objects: \[1, 2\]"):
        evaluate(gt, pred, workers=1, progress=False, protocol=Protocol(objects="all"))


def test_void_counts_as_background_unless_ignored(tmp_path):
    gt_frame = square((20, 20), 4, 4, 6, 1)
    gt_frame[4:10, 10:14] = 255
    pred_frame = square((20, 20), 4, 4, 6, 1)
    pred_frame[4:10, 10:14] = 1  # predicts the void region as object
    gt, pred = make_case(tmp_path, [gt_frame] * 3, [pred_frame] * 3)
    official = evaluate(gt, pred, workers=1, progress=False).global_statistics()["J-Mean"]
    ignored = evaluate(gt, pred, workers=1, progress=False,
                       protocol=Protocol(ignore_void=True)).global_statistics()["J-Mean"]
    assert official == pytest.approx(36 / 60)
    assert ignored == 1.0


def test_davis2016_masks_read_as_object_one(tmp_path):
    frame = square((20, 20), 4, 4, 6, 255)
    for index in range(3):
        (tmp_path / "gt" / "s").mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame, mode="L").save(tmp_path / "gt" / "s" / f"{index:05d}.png")
    write_sequence(tmp_path / "pred", "s", [(frame > 0).astype(np.uint8)] * 3)
    assert evaluate(tmp_path / "gt", tmp_path / "pred", workers=1, progress=False).global_statistics()["J-Mean"] == 1.0


# --- bad input: a clear error naming the file, and no CSV left behind -------------------------------------

def run_cli(gt, pred, out, *extra):
    return cli([str(gt), str(pred), "--out", str(out), "--quiet", "--no-cache", "--workers", "1", *extra])


@pytest.fixture
def good_case(tmp_path):
    frames = [square((20, 24), 3, 3, 8, 1)] * 4
    return make_case(tmp_path, frames, frames)


def expect_error(capsys, tmp_path, gt, pred, pattern, *extra):
    out = tmp_path / "out"
    assert run_cli(gt, pred, out, *extra) == 1
    message = capsys.readouterr().err
    assert pattern in message, message
    assert not out.exists() or not list(out.glob("*.csv"))
    return message


def test_error_missing_frame(tmp_path, good_case, capsys):
    gt, pred = good_case
    (pred / "seq" / "00002.png").unlink()
    expect_error(capsys, tmp_path, gt, pred, str(pred / "seq" / "00002.png"))


def test_error_size_mismatch(tmp_path, good_case, capsys):
    gt, pred = good_case
    write_sequence(pred, "seq", [square((20, 30), 3, 3, 8, 1)] * 4)
    expect_error(capsys, tmp_path, gt, pred, "30x20")


def test_error_rgb_prediction(tmp_path, good_case, capsys):
    gt, pred = good_case
    Image.new("RGB", (24, 20), (128, 0, 0)).save(pred / "seq" / "00001.png")
    message = expect_error(capsys, tmp_path, gt, pred, str(pred / "seq" / "00001.png"))
    assert "RGB" in message and "indexed" in message


def test_error_unknown_object_id(tmp_path, good_case, capsys):
    gt, pred = good_case
    write_sequence(pred, "seq", [square((20, 24), 3, 3, 8, 7)] * 4)
    message = expect_error(capsys, tmp_path, gt, pred, str(pred / "seq" / "00001.png"))
    assert "[7]" in message


def test_error_empty_folders(tmp_path, good_case, capsys):
    gt, _ = good_case
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error(capsys, tmp_path, gt, empty, "no sequence folders")


def test_error_mismatched_sequence_sets(tmp_path, good_case, capsys):
    gt, pred = good_case
    write_sequence(pred, "other", [square((20, 24), 3, 3, 8, 1)] * 4)
    expect_error(capsys, tmp_path, gt, pred, "have no ground truth")
    assert run_cli(gt, pred, tmp_path / "ok", "--sequences", "seq") == 0  # a subset is fine


def test_error_corrupt_png(tmp_path, good_case, capsys):
    gt, pred = good_case
    (pred / "seq" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    expect_error(capsys, tmp_path, gt, pred, str(pred / "seq" / "00001.png"))


def test_refuses_output_inside_input(tmp_path, good_case, capsys):
    gt, pred = good_case
    assert run_cli(gt, pred, pred / "scores") == 2
    assert "inside the input" in capsys.readouterr().err
