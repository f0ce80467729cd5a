"""The report's figures (PNG): speed vs accuracy, J&F per sequence, J and F over normalised time (decay),
J&F per DAVIS attribute, and a qualitative strip per method (frames, predicted masks and, for FRTM, the
target model's score maps).

Inputs are what the workflow already wrote: the preset's summary.csv, each row's scores/*.csv, masks/
and score-maps/, and the evaluation datasets (frames, ground truth, db_info.yml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

from vos_datasets.fileio import atomic_path  # noqa: E402

from .published import Published  # noqa: E402
from .render import evaluation_for  # noqa: E402

DECAY_BINS = 10
QUALITATIVE_FRAMES = 5
# The DAVIS palette's first colours (object ids 1..), for mask overlays.
OBJECT_COLOURS = np.array([[128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128], [0, 128, 128],
                           [128, 128, 128], [64, 0, 0], [191, 0, 0], [64, 128, 0]], dtype=np.float32)


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


def speed_accuracy(summary: pd.DataFrame, published: Published, evaluations: dict, hardware: str,
                   out: Path) -> Path:
    """FPS (log scale) against J&F on DAVIS 2017 and 2016: the papers' points and this run's."""
    panels = [("davis2017-val", "DAVIS 2017 val"), ("davis2016-val", "DAVIS 2016 val")]
    figure, axes = plt.subplots(1, len(panels), figsize=(13, 5.2))
    for ax, (benchmark, title) in zip(axes, panels, strict=True):
        for table in published.tables.values():
            jf = next((i for i, c in enumerate(table.columns) if c.benchmark == benchmark and c.metric == "J&F-Mean"), None)
            fps = next((i for i, c in enumerate(table.columns) if c.metric == "FPS"), None)
            if jf is None or fps is None:
                continue
            for row in table.rows:
                if row.values[jf] is None or row.values[fps] is None or row.values[fps] <= 0:
                    continue
                mine = bool(row.candidates)
                ax.scatter(row.values[fps], row.values[jf], marker="o", s=45, zorder=3,
                           color="tab:blue" if mine else "0.55")
                ax.annotate(row.label, (row.values[fps], row.values[jf]), fontsize=7, xytext=(4, 2),
                            textcoords="offset points", color="tab:blue" if mine else "0.35")
        source = evaluation_for(benchmark, evaluations)
        if source is not None:
            rows = summary[(summary["evaluation"] == source.evaluation) & summary["J&F-Mean"].notna()]
            ax.scatter(rows["FPS"], 100 * rows["J&F-Mean"], marker="*", s=110, color="tab:red", zorder=4)
            for _, record in rows.iterrows():
                ax.annotate(record["label"], (record["FPS"], 100 * record["J&F-Mean"]), fontsize=7,
                            xytext=(4, -8), textcoords="offset points", color="tab:red")
            where = source.evaluation + ("" if source.exact else ", a stand-in")
        else:
            where = "not evaluated by this preset"
        ax.set_xscale("log")
        ax.set_xlabel("frames per second (log scale)")
        ax.set_ylabel("J&F (%)")
        ax.set_title(f"{title}\npublished (o, papers' GPUs) vs reproduced (*, {where})", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    figure.suptitle(f"Speed vs accuracy. Reproduced FPS measured on: {hardware}", fontsize=10)
    return save(figure, out)


def object_scores(summary: pd.DataFrame, results: Path, evaluation: str) -> dict[str, pd.Series]:
    """Row label -> J&F of every object, for each row of one evaluation."""
    rows = summary[summary["evaluation"] == evaluation]
    return {record["label"]: per_object_jf(results, evaluation, record["row"]) for _, record in rows.iterrows()}


def per_sequence(scores: dict[str, pd.Series], evaluation: str, out: Path) -> Path:
    """Heat map of J&F: one line per method, one column per object (sequence_id)."""
    table = pd.DataFrame(scores).T
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


def decay(summary: pd.DataFrame, results: Path, evaluation: str, out: Path) -> Path:
    rows = summary[summary["evaluation"] == evaluation]
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    colours = plt.cm.tab20(np.linspace(0, 1, max(len(rows), 2)))
    for colour, (_, record) in zip(colours, rows.iterrows(), strict=False):
        path = results / evaluation / record["row"] / "scores" / f"per-frame_results-{evaluation}.csv"
        curves = decay_curves(pd.read_csv(path, dtype={"Frame": str}))
        for ax, measure in zip(axes, ("J", "F"), strict=True):
            ax.plot(curves.index, curves[measure], marker=".", color=colour, label=record["label"])
    for ax, measure in zip(axes, ("J", "F"), strict=True):
        ax.set_xlabel("normalised time in the video (0 = first scored frame, 1 = last)")
        ax.set_ylabel(f"{measure} (%)")
        ax.set_title(f"{measure} over time on {evaluation} (mean over objects, {DECAY_BINS} bins)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save(figure, out)


def read_attributes(root: Path) -> dict[str, list[str]] | None:
    """sequence -> DAVIS attributes (OCC, FM, ...) from the dataset's db_info.yml, if it has one."""
    for candidate in (root / "db_info.yml", root / "db_info.yaml", root / "Annotations" / "db_info.yml"):
        if candidate.is_file():
            info = yaml.safe_load(candidate.read_text())
            return {entry["name"]: list(entry.get("attributes", [])) for entry in info["sequences"]}
    return None


def attributes(scores: dict[str, pd.Series], evaluation: EvaluationData, out: Path) -> Path:
    """Mean J&F over the objects of the sequences that have each attribute."""
    sequence_attributes = read_attributes(evaluation.root)
    figure, ax = plt.subplots(figsize=(11, 0.4 * len(scores) + 2.2))
    if not sequence_attributes:
        ax.text(0.5, 0.5, f"{evaluation.root} has no db_info.yml: no attributes to group by",
                ha="center", va="center")
        ax.set_axis_off()
        return save(figure, out)
    objects = next(iter(scores.values())).index
    sequences = sorted({name.rsplit("_", 1)[0] for name in objects})
    present = sorted({a for s in sequences for a in sequence_attributes.get(s, [])})
    table = pd.DataFrame(index=list(scores), columns=["all", *present], dtype=float)
    counts = {"all": len(sequences)}
    for label, series in scores.items():
        table.loc[label, "all"] = series.mean()
    for attribute in present:
        members = [o for o in objects if attribute in sequence_attributes.get(o.rsplit("_", 1)[0], [])]
        counts[attribute] = len({o.rsplit("_", 1)[0] for o in members})
        for label, series in scores.items():
            table.loc[label, attribute] = series[members].mean()
    image = ax.imshow(table.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(table.columns)), [f"{a}\n({counts[a]})" for a in table.columns], fontsize=8)
    ax.set_yticks(range(len(table)), table.index, fontsize=8)
    for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
        ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color="white" if value < 55 else "black")
    figure.colorbar(image, ax=ax, label="J&F (%)", fraction=0.03)
    ax.set_title(f"J&F per attribute on {evaluation.name} (db_info.yml; in brackets: sequences with it)")
    return save(figure, out)


def _overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Each object tinted in its DAVIS colour (brightened) and outlined in white, so it reads on any texture."""
    out = image.astype(np.float32)
    for oid in np.unique(labels):
        if oid == 0 or oid == 255:
            continue
        colour = np.minimum(OBJECT_COLOURS[(int(oid) - 1) % len(OBJECT_COLOURS)] * 2, 255)
        region = labels == oid
        out[region] = (1 - alpha) * out[region] + alpha * colour
    out = out.clip(0, 255).astype(np.uint8)
    for oid in np.unique(labels):
        if oid == 0 or oid == 255:
            continue
        contours, _ = cv2.findContours((labels == oid).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), max(1, image.shape[0] // 240))
    return out


def qualitative_strip(record: pd.Series, results: Path, evaluation: EvaluationData, sequence: str,
                      out: Path) -> Path:
    """One method on one sequence: frames with its masks (top), the ground truth (middle) and, for FRTM,
    the target model's coarse score maps of the first object (bottom)."""
    masks_dir = results / evaluation.name / record["row"] / "masks" / sequence
    names = sorted(p.stem for p in masks_dir.glob("*.png"))
    picks = [names[i] for i in np.linspace(0, len(names) - 1, min(QUALITATIVE_FRAMES, len(names))).round().astype(int)]
    maps_file = results / evaluation.name / record["row"] / "score-maps" / f"{sequence}.npz"
    maps = np.load(maps_file) if maps_file.is_file() else None
    lines = 3 if maps is not None and len(maps.files) else 2
    figure, axes = plt.subplots(lines, len(picks), figsize=(2.6 * len(picks), 1.6 * lines + 0.6), squeeze=False)
    for column, frame in enumerate(picks):
        image = np.array(Image.open(evaluation.root / "JPEGImages" / "480p" / sequence / f"{frame}.jpg").convert("RGB"))
        predicted = np.array(Image.open(masks_dir / f"{frame}.png"))
        truth_path = evaluation.root / "Annotations" / "480p" / sequence / f"{frame}.png"
        truth = np.array(Image.open(truth_path)) if truth_path.is_file() else np.zeros_like(predicted)
        if truth.ndim == 3:
            truth = truth[..., 0]
        if truth.max() == 255 and len(np.unique(truth)) <= 2:  # DAVIS 2016: 255 is the object
            truth = (truth > 0).astype(np.uint8)
        axes[0, column].imshow(_overlay(image, predicted))
        axes[0, column].set_title(frame, fontsize=8)
        axes[1, column].imshow(_overlay(image, truth))
        if lines == 3:
            keys = sorted(k for k in maps.files if k.startswith(f"{frame}_"))
            if keys:
                score = maps[keys[0]]
                axes[2, column].imshow(score, cmap="magma")
                axes[2, column].set_title(f"D scores, object {keys[0].split('_')[1]}", fontsize=7)
            else:
                axes[2, column].text(0.5, 0.5, "given frame", ha="center", va="center", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("prediction", fontsize=8)
    axes[1, 0].set_ylabel("ground truth", fontsize=8)
    if lines == 3:
        axes[2, 0].set_ylabel("target model D", fontsize=8)
    figure.suptitle(f"{record['label']} on {evaluation.name}/{sequence}", fontsize=10)
    return save(figure, out)


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


def caption(path: Path, summary: pd.DataFrame | None = None) -> str:
    """The caption of a figure, from its file name (the names evaluation_figures and speed_accuracy use)."""
    stem, parent = path.stem, path.parent.name
    if stem == "speed_accuracy":
        return ("Speed vs accuracy: frames per second against J&F, the papers' methods (circles, their GPUs) "
                "and this run's rows (stars, this run's hardware).")
    if parent.startswith("qualitative-"):
        label = stem
        if summary is not None and (summary["row"] == stem).any():
            label = summary.loc[summary["row"] == stem, "label"].iloc[0]
        return (f"{label} on {parent.removeprefix('qualitative-')}: its masks (top), the ground truth and, for "
                "FRTM, the target model's coarse score maps.")
    kind, _, evaluation = stem.partition("-")
    return {
        "per_sequence": f"J&F of every object of {evaluation}, one line per method.",
        "decay": f"J and F over normalised time on {evaluation}: how each method degrades along the videos.",
        "attributes": f"J&F per DAVIS attribute (db_info.yml) on {evaluation}.",
    }.get(kind, stem)


def figure_list(out_dir: Path, summary: pd.DataFrame | None = None) -> list[tuple[Path, str]]:
    """Every figure under out_dir, in reading order, with its caption."""
    order = {"speed_accuracy": 0, "per_sequence": 1, "decay": 2, "attributes": 3}
    paths = sorted(out_dir.glob("*.png"), key=lambda p: (order.get(p.stem.partition("-")[0], 9), p.name))
    paths += sorted(out_dir.glob("qualitative-*/*.png"))
    return [(path, caption(path, summary)) for path in paths]
