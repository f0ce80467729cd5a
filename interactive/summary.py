"""The suite's own summary of an interactive session, from its report.csv (one file, or chunks to merge).

The same figures as the package's `EvaluationService.summarize_report` (tests/test_interactive_summary.py holds
them equal to 1e-12), computed here so that a long run split into chunks (by sequences) is summarised once
over all of them, and so that the per-interaction table comes out too:

1. Every (interaction, sequence, scribble, object): the mean over frames of J, F, J&F and the timing.
2. Samples are reconstructed: an interaction a sample did not reach (its time ran out) takes the previous
   interaction's results with a timing of 0 (all objects zero before the first).
3. Per interaction: the mean over all (sequence, scribble, object) of J, F and J&F, the hardware-free result;
   and the cumulative sum over interactions of the mean timing of a sample (the mean over samples of the mean
   over its objects).
4. The curve: J&F against that time, from (0, 0), ending at an extra point with the last J&F at the end time:
   the mean number of objects of a sequence x max_time, or without a time limit max_interactions x the longest
   timing of any interaction.
5. AUC: the area under the curve over its last time; J&F@60s: the curve read at 60 s (linear interpolation).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import InteractiveDataError

TIME_THRESHOLD = 60.0  # seconds: the benchmark's J&F@60s
KEYS = ["interaction", "sequence", "scribble_idx", "object_id"]
MEASURES = ["jaccard", "contour", "j_and_f", "timing"]
REPORT_COLUMNS = ["sequence", "scribble_idx", "interaction", "object_id", "frame", *MEASURES]


def read_reports(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The rows of one or several report.csv files (chunks of one run: no row may appear twice)."""
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InteractiveDataError(f"{path}: report not found; run `python -m interactive session` first")
        report = pd.read_csv(path)
        missing = [column for column in REPORT_COLUMNS if column not in report]
        if missing:
            raise InteractiveDataError(f"{path}: not a session report (no column {missing}); pass the "
                                       "report.csv a session wrote")
        report["sequence"] = report["sequence"].astype(str)
        frames.append(report[REPORT_COLUMNS])
    report = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REPORT_COLUMNS)
    twice = report.duplicated(["sequence", "scribble_idx", "interaction", "object_id", "frame"])
    if twice.any():
        row = report[twice].iloc[0]
        raise InteractiveDataError(f"{', '.join(map(str, paths))}: {row['sequence']} scribble {row['scribble_idx']} "
                                   f"interaction {row['interaction']} appears in more than one report; merge "
                                   "chunks of different sequences only")
    return report


def _reconstructed(per_object: pd.DataFrame, entries: dict[str, dict], max_interactions: int) -> pd.DataFrame:
    """Step 2: one row per (interaction, sequence, scribble, object) of the dataset."""
    rows = []
    for sequence, entry in entries.items():
        objects = range(1, entry["num_objects"] + 1)
        for scribble in range(1, entry["num_scribbles"] + 1):
            previous = np.zeros((len(objects), len(MEASURES)))
            for interaction in range(1, max_interactions + 1):
                keys = [(interaction, sequence, scribble, obj) for obj in objects]
                values = per_object.reindex(keys).to_numpy(dtype=float)
                if np.isnan(values).any():
                    values = previous.copy()
                    values[:, MEASURES.index("timing")] = 0.0
                previous = values
                rows.extend(key + tuple(row) for key, row in zip(keys, values, strict=True))
    return pd.DataFrame(rows, columns=KEYS + MEASURES)


def summarize(report: pd.DataFrame, entries: dict[str, dict], max_interactions: int | None,
              max_time: float | None, time_threshold: float = TIME_THRESHOLD) -> dict:
    """The summary of `report` for the dataset's sequences and scribbles (`entries`: the package's metadata,
    interactive.dataset): per_interaction, auc, jf_at_60s and the curve."""
    per_object = report.groupby(KEYS)[MEASURES].mean()
    if not max_interactions:
        max_interactions = int(report["interaction"].max()) if len(report) else 1
    full = _reconstructed(per_object, entries, max_interactions)
    by_interaction = full.groupby("interaction")[MEASURES].mean()
    sample_time = full.groupby(["sequence", "scribble_idx", "interaction"])["timing"].mean()
    mean_time = sample_time.groupby("interaction").mean().sort_index()
    time = np.concatenate(([0.0], mean_time.cumsum().to_numpy()))
    metric = np.concatenate(([0.0], by_interaction["j_and_f"].sort_index().to_numpy()))
    if max_time:
        objects = [entry["num_objects"] for entry in entries.values()]
        end_time = sum(objects) / len(objects) * max_time
    else:
        end_time = max_interactions * per_object["timing"].max()
    time = np.append(time, end_time)
    metric = np.append(metric, metric[-1])
    auc = 0.0 if time.max() == 0 else float(np.trapezoid(metric, x=time) / time.max())
    return {
        "max_interactions": max_interactions,
        "max_time": max_time,
        "per_interaction": [
            {"interaction": int(interaction), "J": float(row["jaccard"]), "F": float(row["contour"]),
             "J&F": float(row["j_and_f"])}
            for interaction, row in by_interaction.sort_index().iterrows()
        ],
        "auc": auc,
        "jf_at_60s": float(np.interp(time_threshold, time, metric)),
        "time_threshold": time_threshold,
        "curve": {"time": time.tolist(), "J&F": metric.tolist()},
    }


def package_summary(report: pd.DataFrame, dataset, max_interactions: int | None, max_time: float | None) -> dict:
    """The package's own summary (EvaluationService.summarize_report) of `report` for `dataset`
    (interactive.dataset.InteractiveDataset): what a session of those samples reports at its end."""
    from .compat import load_davisinteractive
    from .dataset import SUBSET, registered

    package = load_davisinteractive()
    with registered(dataset, package):
        service = package.EvaluationService(SUBSET, davis_root=str(dataset.root), max_t=max_time,
                                            max_i=max_interactions)
        return service.summarize_report(report.copy())
