"""The report's figures: speed vs accuracy (no first-frame-copy FPS point, unambiguous names, labels that do not
overlap), the qualitative strips (grey frames, colour bar on D's score maps) and the training curves."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text
from PIL import Image

from reporting.plots import (
    DECAY_COLOUR,
    MIN_ATTRIBUTE_SEQUENCES,
    EvaluationData,
    _overlay,
    attributes_figure,
    decay_figure,
    figure_list,
    merged,
    object_colour,
    qualitative_figure,
    speed_accuracy_figure,
    speed_panels,
    training_curves,
    training_figure,
)
from reporting.published import load_published

STAND_IN = {"synthetic-val": {"stands_in_for": ["davis2017-val", "davis2016-val"]}}
COPY_FPS = 30000.0


def summary(*rows: tuple, evaluation: str = "synthetic-val", device: str = "cpu") -> pd.DataFrame:
    """(row, label, method, J&F, FPS) per row."""
    return pd.DataFrame([{"preset": "t", "row": row, "label": label, "method": method, "evaluation": evaluation,
                          "J&F-Mean": jf, "FPS": fps, "device": device} for row, label, method, jf, fps in rows])


FIRST_FRAME_COPY = ("first-frame-copy", "First-frame copy (lower bound)", "first_frame_copy", 0.45, COPY_FPS)
ROWS = (FIRST_FRAME_COPY, ("frtm-ours", "FRTM Ours", "frtm", 0.6, 1.1), ("frtm-d-only", "FRTM D-only", "frtm", 0.5, 6.8),
        ("lwl-box-init", "LWL box-init", "lwl", 0.4, 8.1))


def legend_texts(figure: plt.Figure) -> list[str]:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def named(figure: plt.Figure) -> list[str]:
    """The legend's names without their numbers."""
    return [text.split("  ", 1)[1] for text in legend_texts(figure) if text.split("  ", 1)[0].isdigit()]


def test_the_first_frame_copy_gets_no_fps_point():
    figure = speed_accuracy_figure(summary(*ROWS), load_published(), STAND_IN, "CPU only: test")
    for ax in figure.axes:
        xs = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections if len(c.get_offsets())])
        assert xs.max() < 100  # the papers' and this run's methods; no copy at 3e4 FPS
        assert ax.get_xlim()[1] < 1000
        assert any(np.allclose(line.get_ydata(), 45.0) for line in ax.get_lines())  # its J&F: a line
    entries = legend_texts(figure)
    assert not any(name.startswith("First-frame copy") for name in named(figure))
    assert any(e.startswith("First-frame copy (lower bound), stand-in data: J&F only") for e in entries)
    plt.close(figure)


def test_speed_legend_names_reproduced_and_published_rows_apart():
    figure = speed_accuracy_figure(summary(*ROWS), load_published(), STAND_IN, "CPU only: test")
    names = named(figure)
    assert len(names) == len(set(names))
    for name in ("FRTM Ours (CPU, stand-in data)", "FRTM D-only (CPU, stand-in data)",
                 "LWL box-init (CPU, stand-in data)", "FRTM Ours (paper, GPU)", "FEELVOS (paper, GPU)"):
        assert name in names, name
    assert not any(name.startswith("Ours") for name in names)  # the paper's own rows carry their method
    assert "not comparable" in figure._suptitle.get_text()
    plt.close(figure)


def test_speed_names_say_gpu_and_this_run_and_tell_twin_labels_apart():
    rows = summary(("frtm-ours", "FRTM Ours", "frtm", 0.7, 20.0), ("frtm-again", "FRTM Ours", "frtm", 0.71, 21.0),
                   ("lwl", "LWL", "lwl", 0.8, 15.0), evaluation="davis2017-val", device="cuda:0")
    figure = speed_accuracy_figure(rows, load_published(), {"davis2017-val": {"benchmark": "davis2017-val"}}, "GPU")
    names = named(figure)
    assert {"FRTM Ours [frtm-ours] (GPU, this run)", "FRTM Ours [frtm-again] (GPU, this run)",
            "LWL (GPU, this run)"} <= set(names)
    plt.close(figure)


def test_speed_numbers_do_not_overlap_in_a_crowd():
    rng = np.random.default_rng(0)
    crowd = [(f"row-{i}", f"FRTM variant {i}", "frtm", 0.70 + 0.005 * rng.standard_normal(), 14 + rng.uniform(0, 2))
             for i in range(10)]
    figure = speed_accuracy_figure(summary(*crowd), load_published(), STAND_IN, "CPU")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes:
        numbers = [t for t in ax.texts if t.get_text().isdigit()]
        assert len(numbers) == len(ax.collections)  # one number per point
        boxes = [Text.get_window_extent(t, renderer) for t in numbers]  # the text, not its leader line
        overlapping = [(a.get_text(), b.get_text()) for (a, p), (b, q) in
                       itertools.combinations(zip(numbers, boxes, strict=True), 2) if p.overlaps(q)]
        assert not overlapping
        assert {t.get_text() for t in numbers} <= {e.split("  ")[0] for e in legend_texts(figure)}
    plt.close(figure)


def write_sequence(tmp_path: Path, maps: bool) -> tuple[EvaluationData, pd.Series, Path]:
    """Three 48x64 frames of a red and a green object, their ground truth, a row's masks and (optionally) D's
    score maps of frames 1 and 2 (frame 0 is given)."""
    root, results = tmp_path / "data", tmp_path / "results"
    labels = np.zeros((48, 64), np.uint8)
    labels[10:20, 10:20], labels[25:40, 30:50] = 1, 2
    for frame in range(3):
        name = f"{frame:05d}"
        image = np.full((48, 64, 3), 90, np.uint8)
        image[labels == 1], image[labels == 2] = (200, 30, 30), (30, 200, 30)  # objects coloured like masks
        for folder, array in ((root / "JPEGImages/480p/s", image), (root / "Annotations/480p/s", labels),
                              (results / "e/row/masks/s", labels)):
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(folder / f"{name}.{'jpg' if array.ndim == 3 else 'png'}")
    if maps:
        (results / "e/row/score-maps").mkdir(parents=True)
        np.savez(results / "e/row/score-maps/s.npz", **{f"{f:05d}_{o}": np.linspace(-0.5, 2.0, 12).reshape(3, 4) * o
                                                        for f in (1, 2) for o in (1, 2)})
    return EvaluationData("e", root), pd.Series({"row": "row", "label": "FRTM Ours"}), results


def colour_bars(figure: plt.Figure) -> list:
    return [ax._colorbar for ax in figure.axes if hasattr(ax, "_colorbar")]


def test_score_map_panels_have_a_colour_bar(tmp_path):
    evaluation, record, results = write_sequence(tmp_path, maps=True)
    figure = qualitative_figure(record, results, evaluation, "s")
    bars = colour_bars(figure)
    assert len(bars) == 1
    low, high = bars[0].mappable.get_clim()
    assert low == pytest.approx(-2.0) and high == pytest.approx(2.0)  # one scale, centred on 0
    assert "D score" in bars[0].ax.get_ylabel()
    images = [ax for ax in figure.axes if ax.get_images() and not hasattr(ax, "_colorbar")]
    assert len(images) == 3 + 3 + 2  # prediction and truth of 3 frames, maps of the 2 tracked frames
    plt.close(figure)
    evaluation, record, results = write_sequence(tmp_path / "none", maps=False)
    figure = qualitative_figure(record, results, evaluation, "s")
    assert not colour_bars(figure)
    plt.close(figure)


def test_overlays_colour_only_the_objects_on_a_grey_frame(tmp_path):
    evaluation, record, results = write_sequence(tmp_path, maps=False)
    image = np.array(Image.open(evaluation.root / "JPEGImages/480p/s/00000.jpg"))
    labels = np.array(Image.open(evaluation.root / "Annotations/480p/s/00000.png"))
    out = _overlay(image, labels).astype(int)
    background = out[labels == 0]
    assert np.abs(background - background[:, :1]).max() <= 1  # grey: the frame's own colours are gone
    one, two = out[labels == 1].mean(0), out[labels == 2].mean(0)
    assert np.argmax(one) == np.argmax(object_colour(1)) and np.argmax(two) == np.argmax(object_colour(2))
    figure = qualitative_figure(record, results, evaluation, "s")
    prediction, truth = figure.axes[0], figure.axes[3]  # the first frame's two panels
    assert all(ls[1] is None for c in prediction.collections for ls in c.get_linestyle())  # solid outlines
    assert all(ls[1] is not None for c in truth.collections for ls in c.get_linestyle())  # dashed outlines
    plt.close(figure)


def write_history(folder: Path, losses: list[float], validation: dict[int, dict] | None = None,
                  config: dict | None = None) -> Path:
    history = [{"epoch": epoch, "loss": loss, "seconds": 88.1, "samples": 48} for epoch, loss in enumerate(losses)]
    for epoch, scores in (validation or {}).items():
        history[epoch]["validation"] = scores
    folder.mkdir(parents=True)
    path = folder / "head.json"
    path.write_text(json.dumps({"config": config or {"head": "refiner"}, "history": history}))
    return path


def test_training_curves_from_head_json_with_and_without_validation(tmp_path):
    plain = write_history(tmp_path / "frtm-refiner", [0.29, 0.17, 0.16, 0.12])
    validated = write_history(tmp_path / "lwl-stage1", [266.5, 35.4, 21.7, 2.1],
                              {1: {"loss": 40.0, "J": 0.21, "samples": 8, "seconds": 3.0},
                               3: {"loss": 3.0, "J": 0.41, "samples": 8, "seconds": 3.0}}, {"stage": 1})
    out = training_curves([validated, plain], tmp_path / "figures" / "training-curves.png")
    assert out.is_file() and Image.open(out).size[0] > 500
    assert [(p.name, text.startswith("Training curves")) for p, text in figure_list(out.parent)] == \
        [("training-curves.png", True)]

    histories = {path.parent.name: json.loads(path.read_text()) for path in (plain, validated)}
    figure = training_figure(histories)
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["frtm-refiner (FRTM refiner)", "lwl-stage1 (LWL stage 1)"]
    assert len(figure.axes) == 2 + 1  # a panel per training and one validation axis
    assert panels[0].get_yscale() == "linear" and panels[1].get_yscale() == "log"  # 2.1 .. 266: decades
    assert [list(line.get_xdata()) for line in panels[0].get_lines()] == [[1, 2, 3, 4]]
    twin = next(ax for ax in figure.axes if ax not in panels and ax.get_lines())
    (j,) = twin.get_lines()
    assert list(j.get_xdata()) == [2, 4] and list(j.get_ydata()) == [0.21, 0.41]
    validation_loss = [line for line in panels[1].get_lines() if line.get_label() == "validation loss"]
    assert [list(line.get_ydata()) for line in validation_loss] == [[40.0, 3.0]]
    plt.close(figure)


def test_training_curves_without_trainings(tmp_path):
    out = training_curves([], tmp_path / "training-curves.png")
    assert out.is_file()


def test_a_damaged_frame_under_a_qualitative_strip_is_a_dataset_error_naming_it(tmp_path):
    from vos_datasets.sequence import DatasetError

    evaluation, record, results = write_sequence(tmp_path, maps=False)
    damaged = evaluation.root / "JPEGImages/480p/s/00001.jpg"
    damaged.write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DatasetError, match="00001.jpg"):
        qualitative_figure(record, results, evaluation, "s")


def panel_titles(figure: plt.Figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.get_title()]


def test_one_speed_panel_per_benchmark_measured():
    """A stand-in that fills DAVIS 2017 and 2016 is one panel (its stars would be the same twice); two
    benchmarks measured are two panels; a benchmark not measured has none."""
    assert speed_panels(STAND_IN) == [[("davis2017-val", "DAVIS 2017 val"), ("davis2016-val", "DAVIS 2016 val")]]
    both = {"d17": {"benchmark": "davis2017-val"}, "d16": {"benchmark": "davis2016-val"}}
    assert speed_panels(both) == [[("davis2017-val", "DAVIS 2017 val")], [("davis2016-val", "DAVIS 2016 val")]]
    assert speed_panels({"d16": {"benchmark": "davis2016-val"}}) == [[("davis2016-val", "DAVIS 2016 val")]]
    assert speed_panels({}) == [[("davis2017-val", "DAVIS 2017 val")]]  # the published points alone
    figure = speed_accuracy_figure(summary(*ROWS), load_published(), STAND_IN, "CPU")
    assert panel_titles(figure) == ["stars: synthetic-val, a stand-in for DAVIS 2017 val and DAVIS 2016 val\n"
                                    "circles: published on DAVIS 2017 val"]
    points = [point for ax in figure.axes for c in ax.collections for point in c.get_offsets()]
    assert len(points) == len(ROWS) - 1 + 11  # three rows (not the copy) once; 11 DAVIS 2017 rows print J&F and FPS
    plt.close(figure)
    figure = speed_accuracy_figure(summary(*ROWS, evaluation="d17"), load_published(), both, "CPU")
    assert len(panel_titles(figure)) == 2
    plt.close(figure)


def curve(j: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"J": j, "F": [v + 1 for v in j]}, index=[0.25, 0.75])


def test_decay_draws_one_panel_per_method_identical_ones_once_with_the_copy_greyed():
    curves = {"Copy": curve([60, 10]), "FRTM Ours": curve([50, 45]), "FRTM Ours (DV17)": curve([50, 45]),
              "LWL": curve([3, 2])}
    figure = decay_figure(curves, "e", reference="Copy")
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["Copy", "FRTM Ours\n= FRTM Ours (DV17)", "LWL"]
    for ax in panels:
        own = [line for line in ax.get_lines() if line.get_color() == DECAY_COLOUR]
        grey = [line for line in ax.get_lines() if line.get_color() == "0.7"]
        assert len(own) == 2 and len(grey) == (0 if ax.get_title() == "Copy" else 2)  # J and F each
    assert [list(line.get_ydata()) for line in panels[1].get_lines()[2:]] == [[50, 45], [51, 46]]
    plt.close(figure)
    scores = {"A": pd.Series([1.0, 2.0]), "B": pd.Series([1.0, 2.0]), "C": pd.Series([1.0, 2.5])}
    assert list(merged(scores)) == ["A = B", "C"]


def test_attributes_only_where_enough_sequences_carry_them(tmp_path):
    sequences = [f"s{i}" for i in range(MIN_ATTRIBUTE_SEQUENCES + 1)]
    info = [{"name": name, "attributes": ["OCC"] + (["FM"] if i < 2 else [])} for i, name in enumerate(sequences)]
    (tmp_path / "db_info.yml").write_text(__import__("yaml").safe_dump({"sequences": info}))
    scores = {"FRTM Ours": pd.Series(50.0, index=[f"{name}_1" for name in sequences])}
    figure = attributes_figure(scores, EvaluationData("e", tmp_path))
    (ax,) = [ax for ax in figure.axes if ax.get_title()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["all\n(6)", "OCC\n(6)"]
    assert ax.get_title().endswith(f"left out, under {MIN_ATTRIBUTE_SEQUENCES} sequences: FM (2)")
    plt.close(figure)
    few = {"FRTM Ours": scores["FRTM Ours"].iloc[:3]}
    figure = attributes_figure(few, EvaluationData("e", tmp_path))
    (text,) = figure.axes[0].texts
    assert "not drawn" in text.get_text() and "e has 3 sequences, the attributes (sequences): FM (2), OCC (3)" \
        in text.get_text()
    plt.close(figure)


def test_a_training_of_one_epoch_is_drawn_as_markers_with_their_values(tmp_path):
    lone = write_history(tmp_path / "lwl-stage2", [46.4], {0: {"loss": 50.3, "J": 0.0334}}, {"stage": 2})
    figure = training_figure({"lwl-stage2": json.loads(lone.read_text())})
    texts = {text.get_text() for ax in figure.axes for text in ax.texts}
    assert {"training loss 46.4", "validation loss 50.3", "validation J 0.0334"} <= texts
    several = write_history(tmp_path / "frtm-refiner", [0.3, 0.2], {1: {"loss": 0.25, "J": 0.1}})
    figure = training_figure({"frtm-refiner": json.loads(several.read_text())})
    texts = {text.get_text() for ax in figure.axes for text in ax.texts}
    assert "validation J 0.1" in texts and not any(t.startswith("training loss") for t in texts)  # a line: no value
    plt.close("all")


def test_a_training_panels_curves_have_distinct_hues(tmp_path):
    import colorsys

    from matplotlib.colors import to_rgb

    path = write_history(tmp_path / "lwl-stage1", [3.0, 2.0], {0: {"loss": 2.5, "J": 0.1}, 1: {"loss": 2.2, "J": 0.2}})
    figure = training_figure({"lwl-stage1": json.loads(path.read_text())})
    hues = [colorsys.rgb_to_hsv(*to_rgb(line.get_color()))[0] for ax in figure.axes for line in ax.get_lines()]
    assert len(hues) == 3
    for a, b in itertools.combinations(hues, 2):
        assert min(abs(a - b), 1 - abs(a - b)) > 0.1, hues  # no two blues
    plt.close(figure)
