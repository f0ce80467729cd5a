"""The report's figures (PNG): speed vs accuracy, J&F per sequence, J and F over normalised time (decay),
J&F per DAVIS attribute, and a qualitative strip per method (frames, predicted masks and, for FRTM, the
target model's score maps).

Inputs are what the workflow already wrote: the preset's summary.csv, each row's scores/*.csv, masks/
and score-maps/, and the evaluation datasets (frames, ground truth, db_info.yml)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.lines  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.patheffects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.transforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from vos_datasets.fileio import atomic_path  # noqa: E402
from vos_datasets.masks import read_label_png  # noqa: E402
from vos_datasets.sequence import opened_image  # noqa: E402

from .published import Published, PublishedRow, PublishedTable  # noqa: E402
from .render import CellSource, evaluation_for  # noqa: E402
from .seeds import repeat_of  # noqa: E402

DECAY_BINS = 10
DECAY_COLOUR = "tab:blue"
QUALITATIVE_FRAMES = 5
# Object colours of the overlays (object ids 1..): Okabe-Ito's colour-blind-safe qualitative palette, saturated
# so that they stand out on the grey frames, then tab10's remaining hues; as RGB in 0..1.
OBJECT_COLOURS = np.array([[213, 94, 0], [0, 114, 178], [0, 158, 115], [204, 121, 167], [230, 159, 0],
                           [86, 180, 233], [240, 228, 66], [148, 103, 189], [140, 86, 75], [188, 189, 34]],
                          dtype=np.float32) / 255


@dataclass(frozen=True)
class EvaluationData:
    """Where an evaluation's frames and ground truth are (from the workflow's dataset spec)."""

    name: str
    root: Path
    sequences: list[str] | None = None
    qualitative_sequence: str | None = None


def save(figure: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)
    return path


def per_object_jf(results: Path, evaluation: str, row: str) -> pd.Series:
    """J&F of every object (index "<sequence>_<id>") from the official per-sequence CSV."""
    table = pd.read_csv(results / evaluation / row / "scores" / f"per-sequence_results-{evaluation}.csv")
    return pd.Series(((table["J-Mean"] + table["F-Mean"]) / 2).to_numpy() * 100, index=table["Sequence"])


FIRST_FRAME_COPY = "first_frame_copy"  # the summary's method of the lower bound: it computes nothing, so its
# FPS (thousands: a file copy) is no speed to compare and gets no point on the speed axis
FAMILY_COLOURS = {"FRTM": "tab:blue", "LWL": "tab:green"}  # the papers' own published rows; others grey
REPRODUCED_COLOURS = {"FRTM": "tab:red", "LWL": "tab:purple"}  # this run's rows; others orange
PAPERS = {"frtm": "FRTM", "lwl": "LWL"}  # a source key's or a summary method's prefix -> the method's name


def device_kind(device: object) -> str:
    """CPU or GPU, from a timing's device ("cpu", "cuda:0", or a machine description)."""
    text = str(device).lower()
    return "GPU" if "cuda" in text or "gpu" in text else "CPU"


def _family(name: str) -> str | None:
    return next((family for family in FAMILY_COLOURS if name.upper().startswith(family)), None)


def published_name(table: PublishedTable, row: PublishedRow) -> str:
    """A published row's name in the figure: the paper's own rows carry their method ("Ours" -> "FRTM Ours"),
    and every published point says it is the paper's number on the paper's GPU."""
    label = row.label
    paper = PAPERS.get((row.source or table.source).split("-")[0])
    if row.candidates and paper and not _family(label):
        label = f"{paper} {label}"
    return f"{label} (paper, GPU)"


def reproduced_names(rows: pd.DataFrame, exact: bool) -> dict[str, str]:
    """Row key -> its name in the figure, e.g. "FRTM Ours (CPU, stand-in data)": method, hardware of its FPS, and
    whether its J&F is on the benchmark itself or a stand-in. Two rows with one label also carry their keys."""
    names = {}
    for _, record in rows.iterrows():
        label = str(record["label"])
        paper = PAPERS.get(str(record.get("method", "")))
        if paper and not _family(label):
            label = f"{paper} {label}"
        names[record["row"]] = (label, f"{device_kind(record.get('device', ''))}, "
                                       f"{'this run' if exact else 'stand-in data'}")
    labels = [label for label, _ in names.values()]
    return {row: (f"{label} [{row}]" if labels.count(label) > 1 else label) + f" ({where})"
            for row, (label, where) in names.items()}


def _free(box: matplotlib.transforms.Bbox, taken: list) -> bool:
    return not any(box.overlaps(other) for other in taken)


def _place_numbers(ax: plt.Axes, points: list[tuple[float, float, int, str]],
                   lines: list[tuple[float, str, str]] = ()) -> None:
    """Each point's legend number next to it, at the first of a ring of offsets where it overlaps neither another
    number nor a marker (greedy, in display space), with a thin leader line when it had to move away; before
    them each horizontal line's (y, text, colour) label, at the end of the line or its middle where it is free."""
    figure = ax.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    pad = 5.5 * figure.dpi / 72  # a marker's half size in pixels (a star's)
    taken = []
    for x, y, _, _ in points:
        cx, cy = ax.transData.transform((x, y))
        taken.append(matplotlib.transforms.Bbox([[cx - pad, cy - pad], [cx + pad, cy + pad]]))
    for y, words, colour in lines:
        text = None
        for x, ha in ((1, "right"), (0, "left"), (0.5, "center")):
            for dy, va in ((2, "bottom"), (-2, "top")):
                if text is not None:
                    text.remove()
                text = ax.annotate(words, (x, y), xycoords=("axes fraction", "data"), xytext=(3 - 6 * x, dy),
                                   textcoords="offset points", ha=ha, va=va, fontsize=7, color=colour)
                if _free(text.get_window_extent(renderer), taken):
                    break
            else:
                continue
            break
        taken.append(text.get_window_extent(renderer))
    inside = ax.get_window_extent(renderer)
    rings = [(radius, angle + 15 * (ring % 2)) for ring, radius in enumerate((7, 10, 14, 20, 27, 35, 45, 57, 70))
             for angle in range(0, 360, 30)]
    for x, y, number, colour in points:
        scored = []
        for radius, angle in rings:
            text = _number_at(ax, (x, y), number, colour, radius, angle)
            box = _text_extent(text, renderer)
            text.remove()
            outside = not (inside.containsx(box.x0) and inside.containsx(box.x1) and inside.containsy(box.y0)
                           and inside.containsy(box.y1))
            scored.append((1000 * outside + sum(box.overlaps(other) for other in taken), radius, angle))
            if scored[-1][0] == 0:
                break
        _, radius, angle = min(scored)  # the first free place, else the one with fewest overlaps
        taken.append(_text_extent(_number_at(ax, (x, y), number, colour, radius, angle), renderer))


def _text_extent(text: matplotlib.text.Annotation, renderer) -> matplotlib.transforms.Bbox:
    """An annotation's text alone, without its leader line (which may cross other labels)."""
    text.update_positions(renderer)
    return matplotlib.text.Text.get_window_extent(text, renderer)


def _number_at(ax: plt.Axes, xy: tuple[float, float], number: int, colour: str, radius: float,
               angle: float) -> matplotlib.text.Annotation:
    """A point's number `radius` points away from it in direction `angle` (degrees), a leader line beyond 10."""
    dx, dy = radius * np.cos(np.radians(angle)), radius * np.sin(np.radians(angle))
    return ax.annotate(str(number), xy, xytext=(dx, dy), textcoords="offset points",
                       ha="left" if dx > 1 else "right" if dx < -1 else "center",
                       va="bottom" if dy > 1 else "top" if dy < -1 else "center",
                       fontsize=7, color=colour, fontweight="bold", zorder=6,
                       arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5, "shrinkA": 0, "shrinkB": 3}
                       if radius > 10 else None)


@dataclass(frozen=True)
class SpeedPoint:
    name: str
    fps: float
    jf: float
    marker: str
    colour: str


def speed_points(summary: pd.DataFrame, published: Published, evaluations: dict,
                 benchmark: str) -> tuple[list[SpeedPoint], list[SpeedPoint], CellSource | None]:
    """The published points on `benchmark` (J&F and FPS both printed), this run's points on the evaluation
    that scores it or stands in for it, and the lower bounds (first-frame copy: J&F only, fps NaN)."""
    points, bounds, seen = [], [], set()
    for table in published.tables.values():
        jf = next((i for i, c in enumerate(table.columns) if c.benchmark == benchmark and c.metric == "J&F-Mean"), None)
        fps = next((i for i, c in enumerate(table.columns) if c.metric == "FPS"), None)
        if jf is None or fps is None:
            continue
        for row in table.rows:
            if row.values[jf] is None or row.values[fps] is None or row.values[fps] <= 0:
                continue
            name = published_name(table, row)
            if name not in seen:
                seen.add(name)
                colour = FAMILY_COLOURS.get(_family(name), "0.5") if row.candidates else "0.5"
                points.append(SpeedPoint(name, row.values[fps], row.values[jf], "o", colour))
    source = evaluation_for(benchmark, evaluations)
    if source is not None:
        rows = summary[(summary["evaluation"] == source.evaluation) & summary["J&F-Mean"].notna()]
        names = reproduced_names(rows, source.exact)
        for _, record in rows.iterrows():
            jf = 100 * float(record["J&F-Mean"])
            if record.get("method") == FIRST_FRAME_COPY:
                name = f"{record['label']}, {'this run' if source.exact else 'stand-in data'}"
                bounds.append(SpeedPoint(name, float("nan"), jf, "", "tab:red"))
            elif pd.notna(record["FPS"]) and record["FPS"] > 0:
                colour = REPRODUCED_COLOURS.get(_family(names[record["row"]]), "tab:orange")
                points.append(SpeedPoint(names[record["row"]], float(record["FPS"]), jf, "*", colour))
    return points, bounds, source


SPEED_BENCHMARKS = (("davis2017-val", "DAVIS 2017 val"), ("davis2016-val", "DAVIS 2016 val"))


def speed_panels(evaluations: dict) -> list[list[tuple[str, str]]]:
    """The speed plot's panels, as the (benchmark, title) pairs each shows: one per benchmark the preset
    measures, one for all the benchmarks a single stand-in evaluation fills (its stars would be the same in
    each), none for a benchmark not measured; where none is, the first benchmark's published points alone."""
    panels: list[list[tuple[str, str]]] = []
    sources: list[CellSource] = []
    for benchmark, title in SPEED_BENCHMARKS:
        source = evaluation_for(benchmark, evaluations)
        if source is None:
            continue
        if not source.exact and source in sources:
            panels[sources.index(source)].append((benchmark, title))
        else:
            panels.append([(benchmark, title)])
            sources.append(source)
    return panels or [[SPEED_BENCHMARKS[0]]]


def _panel_title(benchmarks: list[tuple[str, str]], source: CellSource | None) -> str:
    """What a speed panel's circles and stars are measured on."""
    titles = [title for _, title in benchmarks]
    if source is None:
        return f"{titles[0]}: published (circles); not evaluated by this preset"
    if source.exact:
        return f"{titles[0]}\npublished (circles) and reproduced (stars, {source.evaluation})"
    return (f"stars: {source.evaluation}, a stand-in for {' and '.join(titles)}\n"
            f"circles: published on {titles[0]}")


def speed_accuracy_figure(summary: pd.DataFrame, published: Published, evaluations: dict,
                          hardware: str) -> plt.Figure:
    """FPS (log scale) against J&F, one panel per DAVIS benchmark measured (speed_panels): the papers' points
    (circles, their GPUs) and this run's (stars, this run's hardware), each numbered and named in the legend
    (one number per name in every panel, published first); the first-frame copy, which computes nothing, is a
    dotted J&F line, not a point."""
    panels = speed_panels(evaluations)
    data = [speed_points(summary, published, evaluations, benchmarks[0][0]) for benchmarks in panels]
    ordered = [p for points, _, _ in data for p in points if p.marker == "o"]
    ordered += [p for points, _, _ in data for p in points if p.marker != "o"]
    numbers: dict[str, int] = {}
    legend: list[matplotlib.lines.Line2D] = []
    for point in ordered:
        if point.name not in numbers:
            numbers[point.name] = len(numbers) + 1
            legend.append(matplotlib.lines.Line2D([], [], marker=point.marker, color=point.colour, linestyle="none",
                                                  markersize=6 if point.marker == "o" else 10,
                                                  label=f"{numbers[point.name]}  {point.name}"))
    bound_names: set[str] = set()
    figure, axes = plt.subplots(1, len(panels), figsize=(max(8.5, 6.5 * len(panels)), 5.6), dpi=110, squeeze=False)
    axes = axes[0]
    for ax, benchmarks, (points, bounds, source) in zip(axes, panels, data, strict=True):
        for point in points:
            ax.scatter(point.fps, point.jf, marker=point.marker, s=40 if point.marker == "o" else 120,
                       color=point.colour, edgecolors="white", linewidths=0.5, zorder=3 if point.marker == "o" else 4)
        for bound in bounds:
            ax.axhline(bound.jf, color=bound.colour, linestyle=":", linewidth=1.2, zorder=2)
            if bound.name not in bound_names:
                bound_names.add(bound.name)
                legend.append(matplotlib.lines.Line2D([], [], color=bound.colour, linestyle=":", label=(
                    f"{bound.name}: J&F only (copies the given frame; its FPS times no method)")))
        ax.set_xscale("log")
        ax.set_xlabel("frames per second (log scale)\ncircles: papers' GPUs; stars: this run's hardware", fontsize=8)
        ax.set_ylabel("J&F (%)")
        ax.set_title(_panel_title(benchmarks, source), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    figure.suptitle(f"Speed vs accuracy. Circles' and stars' FPS are not comparable: the papers measured on "
                    f"their GPUs, this run on {hardware}", fontsize=10)
    figure.tight_layout()  # before the numbers: their places are found in display space
    for ax, (points, bounds, _) in zip(axes, data, strict=True):
        _place_numbers(ax, [(p.fps, p.jf, numbers[p.name], p.colour) for p in points],
                       [(b.jf, "first-frame copy", b.colour) for b in bounds])
    figure.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2 if len(panels) == 1 else 3,
                  fontsize=7.5, title="numbered points" + (" (one number per method in every panel)"
                                                           if len(panels) > 1 else ""), title_fontsize=8, frameon=False)
    return figure


def speed_accuracy(summary: pd.DataFrame, published: Published, evaluations: dict, hardware: str,
                   out: Path) -> Path:
    return save(speed_accuracy_figure(summary, published, evaluations, hardware), out)


def object_scores(summary: pd.DataFrame, results: Path, evaluation: str) -> dict[str, pd.Series]:
    """Row label -> J&F of every object, for each row of one evaluation."""
    rows = summary[summary["evaluation"] == evaluation]
    return {record["label"]: per_object_jf(results, evaluation, record["row"]) for _, record in rows.iterrows()}


def per_sequence(scores: dict[str, pd.Series], evaluation: str, out: Path) -> Path:
    """Heat map of J&F: one line per method (methods with identical scores share one, "A = B"), one column per
    object (sequence_id)."""
    table = pd.DataFrame(merged(scores)).T
    width = max(6.0, 0.45 * table.shape[1] + 3)
    figure, ax = plt.subplots(figsize=(width, 0.4 * len(table) + 2))
    image = ax.imshow(table.to_numpy(), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=70, fontsize=7)
    ax.set_yticks(range(len(table)), table.index, fontsize=8)
    if table.size <= 600:
        for (i, j), value in np.ndenumerate(table.to_numpy()):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6,
                    color="white" if value < 55 else "black")
    figure.colorbar(image, ax=ax, label="J&F (%)", fraction=0.03)
    ax.set_title(f"J&F per sequence (object) on {evaluation}")
    return save(figure, out)


def decay_curves(per_frame: pd.DataFrame, bins: int = DECAY_BINS) -> pd.DataFrame:
    """Mean J and F (%) over objects per bin of normalised time (0 = first scored frame, 1 = last)."""
    frame = per_frame.sort_values(["Sequence", "Object", "Frame"]).copy()
    position = frame.groupby(["Sequence", "Object"]).cumcount()
    count = frame.groupby(["Sequence", "Object"])["Frame"].transform("size")
    frame["t"] = np.where(count > 1, position / (count - 1).clip(lower=1), 0.0)
    frame["bin"] = np.minimum((frame["t"] * bins).astype(int), bins - 1)
    per_object = frame.groupby(["Sequence", "Object", "bin"])[["J", "F"]].mean()
    curves = per_object.groupby("bin").mean() * 100
    curves.index = (curves.index + 0.5) / bins
    return curves


def same_values(series: dict[str, pd.DataFrame | pd.Series]) -> dict[str, list[str]]:
    """Names grouped by identical values (first name -> every name with those values, in order): rows that give
    the same figures (e.g. a variant the preset runs with the same weights) are drawn once with all their names,
    not as a line or a heat-map row hiding another."""
    groups: dict[str, list[str]] = {}
    for name, values in series.items():
        twin = next((first for first in groups if series[first].shape == values.shape
                     and np.allclose(series[first].to_numpy(dtype=float), values.to_numpy(dtype=float),
                                     rtol=0, atol=1e-9, equal_nan=True)), None)
        groups.setdefault(twin or name, []).append(name)
    return groups


def merged(scores: dict[str, pd.Series]) -> dict[str, pd.Series]:
    """`scores` with the rows of identical values as one, named "A = B"."""
    return {" = ".join(names): scores[first] for first, names in same_values(scores).items()}


DECAY_COLUMNS = 4


def decay_figure(curves: dict[str, pd.DataFrame], evaluation: str, reference: str | None = None) -> plt.Figure:
    """Small multiples: one panel per method (rows with identical curves share one, named "A = B"), its J (solid)
    and F (dashed) over normalised time on one shared scale, with the `reference` method (the first-frame copy)
    in grey in every other panel: each method's decay reads at a glance, none hidden under another."""
    groups = same_values(curves)
    columns = min(DECAY_COLUMNS, len(groups))
    lines = -(-len(groups) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.3 * columns, 2.5 * lines + 0.8), sharex=True,
                                sharey=True, squeeze=False)
    for ax, (first, names) in zip(axes.ravel(), groups.items(), strict=False):
        if reference is not None and reference not in names:
            for measure, style in (("J", "-"), ("F", "--")):
                ax.plot(curves[reference].index, curves[reference][measure], color="0.7", linestyle=style, lw=1)
        for measure, style in (("J", "-"), ("F", "--")):
            ax.plot(curves[first].index, curves[first][measure], color=DECAY_COLOUR, linestyle=style, marker=".",
                    lw=1.5)
        ax.set_title("\n= ".join(names), fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_ylim(-3, 103)
    for ax in axes.ravel()[len(groups):]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("J, F (%)")
    for ax in axes[-1]:
        ax.set_xlabel("normalised time (0 = first scored frame, 1 = last)", fontsize=7)
        ax.xaxis.set_tick_params(labelbottom=True)
    handles = [matplotlib.lines.Line2D([], [], color=DECAY_COLOUR, linestyle="-", marker=".", label="J (region)"),
               matplotlib.lines.Line2D([], [], color=DECAY_COLOUR, linestyle="--", marker=".", label="F (boundary)")]
    if reference is not None:
        handles.append(matplotlib.lines.Line2D([], [], color="0.7", label=f"{reference}: J, F (for reference)"))
    figure.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.45 / (2.5 * lines + 0.8)),
                  ncol=len(handles), fontsize=8, frameon=False)
    figure.suptitle(f"J and F over time on {evaluation} (mean over objects, {DECAY_BINS} bins of each video); "
                    "one panel per method, identical methods share one", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.75 / (2.5 * lines + 0.8)))
    return figure


def decay(summary: pd.DataFrame, results: Path, evaluation: str, out: Path) -> Path:
    rows = summary[summary["evaluation"] == evaluation]
    curves, reference = {}, None
    for _, record in rows.iterrows():
        path = results / evaluation / record["row"] / "scores" / f"per-frame_results-{evaluation}.csv"
        curves[record["label"]] = decay_curves(pd.read_csv(path, dtype={"Frame": str}))
        if record.get("method") == FIRST_FRAME_COPY:
            reference = record["label"]
    return save(decay_figure(curves, evaluation, reference), out)


def read_attributes(root: Path) -> dict[str, list[str]] | None:
    """sequence -> DAVIS attributes (OCC, FM, ...) from the dataset's db_info.yml, if it has one."""
    for candidate in (root / "db_info.yml", root / "db_info.yaml", root / "Annotations" / "db_info.yml"):
        if candidate.is_file():
            info = yaml.safe_load(candidate.read_text())
            return {entry["name"]: list(entry.get("attributes", [])) for entry in info["sequences"]}
    return None


# An attribute's column needs this many sequences: with fewer, one video weighs over a fifth of its mean, which
# then tells that video's difficulty, not the attribute's (DAVIS 2016 val, 20 videos, keeps 13 of its 16).
MIN_ATTRIBUTE_SEQUENCES = 5


def _no_attributes(text: str) -> plt.Figure:
    figure, ax = plt.subplots(figsize=(9, 1.2))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9)
    ax.set_axis_off()
    return figure


def attributes(scores: dict[str, pd.Series], evaluation: EvaluationData, out: Path) -> Path:
    return save(attributes_figure(scores, evaluation), out)


def attributes_figure(scores: dict[str, pd.Series], evaluation: EvaluationData) -> plt.Figure:
    """Mean J&F over the objects of the sequences that have each attribute carried by at least
    MIN_ATTRIBUTE_SEQUENCES sequences (methods with identical scores share one line, "A = B"); a line of text
    where there is no db_info.yml or no such attribute."""
    sequence_attributes = read_attributes(evaluation.root)
    if not sequence_attributes:
        return _no_attributes(f"{evaluation.root} has no db_info.yml: no attributes to group by")
    scores = merged(scores)
    objects = next(iter(scores.values())).index
    sequences = sorted({name.rsplit("_", 1)[0] for name in objects})
    counts = {"all": len(sequences)}
    for attribute in sorted({a for s in sequences for a in sequence_attributes.get(s, [])}):
        counts[attribute] = sum(attribute in sequence_attributes.get(s, []) for s in sequences)
    present = [a for a, count in counts.items() if a != "all" and count >= MIN_ATTRIBUTE_SEQUENCES]
    left_out = ", ".join(f"{a} ({count})" for a, count in counts.items() if a != "all" and a not in present)
    if not present:
        return _no_attributes(f"J&F per attribute on {evaluation.name}: not drawn. An attribute needs "
                              f"{MIN_ATTRIBUTE_SEQUENCES} sequences (with fewer, one video weighs over a fifth of its "
                              f"mean);\n{evaluation.name} has {len(sequences)} sequences"
                              + (f", the attributes (sequences): {left_out}" if left_out else ""))
    figure, ax = plt.subplots(figsize=(11, 0.4 * len(scores) + 2.2))
    table = pd.DataFrame(index=list(scores), columns=["all", *present], dtype=float)
    for label, series in scores.items():
        table.loc[label, "all"] = series.mean()
    for attribute in present:
        members = [o for o in objects if attribute in sequence_attributes.get(o.rsplit("_", 1)[0], [])]
        for label, series in scores.items():
            table.loc[label, attribute] = series[members].mean()
    image = ax.imshow(table.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(table.columns)), [f"{a}\n({counts[a]})" for a in table.columns], fontsize=8)
    ax.set_yticks(range(len(table)), table.index, fontsize=8)
    for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
        ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color="white" if value < 55 else "black")
    figure.colorbar(image, ax=ax, label="J&F (%)", fraction=0.03)
    ax.set_title(f"J&F per attribute on {evaluation.name} (db_info.yml; in brackets: sequences with it)"
                 + (f"\nleft out, under {MIN_ATTRIBUTE_SEQUENCES} sequences: {left_out}" if left_out else ""))
    return figure


def _greyscale(image: np.ndarray) -> np.ndarray:
    """The frame as light, low-contrast grey (RGB): the overlays are then the only colours in a panel, so no
    object's own colour reads as a mask."""
    grey = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.repeat((60 + 0.7 * grey)[..., None], 3, axis=2)


def _overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The frame in grey (_greyscale) with each object's region tinted in its OBJECT_COLOURS entry."""
    out = _greyscale(image)
    for oid in np.unique(labels):
        if oid == 0 or oid == 255:
            continue
        region = labels == oid
        out[region] = (1 - alpha) * out[region] + alpha * object_colour(int(oid)) * 255
    return out.clip(0, 255).astype(np.uint8)


def object_colour(oid: int) -> np.ndarray:
    return OBJECT_COLOURS[(oid - 1) % len(OBJECT_COLOURS)]


def _outline(ax: plt.Axes, labels: np.ndarray, linestyle: str) -> None:
    """Each object's outline in its colour over a thin black edge (visible on light and dark grey)."""
    halo = [matplotlib.patheffects.Stroke(linewidth=3.2, foreground="black"), matplotlib.patheffects.Normal()]
    for oid in np.unique(labels):
        if oid == 0 or oid == 255:
            continue
        contour = ax.contour((labels == oid).astype(np.float32), levels=[0.5], colors=[object_colour(int(oid))],
                             linewidths=1.6, linestyles=linestyle)
        contour.set_path_effects(halo)


def _read_labels(path: Path, like: np.ndarray | None = None) -> np.ndarray:
    if not path.is_file():
        return np.zeros_like(like)
    # the data layer's reader: DAVIS 2016's 0/255 masks as object 1, a damaged or oversized PNG as one
    # MaskFormatError naming it
    return read_label_png(path)


def qualitative_figure(record: pd.Series, results: Path, evaluation: EvaluationData, sequence: str) -> plt.Figure:
    """One method on one sequence, the frames in grey so that only the overlays have colour: its masks (top,
    tinted, solid outline), the ground truth (middle, dashed outline) and, for FRTM, the target model's coarse
    score maps of the first object (bottom) on one diverging scale around 0, with its colour bar."""
    masks_dir = results / evaluation.name / record["row"] / "masks" / sequence
    names = sorted(p.stem for p in masks_dir.glob("*.png"))
    picks = [names[i] for i in np.linspace(0, len(names) - 1, min(QUALITATIVE_FRAMES, len(names))).round().astype(int)]
    maps_file = results / evaluation.name / record["row"] / "score-maps" / f"{sequence}.npz"
    maps = dict(np.load(maps_file)) if maps_file.is_file() else {}
    shown = {}  # frame -> (key, map) of the first object with a map on that frame
    for frame in picks:
        keys = sorted((k for k in maps if k.startswith(f"{frame}_")), key=lambda k: int(k.split("_")[1]))
        if keys:
            shown[frame] = (keys[0], maps[keys[0]])
    lines = 3 if maps else 2
    with opened_image(evaluation.root / "JPEGImages" / "480p" / sequence / f"{picks[0]}.jpg") as first:
        panel = 2.5 * first.height / first.width  # a panel's height (inches) at 2.5 inches wide
    width, height = 2.6 * len(picks) + 1.2, (panel + 0.3) * lines + 0.9
    figure = plt.figure(figsize=(width, height), dpi=110)
    grid = figure.add_gridspec(lines, len(picks) + 1, width_ratios=[1] * len(picks) + [0.06], wspace=0.04,
                               hspace=0.3 / panel, left=0.5 / width, right=1 - 0.7 / width, top=1 - 0.55 / height,
                               bottom=0.35 / height)
    axes = np.array([[figure.add_subplot(grid[line, column]) for column in range(len(picks))]
                     for line in range(lines)])
    objects = set()
    limit = max((float(np.abs(score).max()) for _, score in shown.values()), default=1.0) or 1.0
    image_map = None
    for column, frame in enumerate(picks):
        with opened_image(evaluation.root / "JPEGImages" / "480p" / sequence / f"{frame}.jpg") as frame_image:
            image = np.array(frame_image.convert("RGB"))
        predicted = _read_labels(masks_dir / f"{frame}.png")
        truth = _read_labels(evaluation.root / "Annotations" / "480p" / sequence / f"{frame}.png", predicted)
        objects |= {int(o) for o in np.unique(np.r_[predicted.ravel(), truth.ravel()]) if o not in (0, 255)}
        axes[0, column].imshow(_overlay(image, predicted))
        _outline(axes[0, column], predicted, "solid")
        axes[0, column].set_title(frame, fontsize=8)
        axes[1, column].imshow(_greyscale(image).astype(np.uint8))
        _outline(axes[1, column], truth, "dashed")
        if lines == 3:
            if frame in shown:
                key, score = shown[frame]
                image_map = axes[2, column].imshow(score, cmap="RdBu_r", vmin=-limit, vmax=limit)
                axes[2, column].set_title(f"D scores, object {key.split('_')[1]}", fontsize=7)
            else:
                axes[2, column].text(0.5, 0.5, "given frame\n(no score map)", ha="center", va="center", fontsize=7,
                                     transform=axes[2, column].transAxes)
                axes[2, column].set_frame_on(False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("prediction\n(tint, solid)", fontsize=8)
    axes[1, 0].set_ylabel("ground truth\n(dashed)", fontsize=8)
    if lines == 3:
        axes[2, 0].set_ylabel("target model D", fontsize=8)
        bar_axes = figure.add_subplot(grid[2, len(picks)])
        if image_map is not None:
            bar = figure.colorbar(image_map, cax=bar_axes)
            bar.set_label("D score (high: target)", fontsize=7)
            bar.ax.tick_params(labelsize=6)
        else:
            bar_axes.set_axis_off()
    handles = [matplotlib.patches.Patch(facecolor=object_colour(o), edgecolor="black", label=f"object {o}")
               for o in sorted(objects)]
    handles += [matplotlib.lines.Line2D([], [], color="0.2", linestyle="solid", label="prediction"),
                matplotlib.lines.Line2D([], [], color="0.2", linestyle="dashed", label="ground truth")]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False,
                  bbox_to_anchor=(0.5, 0.0))
    figure.suptitle(f"{record['label']} on {evaluation.name}/{sequence} (frames in grey: colour is only overlay)",
                    fontsize=10)
    return figure


def qualitative_strip(record: pd.Series, results: Path, evaluation: EvaluationData, sequence: str,
                      out: Path) -> Path:
    return save(qualitative_figure(record, results, evaluation, sequence), out)


def qualitative_sequence(evaluation: EvaluationData, summary: pd.DataFrame, results: Path) -> str:
    """The configured sequence, else the one whose FRTM score maps were kept, else the first by name."""
    if evaluation.qualitative_sequence:
        return evaluation.qualitative_sequence
    rows = summary[summary["evaluation"] == evaluation.name]
    for row in rows["row"]:
        maps = sorted((results / evaluation.name / row / "score-maps").glob("*.npz"))
        if maps:
            return maps[0].stem
    masks = results / evaluation.name / rows["row"].iloc[0] / "masks"
    return min(p.name for p in masks.iterdir() if p.is_dir())


def evaluation_figures(summary: pd.DataFrame, evaluation: EvaluationData, results: Path, out_dir: Path) -> list[Path]:
    """Per-sequence, decay and attribute figures of one evaluation, and a qualitative strip per row in
    out_dir/qualitative-<evaluation>/."""
    name = evaluation.name
    scores = object_scores(summary, results, name)
    paths = [per_sequence(scores, name, out_dir / f"per_sequence-{name}.png"),
             decay(summary, results, name, out_dir / f"decay-{name}.png"),
             attributes(scores, evaluation, out_dir / f"attributes-{name}.png")]
    sequence = qualitative_sequence(evaluation, summary, results)
    for _, record in summary[summary["evaluation"] == name].iterrows():
        path = out_dir / f"qualitative-{name}" / f"{record['row']}.png"
        paths.append(qualitative_strip(record, results, evaluation, sequence, path))
    return paths


TRAINING_COLUMNS = 3
VALIDATION_SKIP = {"loss", "samples", "seconds"}  # a validation entry's keys that are no score to plot


def read_history(path: Path) -> dict:
    """A training's head.json: {"config": ..., "history": [{"epoch", "loss", "seconds", "samples", ...,
    optionally "validation": {"loss", "J", ...}}, ...]}."""
    return json.loads(Path(path).read_text())


def training_title(name: str, config: dict) -> str:
    """The training's name and what it trains, from its config (FRTM: the head; LWL: the stage)."""
    if "head" in config:
        what = f"FRTM {config['head']}"
    elif "stage" in config:
        what = f"LWL stage {config['stage']}" + (", box encoder" if config.get("box_encoder") else "")
    else:
        what = ""
    return f"{name} ({what})" if what else name


def _log_scale_if_wide(ax: plt.Axes, losses: list[float]) -> None:
    """A logarithmic loss axis where the losses span a factor of ten or more (LWL's start in the hundreds and
    end near ten: on a linear axis their last epochs are a flat line)."""
    positive = [v for v in losses if np.isfinite(v) and v > 0]
    if positive and len(positive) == len(losses) and max(positive) / min(positive) >= 10:
        ax.set_yscale("log")
        ax.set_ylabel("loss (mean over the epoch, log scale)")


def training_panel(ax: plt.Axes, name: str, data: dict) -> plt.Axes | None:
    """Training loss per epoch (solid) and, where the history has them, the validation loss (dashed, same axis)
    and validation scores (squares, a second axis, returned); the loss axis is logarithmic when the losses
    span a factor of ten or more."""
    history = [entry for entry in data.get("history", []) if entry.get("loss") is not None]
    config = data.get("config", {})
    ax.set_title(training_title(name, config), fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean over the epoch)")
    ax.grid(alpha=0.3)
    if not history:
        ax.text(0.5, 0.5, "no epoch recorded", ha="center", va="center", transform=ax.transAxes)
        return None
    epochs = np.array([entry["epoch"] + 1 for entry in history])
    losses = np.array([float(entry["loss"]) for entry in history])
    ax.plot(epochs, losses, marker="o", markersize=4, color="tab:blue", label="training loss")
    held = [(entry["epoch"] + 1, entry["validation"]) for entry in history if entry.get("validation")]
    shown = list(losses)
    if any("loss" in scores for _, scores in held):
        points = [(epoch, float(scores["loss"])) for epoch, scores in held if "loss" in scores]
        ax.plot(*zip(*points, strict=True), marker="s", markersize=4, linestyle="--", color="tab:orange",
                label="validation loss")
        shown += [loss for _, loss in points]
    _log_scale_if_wide(ax, shown)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if len(epochs) == 1:
        ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        if ax.get_yscale() == "linear":  # the lone points apart from the frame, under the epoch count
            ax.set_ylim(0, 1.3 * max(shown))
    seconds = sum(float(entry.get("seconds", 0)) for entry in history)
    samples = history[-1].get("samples")
    ax.text(0.98, 0.97, f"{len(history)} epoch{'s' if len(history) > 1 else ''}"
            + (f", {samples} samples each" if samples else "")
            + (f", {seconds / 60:.1f} min" if seconds >= 120 else f", {seconds:.0f} s"),
            transform=ax.transAxes, ha="right", va="top", fontsize=7, color="0.3", zorder=5,
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1})  # readable over a curve
    handles = ax.get_lines()
    scores = sorted({key for _, values in held for key in values if key not in VALIDATION_SKIP})
    twin = None
    if scores:
        twin = ax.twinx()
        for key, colour in zip(scores, ["tab:green", "tab:red", "tab:purple", "tab:brown"], strict=False):
            points = [(epoch, float(values[key])) for epoch, values in held if key in values]
            handles += twin.plot(*zip(*points, strict=True), marker="s", markersize=5, color=colour,
                                 linestyle=":", label=f"validation {key}")
        twin.set_ylabel("validation score (held-out samples)")
        top = max(float(values[key]) for _, values in held for key in scores if key in values)
        twin.set_ylim(0, 1.05 if top <= 1 else top * 1.05)
    for axis in (ax, twin):
        if axis is not None:
            _label_lone_points(axis)
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(handles),
              frameon=False)
    return twin


def _label_lone_points(ax: plt.Axes) -> None:
    """A curve of one point (a training of one epoch, a single held-out measure) is no line to read: a larger
    marker with its name and value beside it."""
    for line in ax.get_lines():
        if len(line.get_xdata()) != 1:
            continue
        x, y = float(line.get_xdata()[0]), float(line.get_ydata()[0])
        line.set_markersize(8)
        ax.annotate(f"{line.get_label()} {y:.3g}", (x, y), xytext=(8, 0), textcoords="offset points", fontsize=7,
                    va="center", color=line.get_color(), zorder=6)


def seeds_panel(ax: plt.Axes, name: str, runs: dict[int, dict]) -> None:
    """A training retrained at several seeds (seed -> head.json's content): each seed's training loss per epoch
    (solid) and held-out J (dotted, second axis) in one colour per seed: how far the seeds' trainings part."""
    ax.set_title(f"{training_title(name, next(iter(runs.values())).get('config', {}))}: "
                 f"seeds {', '.join(map(str, runs))}", fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean over the epoch)")
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    twin, handles, shown = None, [], []
    for (seed, data), colour in zip(runs.items(), plt.get_cmap("tab10").colors, strict=False):
        history = [entry for entry in data.get("history", []) if entry.get("loss") is not None]
        if not history:
            continue
        losses = [float(entry["loss"]) for entry in history]
        shown += losses
        handles += ax.plot([entry["epoch"] + 1 for entry in history], losses, color=colour, marker="o", markersize=3,
                           label=f"seed {seed}: loss")
        held = [(entry["epoch"] + 1, float(entry["validation"]["J"])) for entry in history
                if (entry.get("validation") or {}).get("J") is not None]
        if held:
            twin = twin or ax.twinx()
            handles += twin.plot(*zip(*held, strict=True), color=colour, marker="s", markersize=4, linestyle=":",
                                 label=f"seed {seed}: held-out J")
    _log_scale_if_wide(ax, shown)
    if max((len(data.get("history", [])) for data in runs.values()), default=0) == 1:
        ax.set_xlim(0, 2)
    if twin is not None:
        twin.set_ylabel("held-out J")
        twin.set_ylim(0, 1.05)
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)


def training_figure(histories: dict[str, dict]) -> plt.Figure:
    """One panel per training of the preset (training name -> its head.json's content), then one per training
    the preset retrained at other seeds (its repeats `<name>.seed-<n>`, reporting.seeds) with every seed's
    curves."""
    panels, repeats = [], {}
    for name, data in histories.items():
        found = repeat_of(name)
        if found:
            repeats.setdefault(found[0], {})[found[1]] = data
        else:
            panels.append((training_panel, name, data))
    for base, runs in repeats.items():
        if base in histories:
            runs[int(histories[base].get("config", {}).get("seed", 0))] = histories[base]
        panels.append((seeds_panel, base, dict(sorted(runs.items()))))
    if not histories:
        figure, ax = plt.subplots(figsize=(6, 2), dpi=110)
        ax.text(0.5, 0.5, "this preset trains nothing (its rows use given weights)", ha="center", va="center")
        ax.set_axis_off()
        return figure
    columns = min(TRAINING_COLUMNS, len(panels))
    lines = -(-len(panels) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(5.2 * columns, 3.6 * lines), dpi=110, squeeze=False)
    for ax, (draw, name, data) in zip(axes.ravel(), panels, strict=False):
        draw(ax, name, data)
    for ax in axes.ravel()[len(panels):]:
        ax.set_axis_off()
    figure.suptitle("Training curves: loss per epoch (and held-out validation where the training measured it)",
                    fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.3 / (3.6 * lines)))  # keep 0.3 in at the top for the title
    return figure


def training_curves(paths: list[Path], out: Path) -> Path:
    """The training-curves figure from each training's results/<preset>/training/<name>/head.json."""
    histories = {Path(path).parent.name: read_history(path) for path in sorted(paths, key=lambda p: Path(p).parent.name)}
    return save(training_figure(histories), out)


def caption(path: Path, summary: pd.DataFrame | None = None) -> str:
    """The caption of a figure, from its file name (the names evaluation_figures and speed_accuracy use)."""
    stem, parent = path.stem, path.parent.name
    if stem == "speed_accuracy":
        return ("Speed vs accuracy: frames per second against J&F, one panel per benchmark measured, the papers' "
                "methods (circles, FPS on their GPUs) and this run's rows (stars, FPS on this run's hardware: the two "
                "speeds are not comparable), numbered and named in the legend; the first-frame copy is a J&F line, it "
                "has no speed to show.")
    if stem == "training-curves":
        return ("Training curves: the loss of every training this preset ran, per epoch, and its held-out "
                "validation where the training measured one; a training retrained at other seeds has a last "
                "panel with every seed's loss and held-out J (every seed measured on the same held-out samples).")
    if parent.startswith("qualitative-"):
        label = stem
        if summary is not None and (summary["row"] == stem).any():
            label = summary.loc[summary["row"] == stem, "label"].iloc[0]
        return (f"{label} on {parent.removeprefix('qualitative-')}: frames in grey, its masks (top, tinted), the "
                "ground truth (dashed outlines) and, for FRTM, the target model's coarse score maps (colour bar).")
    kind, _, evaluation = stem.partition("-")
    return {
        "per_sequence": f"J&F of every object of {evaluation}, one line per method (identical methods share one).",
        "decay": f"J and F over normalised time on {evaluation}: how each method degrades along the videos, one "
                 "panel per method (identical methods share one), the first-frame copy in grey for reference.",
        "attributes": f"J&F per DAVIS attribute (db_info.yml) on {evaluation}, for the attributes at least "
                      f"{MIN_ATTRIBUTE_SEQUENCES} sequences carry.",
    }.get(kind, stem)


def figure_list(out_dir: Path, summary: pd.DataFrame | None = None) -> list[tuple[Path, str]]:
    """Every figure under out_dir, in reading order, with its caption."""
    order = {"speed_accuracy": 0, "per_sequence": 1, "decay": 2, "attributes": 3, "training": 4}
    paths = sorted(out_dir.glob("*.png"), key=lambda p: (order.get(p.stem.partition("-")[0], 9), p.name))
    paths += sorted(out_dir.glob("qualitative-*/*.png"))
    return [(path, caption(path, summary)) for path in paths]
