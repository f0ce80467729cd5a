"""Collect each (row, evaluation) of a preset into one summary table (CSV)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from metrics.davis import GLOBAL_COLUMNS
from vos_datasets.fileio import atomic_path

SUMMARY_COLUMNS = ["preset", "row", "label", "method", "evaluation", *GLOBAL_COLUMNS, "objects", "FPS", "device"]


def collect(preset: str, rows: dict, results_dir: str | Path) -> pd.DataFrame:
    """rows: the preset's `rows` config; results_dir holds <evaluation>/<row>/{scores,timing.json}."""
    results_dir = Path(results_dir)
    records = []
    for row, spec in rows.items():
        for evaluation in spec["evaluate_on"]:
            base = results_dir / evaluation / row
            scores = pd.read_csv(base / "scores" / f"per-object_results-{evaluation}.csv")
            protocol = json.loads((base / "scores" / f"protocol-{evaluation}.json").read_text())
            timing = json.loads((base / "timing.json").read_text())
            records.append({
                "preset": preset,
                "row": row,
                "label": spec.get("label", row),
                "method": spec["method"],
                "evaluation": evaluation,
                **protocol["global"],  # full precision (the official CSV rounds to 3 decimals)
                "objects": len(scores),
                "FPS": timing["mean_fps_over_sequences"],
                "device": timing["device"],
            })
    return pd.DataFrame.from_records(records, columns=SUMMARY_COLUMNS)


def write_summary(frame: pd.DataFrame, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
