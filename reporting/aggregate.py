"""Collect each (row, evaluation) of a preset into one summary table (CSV).

Three kinds of evaluation: `davis` (the official DAVIS protocol's protocol-<set>.json), `youtube_vos` (local
scoring of held-out train videos: J, F and G without a seen/unseen split) and `server` (YouTube-VOS valid:
the figures the official server returned for the submission zip, read from the server results file; until
they are entered the row says what to do)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from metrics.davis import GLOBAL_COLUMNS
from vos_datasets.fileio import atomic_path

YOUTUBE_VOS_COLUMNS = ["G", "J-seen", "J-unseen", "F-seen", "F-unseen"]
TRAINING_COLUMNS = ["training", "training_seed", "training_epochs", "training_samples", "heldout_J"]
SUMMARY_COLUMNS = ["preset", "row", "label", "method", "evaluation", *GLOBAL_COLUMNS, *YOUTUBE_VOS_COLUMNS,
                   "objects", "FPS", "device", "device_model", "threads", "fps_protocol", "status",
                   *TRAINING_COLUMNS, "released_sha256"]


def read_server_results(path: str | Path | None, preset: str) -> dict:
    """{evaluation: {row: {G, J-seen, ...} in percent}} of this preset from the server results file."""
    if path is None or not Path(path).is_file():
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    returned = data.get(preset) or {}
    for evaluation, rows in returned.items():
        for row, figures in (rows or {}).items():
            where = f"{path}: {preset}.{evaluation}.{row}"
            unknown = sorted(set(figures or {}) - set(YOUTUBE_VOS_COLUMNS))
            if unknown:
                raise ValueError(f"{where}: unknown keys {unknown}; the server's figures are {YOUTUBE_VOS_COLUMNS}")
            for key, value in (figures or {}).items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{where}.{key}: {value!r} is not a number (percent, as the server prints it)")
    return returned


def _davis_figures(scores: Path, evaluation: str) -> dict:
    protocol = json.loads((scores / f"protocol-{evaluation}.json").read_text())
    objects = len(pd.read_csv(scores / f"per-object_results-{evaluation}.csv"))
    return {**protocol["global"], "objects": objects}  # full precision (the official CSV rounds)


def _youtube_vos_figures(scores: Path, evaluation: str) -> dict:
    table = pd.read_csv(scores / f"global_results-{evaluation}.csv").iloc[0]
    figures = {"J-Mean": table["J"], "F-Mean": table["F"], "J&F-Mean": (table["J"] + table["F"]) / 2,
               "G": table["G"], "objects": int(table["n_objects"])}
    for column, key in zip(YOUTUBE_VOS_COLUMNS[1:], ("J_seen", "J_unseen", "F_seen", "F_unseen"), strict=True):
        figures[column] = table[key]
    return figures


def _server_figures(returned: dict | None, submission: Path) -> dict:
    if not returned:
        return {"status": f"awaiting server scores for {submission}"}
    figures = {key: float(returned[key]) / 100 for key in YOUTUBE_VOS_COLUMNS if returned.get(key) is not None}
    if "J-seen" in figures and "J-unseen" in figures:
        figures["J-Mean"] = (figures["J-seen"] + figures["J-unseen"]) / 2
    if "F-seen" in figures and "F-unseen" in figures:
        figures["F-Mean"] = (figures["F-seen"] + figures["F-unseen"]) / 2
    return {**figures, "status": "official server"}


def training_figures(row_spec: dict, trainings_dir: Path) -> dict:
    """How long the row's training ran, its seed and its last held-out J, from its head.json (empty for an
    untrained row or one whose history is not there): what the report cites where a row scores low, and the
    seeds of the seeds table (reporting.seeds)."""
    name = row_spec.get("training")
    path = trainings_dir / str(name) / "head.json"
    if not name or not path.is_file():
        return {}
    recorded = json.loads(path.read_text())
    history = recorded.get("history") or []
    measured = [epoch["validation"]["J"] for epoch in history if (epoch.get("validation") or {}).get("J") is not None]
    return {"training": name, "training_seed": (recorded.get("config") or {}).get("seed"),
            "training_epochs": len(history),
            "training_samples": sum(int(epoch.get("samples", 0)) for epoch in history),
            "heldout_J": measured[-1] if measured else None}


def released_sha256(spec: dict, results_dir: Path) -> str | None:
    """The sha256 of the released weights file a row ran (its record, results/<preset>/released/<file>.json)."""
    if not spec.get("released"):
        return None
    return json.loads((results_dir / "released" / f"{spec['released']}.json").read_text())["sha256"]


def collect(preset: str, rows: dict, results_dir: str | Path, protocols: dict | None = None,
            server_results: str | Path | None = None) -> pd.DataFrame:
    """rows: the preset's `rows` config; results_dir holds <evaluation>/<row>/{scores,timing.json} and the
    trainings' training/<name>/head.json; protocols: evaluation -> davis | youtube_vos | server (default davis)."""
    results_dir = Path(results_dir)
    protocols = protocols or {}
    returned = read_server_results(server_results, preset)
    trainings: dict[str, dict] = {}  # rows sharing a training read its head.json once

    def training_of(spec: dict) -> dict:
        name = str(spec.get("training"))
        if name not in trainings:
            trainings[name] = training_figures(spec, results_dir / "training")
        return trainings[name]

    records = []
    for row, spec in rows.items():
        for evaluation in spec["evaluate_on"]:
            base = results_dir / evaluation / row
            protocol = protocols.get(evaluation, "davis")
            if protocol == "davis":
                figures = _davis_figures(base / "scores", evaluation)
            elif protocol == "youtube_vos":
                figures = _youtube_vos_figures(base / "scores", evaluation)
            else:
                figures = _server_figures((returned.get(evaluation) or {}).get(row), base / "submission.zip")
            timing = json.loads((base / "timing.json").read_text())
            records.append({
                "preset": preset,
                "row": row,
                "label": spec.get("label", row),
                "method": spec["method"],
                "evaluation": evaluation,
                **figures,
                "FPS": timing["mean_fps_over_sequences"],
                "device": timing["device"],
                "device_model": timing.get("device_model"),  # absent from records written before it was kept
                "threads": timing.get("threads"),
                "fps_protocol": timing.get("fps_protocol"),
                **training_of(spec),
                "released_sha256": released_sha256(spec, results_dir),
            })
    return pd.DataFrame.from_records(records, columns=SUMMARY_COLUMNS)


def write_summary(frame: pd.DataFrame, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
