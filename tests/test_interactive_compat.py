"""interactive.compat: the package davisinteractive 1.0.4 on today's numpy, networkx, pandas and scikit-image.
One test a shim (each fails with its shim removed), the pinned robot, and the message when the package is
missing. The package is an optional extra: without it these tests skip (CI installs it)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest

from interactive import compat


@pytest.fixture(scope="module")
def package():
    pytest.importorskip("davisinteractive", reason="the optional extra `interactive` (make interactive-setup)")
    return compat.load_davisinteractive()


def ellipse_with_bar() -> np.ndarray:
    """A shape whose medial axis has ties to break (symmetric ellipse, a bar across it)."""
    rows, cols = np.mgrid[:90, :120]
    mask = ((rows - 45) / 30.0) ** 2 + ((cols - 60) / 50.0) ** 2 < 1
    mask[40:50, 10:110] = True
    return mask


def robot_paths(package, mask: np.ndarray) -> list:
    """The robot's scribble on an empty prediction of `mask`: its paths (its timestamps are wall clock)."""
    robot = package.InteractiveScribblesRobot(**package.ROBOT_DEFAULT_PARAMETERS)
    ground_truth = mask[None].astype(np.int64)
    scribble = robot.interact("shape", np.zeros_like(ground_truth), ground_truth, nb_objects=1)
    return [(line["object_id"], line["path"]) for frame in scribble["scribbles"] for line in frame]


def test_numpy_int_and_float_aliases_for_the_package_only(package):
    """scribbles2mask and the package's J and F use np.int and np.float; numpy itself stays without them."""
    scribble = {"sequence": "s", "scribbles": [[{"path": [[0.1, 0.2], [0.9, 0.2]], "object_id": 2}], []]}
    labels = package.scribbles2mask(scribble, (20, 30))
    assert labels.shape == (2, 20, 30) and set(np.unique(labels)) == {-1, 2}
    assert (labels[0, 3, 2:27] == 2).all() and (labels[0] == 2).sum() == 25 and (labels[1] == -1).all()
    from davisinteractive.metrics import batched_f_measure, batched_jaccard

    truth = np.zeros((1, 20, 30), int)
    truth[0, 5:15, 5:25] = 1
    assert batched_jaccard(truth, truth)[0] == 1.0 and batched_f_measure(truth, truth)[0] == 1.0
    assert not hasattr(np, "int") and not hasattr(np, "float")  # the suite's own numpy is untouched


def test_numpy_trapz_alias(package):
    """The package's AUC is np.trapz (numpy 2.4: np.trapezoid)."""
    from davisinteractive.evaluation import service

    assert service.np.trapz(np.array([0.0, 1.0, 1.0]), x=np.array([0.0, 1.0, 3.0])) == 2.5


def test_networkx_sparse_matrix_for_the_robot(package):
    """The robot builds its skeleton graph with networkx.from_scipy_sparse_matrix (networkx 3: _array)."""
    paths = robot_paths(package, ellipse_with_bar())
    assert len(paths) == 1 and paths[0][0] == 1 and len(paths[0][1]) == 1000


def storage_report(package, rows: list[tuple], objects: int = 1) -> pd.DataFrame:
    """A report as a local session builds it (LocalStorage: rows concatenated onto an empty table): two
    entries a row, J of j and j / 2 and F of j (frames 0 and 1 of object 1, or frame 0 of objects 1 and 2)."""
    storage = sys.modules["davisinteractive.storage.local"].LocalStorage()
    ids, frames = ([1, 1], [0, 1]) if objects == 1 else ([1, 2], [0, 0])
    for sequence, interaction, timing, jaccard in rows:
        storage.store_interactions_results("user", "session", sequence, 1, interaction, timing, ids, frames,
                                           [jaccard, jaccard / 2], [jaccard, jaccard])
    return storage.get_report(session_id="session")


def test_pandas_summary_of_a_session_report(package, tmp_path):
    """summarize_report on the session's own report: its string session_id and object dtypes (pandas >= 2)."""
    from interactive.dataset import InteractiveDataset
    from interactive.summary import package_summary

    entries = {"a": {"name": "a", "set": "val", "num_frames": 2, "num_objects": 1, "num_scribbles": 1,
                     "image_size": [4, 3]}}
    for index in range(2):
        (tmp_path / f"Annotations/480p/a/{index:05d}.png").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"Annotations/480p/a/{index:05d}.png").touch()  # the service checks they exist
    (tmp_path / "Scribbles/a").mkdir(parents=True)
    (tmp_path / "Scribbles/a/001.json").touch()
    report = storage_report(package, [("a", 1, 2.0, 0.4), ("a", 2, 3.0, 0.8)])
    assert report["jaccard"].dtype == object  # what the shim is for
    summary = package_summary(report, InteractiveDataset(tmp_path, entries, True, "synthetic"), 2, None)
    assert summary["curve"]["time"] == [0.0, 2.0, 5.0, 6.0]  # end: 2 interactions x the longest (3 s)
    assert summary["curve"]["J_AND_F"] == pytest.approx([0.0, 0.35, 0.7, 0.7], abs=1e-12)
    nothing = storage_report(package, [])  # every submission past its time: an empty report
    summary = package_summary(nothing, InteractiveDataset(tmp_path, entries, True, "synthetic"), 2, 10.0)
    assert summary["curve"] == {"time": [0.0, 0.0, 0.0, 10.0], "J_AND_F": [0.0, 0.0, 0.0, 0.0]}


def test_pandas_reconstruction_of_a_timed_out_sample(package, tmp_path):
    """A sample whose time ran out after interaction 1: interaction 2 repeats its result at no time. The
    package's reconstruction writes into `.values` of a selection (pandas 3: read-only where the selection is
    a view, as for a report read from its CSV file)."""
    from interactive.dataset import InteractiveDataset
    from interactive.summary import package_summary

    entries = {name: {"name": name, "set": "val", "num_frames": 2, "num_objects": 2, "num_scribbles": 1,
                      "image_size": [4, 3]} for name in ("a", "b")}
    for name in entries:
        for index in range(2):
            (tmp_path / f"Annotations/480p/{name}/{index:05d}.png").parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f"Annotations/480p/{name}/{index:05d}.png").touch()
        (tmp_path / f"Scribbles/{name}").mkdir(parents=True)
        (tmp_path / f"Scribbles/{name}/001.json").touch()
    report = storage_report(package, [("a", 1, 2.0, 0.4), ("b", 1, 4.0, 0.2), ("b", 2, 6.0, 0.6)], objects=2)
    report.to_csv(tmp_path / "report.csv", index=False)
    report = pd.read_csv(tmp_path / "report.csv")  # as `summarize` reads it: numeric columns, one block
    summary = package_summary(report, InteractiveDataset(tmp_path, entries, True, "synthetic"), 2, 10.0)
    assert summary["curve"]["time"] == [0.0, 3.0, 6.0, 20.0]  # a's interaction 2 costs 0; end: 2 objects x 10 s
    assert summary["curve"]["J_AND_F"] == pytest.approx([0.0, 0.2625, 0.4375, 0.4375], abs=1e-12)  # 0.875 j


def test_the_package_never_downloads(package, tmp_path, monkeypatch):
    """A missing file makes the package's Davis download the archive; here it raises instead."""
    davis_module = sys.modules["davisinteractive.dataset.davis"]

    def download(*args, **kwargs):
        raise AssertionError(f"the package tried to download {args[0]}")

    monkeypatch.setattr(davis_module.urllib.request, "urlretrieve", download)
    davis = package.Davis(davis_root=str(tmp_path))
    with pytest.raises(compat.DownloadRefused, match="python -m interactive download-scribbles"):
        davis.check_files(["bear"])


def test_two_robot_calls_on_one_input_draw_the_same_scribble(package):
    """scikit-image >= 0.19 breaks the medial axis's ties with a fresh unseeded generator: unpinned, two calls
    differ (the robot's skeleton, hence its scribble)."""
    mask = ellipse_with_bar()
    assert robot_paths(package, mask) == robot_paths(package, mask)


# The medial axis of ellipse_with_bar() with scikit-image 0.18's tie-break, RandomState(0).permutation (the
# pinned robot's; scikit-image 0.18.3 and 0.26 differ in that line only): a seed (rng=0) gives another one.
OLD_TIE_BREAK_SKELETON = "01ec9eee1c3866062f0bd60bd4772af182f7ecd369e230db96218c772e408db4"


def test_the_pinned_tie_break_is_scikit_image_0_18s(package):
    from skimage.morphology import medial_axis

    def digest(skeleton):
        return hashlib.sha256(np.packbits(skeleton).tobytes()).hexdigest()

    mask = ellipse_with_bar()
    assert digest(package.robot_module.medial_axis(mask)) == OLD_TIE_BREAK_SKELETON
    assert digest(medial_axis(mask, rng=0)) != OLD_TIE_BREAK_SKELETON
    tie_break = compat.LegacyTieBreak()
    assert (tie_break.permutation(np.arange(50)) == np.random.RandomState(0).permutation(50)).all()
    assert (tie_break.permutation(np.arange(50)) == tie_break.permutation(np.arange(50))).all()  # afresh


def test_a_missing_package_is_one_line_naming_the_fix(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == compat.PACKAGE else real(name, *args))
    with pytest.raises(compat.MissingPackageError) as raised:
        compat.load_davisinteractive.__wrapped__()
    assert "make interactive-setup" in str(raised.value) and "\n" not in str(raised.value)
