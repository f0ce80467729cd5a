"""Seed repeats: rows run again on their trainings retrained at other seeds, and the report's seeds table."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from reporting.aggregate import collect
from reporting.plots import training_figure
from reporting.published import PUBLISHED_FILE, load_published
from reporting.render import render
from reporting.seeds import (
    primary_rows,
    repeat_name,
    repeat_of,
    seed_spread,
    seeds_section,
    with_seed_repeats,
)

TRAININGS = {
    "frtm-refiner": {"method": "frtm", "sources": [], "settings": {"head": "refiner", "epochs": 3}},
    "lwl-stage1": {"method": "lwl", "sources": [], "settings": {"epochs": 2}},
    "lwl-stage2": {"method": "lwl", "sources": [], "init_from": "lwl-stage1", "settings": {"stage": 2}},
}
ROWS = {
    "first-frame-copy": {"method": "first_frame_copy", "evaluate_on": ["d16"]},
    "frtm-ours": {"method": "frtm", "variant": "ours", "training": "frtm-refiner", "evaluate_on": ["d16"]},
    "frtm-no-update": {"method": "frtm", "variant": "no-update", "training": "frtm-refiner", "evaluate_on": ["d16"]},
    "lwl": {"method": "lwl", "variant": "full", "training": "lwl-stage2", "evaluate_on": ["d16"]},
}


def test_repeat_names_round_trip():
    assert repeat_name("frtm-ours", 2) == "frtm-ours.seed-2"
    assert repeat_of("frtm-ours.seed-2") == ("frtm-ours", 2)
    assert repeat_of("frtm-ours") is None and repeat_of("v1.5-seed-2") is None


def test_repeats_are_rows_on_trainings_retrained_at_each_seed():
    rows, trainings = with_seed_repeats(ROWS, TRAININGS, {"rows": ["frtm-ours", "frtm-no-update", "lwl"],
                                                          "seeds": [1, 2]})
    assert set(rows) - set(ROWS) == {f"{row}.seed-{seed}" for row in ("frtm-ours", "frtm-no-update", "lwl")
                                     for seed in (1, 2)}
    # rows sharing a training share its repeat (paired seeds), which differs from the base only by its seed
    assert rows["frtm-ours.seed-1"]["training"] == rows["frtm-no-update.seed-1"]["training"] == "frtm-refiner.seed-1"
    assert trainings["frtm-refiner.seed-1"]["settings"] == {"head": "refiner", "epochs": 3, "seed": 1}
    assert rows["frtm-ours.seed-1"]["variant"] == "ours"
    # a training that starts from another starts from that one's repeat at the same seed
    assert trainings["lwl-stage2.seed-2"]["init_from"] == "lwl-stage1.seed-2"
    assert trainings["lwl-stage1.seed-2"]["settings"]["seed"] == 2
    assert len(trainings) == 3 + 3 * 2
    # the preset's own entries are not changed
    assert "seed" not in TRAININGS["frtm-refiner"]["settings"] and len(ROWS) == 4
    assert with_seed_repeats(ROWS, TRAININGS, None) == (ROWS, TRAININGS)


@pytest.mark.parametrize(("repeats", "rows", "message"), [
    ({"rows": ["frtm-best"], "seeds": [1]}, ROWS, "x.rows: unknown row 'frtm-best'; known: ['first-frame-copy'"),
    ({"rows": ["first-frame-copy"], "seeds": [1]}, ROWS, "x.rows: row 'first-frame-copy' uses no training"),
    ({"rows": ["frtm-ours"], "seeds": [1]}, {**ROWS, "frtm-ours.seed-1": ROWS["frtm-ours"]},
     "x: the preset's name 'frtm-ours.seed-1' ends like a seed repeat's"),
])
def test_a_bad_repeat_is_named(repeats, rows, message):
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace(".", r"\.")):
        with_seed_repeats(rows, TRAININGS, repeats, where="x")


def summary_with_seeds(jf: dict[str, list[float]]) -> pd.DataFrame:
    """Rows run at seeds 0 (their own), 1, 2 with the given J&F per seed; one unrepeated row."""
    records = [{"row": "first-frame-copy", "label": "copy", "method": "first_frame_copy", "evaluation": "d16",
                "J&F-Mean": 0.25, "J-Mean": 0.25, "F-Mean": 0.25, "training_seed": None}]
    for row, values in jf.items():
        for seed, value in enumerate(values):
            records.append({"row": row if seed == 0 else repeat_name(row, seed), "label": row.upper(),
                            "method": "frtm", "evaluation": "d16", "J&F-Mean": value, "J-Mean": value + 0.05,
                            "F-Mean": value - 0.05, "training_seed": seed})
    return pd.DataFrame.from_records(records)


def test_the_spread_is_the_mean_and_sample_sd_over_every_seed():
    spread = seed_spread(summary_with_seeds({"frtm-d-only": [0.519, 0.515, 0.519],
                                             "frtm-no-update": [0.549, 0.561, 0.577]}))
    assert list(spread["row"]) == ["frtm-d-only", "frtm-no-update"]
    line = spread.set_index("row").loc["frtm-no-update"]
    assert line["seeds"] == [0, 1, 2] and line["runs"] == 3
    assert line["J&F-Mean mean"] == pytest.approx(0.562333, abs=1e-6)
    assert line["J&F-Mean sd"] == pytest.approx(pd.Series([0.549, 0.561, 0.577]).std(ddof=1))
    assert line["J-Mean mean"] == pytest.approx(0.612333, abs=1e-6)


def test_the_seeds_section_tells_a_gap_beyond_the_spread_from_one_within_it():
    summary = summary_with_seeds({"frtm-d-only": [0.519, 0.515, 0.519], "frtm-no-update": [0.549, 0.561, 0.577],
                                  "frtm-ours": [0.520, 0.508, 0.561]})
    lines = seeds_section(summary)
    text = "\n".join(lines)
    assert "| FRTM-NO-UPDATE (`frtm-no-update`) | 0, 1, 2 | 54.9, 56.1, 57.7 | 56.2 ± 1.4 | 61.2 ± 1.4 | 51.2 ± 1.4 |" \
        in lines
    assert "- `frtm-d-only` → `frtm-no-update`: +4.5 J&F (larger sd 1.4): larger than the spread." in lines
    assert "- `frtm-no-update` → `frtm-ours`: -3.3 J&F (larger sd 2.8): larger than the spread." in lines
    assert "first-frame-copy" not in text
    close = summary_with_seeds({"frtm-d-only": [0.50, 0.52, 0.54], "frtm-ours": [0.51, 0.53, 0.55]})
    assert "- `frtm-d-only` → `frtm-ours`: +1.0 J&F (larger sd 2.0): within the spread: not a finding." \
        in seeds_section(close)
    assert seeds_section(summary_with_seeds({})) == []


def test_rows_on_one_training_a_seed_are_compared_seed_by_seed_in_the_papers_order():
    # Ours and no update share R at each seed: the gap is judged on the per-seed differences, whose spread is
    # far smaller than either row's own (R's seed moves both rows together)
    summary = summary_with_seeds({"frtm-ours": [0.604, 0.589, 0.594], "frtm-no-update": [0.623, 0.601, 0.607],
                                  "frtm-d-only": [0.519, 0.515, 0.519]})
    summary["training"] = [None] + [
        ("frtm-refiner" if seed == 0 else f"frtm-refiner.seed-{seed}") if row.startswith(("frtm-ours", "frtm-no"))
        else ("frtm-d-only" if seed == 0 else f"frtm-d-only.seed-{seed}")
        for row, seed in zip(summary["row"][1:], summary["training_seed"][1:], strict=True)]
    lines = seeds_section(summary, ["frtm-base-net", "frtm-d-only", "frtm-no-update", "frtm-ours"])
    gaps = [line for line in lines if line.startswith("- ")]
    assert gaps == [
        "- `frtm-d-only` → `frtm-no-update`: +9.3 J&F (larger sd 1.1): larger than the spread.",
        "- `frtm-no-update` → `frtm-ours`: -1.5 J&F (paired by seed, one training a seed: -1.9, -1.2, -1.3; "
        "sd 0.4): larger than the spread.",
    ]
    table = [line for line in lines if line.startswith("| FRTM")]
    assert [line.split("`")[1] for line in table] == ["frtm-d-only", "frtm-no-update", "frtm-ours"]
    # without the order the summary's order stays (Ours first), and the same gap read backwards
    assert seed_spread(summary)["row"].tolist() == ["frtm-ours", "frtm-no-update", "frtm-d-only"]


def test_the_report_keeps_repeats_out_of_the_tables_and_gives_their_spread():
    summary = summary_with_seeds({"frtm-no-update": [0.549, 0.561, 0.577]})
    summary = summary.assign(**{column: 0.1 for column in ("J-Recall", "J-Decay", "F-Recall", "F-Decay")},
                             objects=1, FPS=2.0, device="cpu", threads=1)
    assert list(primary_rows(summary)["row"]) == ["first-frame-copy", "frtm-no-update"]
    report = render(summary, "davis2016", "t", {}, {"d16": {"benchmark": "davis2016-val"}}, load_published(),
                    PUBLISHED_FILE.parent.parent)
    tables, seeds = report.split("## Seeds: the spread of the trainings")
    assert "frtm-no-update.seed-1" not in tables and "(`frtm-no-update`)" in tables
    assert "| 0, 1, 2 | 54.9, 56.1, 57.7 | 56.2 ± 1.4 |" in seeds


def test_the_summary_gives_each_rows_training_seed_from_its_history(tmp_path):
    rows = {"frtm-ours": ROWS["frtm-ours"], "frtm-ours.seed-1": {**ROWS["frtm-ours"], "training": "frtm-refiner.seed-1"}}
    for row in rows:
        folder = tmp_path / "d16" / row / "scores"
        folder.mkdir(parents=True)
        (folder.parent / "timing.json").write_text(json.dumps({"mean_fps_over_sequences": 2.0, "device": "cpu"}))
        figures = {"J&F-Mean": 0.5, "J-Mean": 0.5, "J-Recall": 0.5, "J-Decay": 0.0, "F-Mean": 0.5, "F-Recall": 0.5,
                   "F-Decay": 0.0}
        (folder / "protocol-d16.json").write_text(json.dumps({"global": figures}))
        pd.DataFrame([{"J-Mean": 0.5}]).to_csv(folder / "per-object_results-d16.csv", index=False)
    for training, seed in (("frtm-refiner", 0), ("frtm-refiner.seed-1", 1)):
        (tmp_path / "training" / training).mkdir(parents=True)
        (tmp_path / "training" / training / "head.json").write_text(
            json.dumps({"config": {"seed": seed}, "history": [{"epoch": 0, "loss": 0.2}]}))
    summary = collect("davis2016", rows, tmp_path).set_index("row")
    assert summary.loc["frtm-ours", "training_seed"] == 0 and summary.loc["frtm-ours.seed-1", "training_seed"] == 1


def test_the_training_figure_gives_a_retrained_training_one_panel_with_every_seed():
    def history(seed, loss):
        return {"config": {"head": "refiner", "seed": seed},
                "history": [{"epoch": e, "loss": loss / (e + 1), "validation": {"J": 0.1 * e}} for e in range(3)]}

    figure = training_figure({"frtm-d-only": history(0, 0.3), "frtm-refiner": history(0, 0.4),
                              "frtm-refiner.seed-1": history(1, 0.5), "frtm-refiner.seed-2": history(2, 0.6)})
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["frtm-d-only (FRTM refiner)", "frtm-refiner (FRTM refiner)",
                      "frtm-refiner (FRTM refiner): seeds 0, 1, 2"]
    seeds_axes = next(ax for ax in figure.axes if ax.get_title().endswith("seeds 0, 1, 2"))
    assert [line.get_label() for line in seeds_axes.get_legend().get_lines()] == [
        "seed 0: loss", "seed 0: held-out J", "seed 1: loss", "seed 1: held-out J", "seed 2: loss",
        "seed 2: held-out J"]
    assert seeds_axes.get_yscale() == "linear"  # losses within a factor of ten
    plt.close(figure)
    # LWL-like losses (hundreds down to about ten) get a log axis on the seeds panel, as on a single one
    def lwl(seed, first):
        return {"config": {"seed": seed}, "history": [{"epoch": e, "loss": loss} for e, loss in
                                                      enumerate([first, first / 10, 12.0])]}

    figure = training_figure({"lwl-stage1": lwl(0, 500.0), "lwl-stage1.seed-1": lwl(1, 1500.0)})
    seeds_axes = next(ax for ax in figure.axes if ax.get_title().endswith("seeds 0, 1"))
    assert seeds_axes.get_yscale() == "log"
    # the figure's title sits above the first line of panels (no overlap with their titles)
    renderer = figure.canvas.get_renderer()
    title_box = figure._suptitle.get_window_extent(renderer)
    assert all(title_box.y0 >= ax.title.get_window_extent(renderer).y1 - 1 for ax in figure.axes if ax.get_title())
    plt.close(figure)
