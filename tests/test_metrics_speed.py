"""What makes the DAVIS evaluator fast: each shortcut gives exactly the plain definition's result, and does
less work (no dilation where the official F measure's count is known without one, dilation bounded to the
pixels that need it, no scikit-image, SciPy or pandas imported by the command line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import metrics.measures
from metrics.errors import png_stems
from metrics.measures import (
    boundary_map,
    dilate_disk,
    disk,
    disk_rectangles,
    f_measure,
    frame_scores,
    jaccard,
    matched_pixels,
    present_labels,
)
from metrics.tables import csv_bytes

REPO = Path(__file__).resolve().parent.parent


def official_seg2bmap(seg: np.ndarray) -> np.ndarray:
    """davis2017-evaluation's _seg2bmap for a map of its own size, line by line."""
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def blobs(rng, shape, n_ids, count=4):
    """Label maps with rectangles and ellipses of random ids, some touching the image border."""
    ids = np.zeros(shape, np.uint8)
    for _ in range(rng.integers(0, count + 1)):
        oid = int(rng.integers(1, n_ids + 1))
        y, x = int(rng.integers(-5, shape[0])), int(rng.integers(-5, shape[1]))
        if rng.random() < 0.5:
            ids[max(y, 0):y + int(rng.integers(1, shape[0])), max(x, 0):x + int(rng.integers(1, shape[1]))] = oid
        else:
            axes = (int(rng.integers(1, shape[1] // 2)), int(rng.integers(1, shape[0] // 2)))
            cv2.ellipse(ids, (x, y), axes, float(rng.integers(0, 180)), 0, 360, oid, -1)
    return ids


def like(rng, ids, n_ids):
    """A prediction resembling `ids`: each object kept, shifted, grown or shrunk, plus a stray blob."""
    out = np.zeros_like(ids)
    for oid in range(1, n_ids + 1):
        mask = (ids == oid).astype(np.uint8)
        change = rng.integers(0, 4)
        if change == 1:
            mask = np.roll(mask, tuple(rng.integers(-9, 10, size=2)), axis=(0, 1))
        elif change == 2:
            mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
        elif change == 3:
            mask = cv2.erode(mask, np.ones((5, 5), np.uint8))
        out[mask.astype(bool)] = oid
    if rng.random() < 0.5:
        out[rng.integers(0, ids.shape[0]), rng.integers(0, ids.shape[1])] = rng.integers(1, n_ids + 1)
    return out


def test_disk_is_the_toolkits_structuring_element():
    """The toolkit dilates by skimage.morphology.disk(ceil(0.008 * diagonal)), the radius a float."""
    footprints = pytest.importorskip("skimage.morphology", reason="scikit-image gives the reference disk")
    for radius in range(0, 21):
        np.testing.assert_array_equal(disk(radius), footprints.disk(radius).astype(np.uint8))
        np.testing.assert_array_equal(disk(radius), footprints.disk(float(radius)).astype(np.uint8))


def test_disk_literal_values():
    # radius 8 (854x480): the rows' half-widths, from the centre row outwards
    assert [int(row.sum()) // 2 for row in disk(8)[8:]] == [8, 7, 7, 7, 6, 6, 5, 3, 0]
    assert disk(0).tolist() == [[1]]


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 5, 8, 11, 12])
def test_disk_is_the_union_of_its_rectangles_and_dilates_alike(radius):
    union = np.zeros_like(disk(radius))
    centre = radius
    for rectangle in disk_rectangles(radius):
        h, w = rectangle.shape[0] // 2, rectangle.shape[1] // 2
        union[centre - h:centre + h + 1, centre - w:centre + w + 1] |= 1
    np.testing.assert_array_equal(union, disk(radius))
    rng = np.random.default_rng(radius)
    for shape in [(1, 1), (1, 30), (30, 1), (7, 9), (40, 61)]:
        for density in (0.01, 0.1, 0.5):
            bmap = (rng.random(shape) < density).astype(np.uint8)
            np.testing.assert_array_equal(dilate_disk(bmap, radius), cv2.dilate(bmap, disk(radius)))


def test_boundary_map_equals_the_official_seg2bmap():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (1, 2), (2, 1), (1, 9), (9, 1), (2, 2), (3, 5), (16, 9), (41, 33)]:
        for _ in range(100):
            seg = rng.random(shape) < rng.random()
            np.testing.assert_array_equal(boundary_map(seg), official_seg2bmap(seg))
            view = seg[:, ::2]  # a strided view, as a crop can be
            np.testing.assert_array_equal(boundary_map(view), official_seg2bmap(view))


@pytest.mark.parametrize("radius", [1, 3, 8])
def test_matched_pixels_equals_the_official_count(radius):
    rng = np.random.default_rng(radius)
    for _ in range(200):
        shape = (int(rng.integers(1, 50)), int(rng.integers(1, 70)))
        a = boundary_map(rng.random(shape) < 0.3 * rng.random())
        b = boundary_map(rng.random(shape) < 0.3 * rng.random())
        expected = np.count_nonzero(a & cv2.dilate(b.view(np.uint8), disk(radius)).view(bool))
        assert matched_pixels(a, b, radius) == expected


@pytest.mark.parametrize("seed", range(4))
def test_frame_scores_equal_the_full_frame_definitions_exactly(seed):
    """The radius of 854x480 frames (8), objects touching the border, shifted/grown/shrunk copies: every
    J and F equal (==, not approximately) to the full-frame jaccard/f_measure."""
    rng = np.random.default_rng(seed)
    shape, radius = (70, 110), 8
    for _ in range(40):
        gt = blobs(rng, shape, 4)
        pred = like(rng, gt, 4) if rng.random() < 0.8 else blobs(rng, shape, 4)
        objects = [1, 2, 3, 4]
        j, f = frame_scores(gt, pred, objects, radius)
        for index, oid in enumerate(objects):
            assert j[index] == jaccard(gt == oid, pred == oid)
            assert f[index] == f_measure(gt == oid, pred == oid, bound_th=radius)


@pytest.fixture
def dilated_areas(monkeypatch) -> list[int]:
    """The pixel count of every image the evaluator's measures dilate."""
    areas: list[int] = []
    dilate = cv2.dilate

    def recording(image, kernel, *args, **kwargs):
        areas.append(image.shape[0] * image.shape[1])
        return dilate(image, kernel, *args, **kwargs)

    monkeypatch.setattr(metrics.measures.cv2, "dilate", recording)
    return areas


def square_object(shape=(400, 600), top=50, left=80, size=300) -> np.ndarray:
    ids = np.zeros(shape, np.uint8)
    ids[top:top + size, left:left + size] = 1
    return ids


def test_identical_boundaries_need_no_dilation(dilated_areas):
    """Before: two full-crop dilations per object even where the prediction is the ground truth."""
    gt = square_object()
    j, f = frame_scores(gt, gt.copy(), [1], 8)
    assert j[0] == 1.0 and f[0] == 1.0
    assert dilated_areas == []


def test_dilation_is_bounded_to_the_pixels_that_need_it(dilated_areas):
    """A prediction that differs from a 300x300 ground truth by a notch of 6x6 pixels: the dilations
    cover the notch and the disk's reach around it, not the object's 302x302 crop (before: two of it)."""
    gt = square_object()
    pred = gt.copy()
    pred[100:106, 80:86] = 0
    expected = jaccard(gt, pred), f_measure(gt, pred, bound_th=8)
    dilated_areas.clear()  # the full-frame reference's own dilations
    j, f = frame_scores(gt, pred, [1], 8)
    assert (j[0], f[0]) == expected
    assert dilated_areas and max(dilated_areas) <= (6 + 2 + 2 * 8) ** 2
    assert sum(dilated_areas) < 302 * 302 / 4


def test_command_line_imports_no_scipy_scikit_image_or_pandas():
    """Before: metrics.measures imported scikit-image (and with it SciPy) for its disk, and metrics.tables and
    metrics.youtube_vos pandas: about half a second of every cold run, none of it needed to score DAVIS."""
    code = ("import sys, metrics.__main__; "
            "print(sorted(m for m in ('scipy', 'skimage', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "[]"


def test_youtube_vos_names_still_import_from_metrics():
    import metrics

    assert metrics.evaluate_youtube_vos.__module__ == "metrics.youtube_vos"
    with pytest.raises(AttributeError):
        metrics.no_such_name  # noqa: B018


def test_csv_bytes_equal_pandas_to_csv():
    """The evaluator's CSVs, written without pandas, equal what pandas wrote byte for byte."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    values = [0.0, 1.0, -0.0, 1e-5, 1e-4, 0.1 + 0.2, 2 / 3, -0.018219805441864252, 1e16, 123456789.123,
              float("nan"), np.float64(0.6048135878505256), np.float64("nan"), 5e-324]
    rows = [{"Sequence": name, "Object": np.int64(rng.integers(1, 9)), "Frame": f"{i:05d}",
             "J": values[i % len(values)], "F": values[(3 * i) % len(values)]}
            for i, name in enumerate(["bear", "a,b", 'say "hi"', "new\nline", "", "x y", "dogs-jump"] * 3)]
    columns = ["Sequence", "Object", "Frame", "J", "F"]
    for float_format in (None, "%.3f"):
        expected = pd.DataFrame(rows, columns=columns).to_csv(index=False, float_format=float_format,
                                                               lineterminator="\n").encode()
        assert csv_bytes(columns, rows, float_format) == expected


def test_png_stems_list_what_sorted_glob_lists(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for name in ["00002.png", "00010.png", "00001.png", "a.png", "a-b.png", ".hidden.png", "B.png", "x.PNG",
                 "notes.txt", "png"]:
        (folder / name).write_bytes(b"")
    (folder / "dir.png").mkdir()
    assert png_stems(folder) == [p.stem for p in sorted(folder.glob("*.png"))]
    assert png_stems(tmp_path / "absent") == []



def test_present_labels_equal_numpy_unique():
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = [0, 1, 2, 7, 31] if rng.random() < 0.5 else [0, 3, 32, 254, 255]  # below 32, and not
        size = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        ids = rng.choice(values, size=size).astype(np.uint8)
        np.testing.assert_array_equal(present_labels(ids), np.unique(ids))
        np.testing.assert_array_equal(present_labels(ids[:, ::2]), np.unique(ids[:, ::2]))
    wide = np.array([[0, 300], [5, 5]], np.int32)
    np.testing.assert_array_equal(present_labels(wide), [0, 5, 300])
