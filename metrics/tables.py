"""The evaluator's CSV files: the official two (same names, columns and 3-decimal format) and two
full-precision ones of ours (per object with all six figures, and per frame)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from vos_datasets.fileio import atomic_path

from .davis import GLOBAL_COLUMNS, EvaluationResult


def output_names(subset: str) -> dict[str, str]:
    return {
        "global": f"global_results-{subset}.csv",
        "per_sequence": f"per-sequence_results-{subset}.csv",
        "per_object": f"per-object_results-{subset}.csv",
        "per_frame": f"per-frame_results-{subset}.csv",
        "protocol": f"protocol-{subset}.json",
    }


def write_tables(result: EvaluationResult, out_dir: str | Path, subset: str = "val",
                 provenance: dict | None = None) -> dict[str, Path]:
    """Write every table; each file appears whole or not at all. Returns the paths by kind."""
    out_dir = Path(out_dir)
    names = output_names(subset)
    glob = result.global_statistics()
    objects = pd.DataFrame(result.object_statistics())
    tables = {
        # The official toolkit writes its two CSVs with float_format="%.3f".
        "global": (pd.DataFrame([glob], columns=GLOBAL_COLUMNS), "%.3f"),
        "per_sequence": (objects[["Sequence", "J-Mean", "F-Mean"]], "%.3f"),
        "per_object": (objects, None),
        "per_frame": (pd.DataFrame(result.per_frame()), None),
    }
    paths = {}
    for kind, (frame, float_format) in tables.items():
        path = out_dir / names[kind]
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, float_format=float_format)
        paths[kind] = path
    info = {"protocol": dataclasses.asdict(result.protocol), "global": glob, **(provenance or {})}
    with atomic_path(out_dir / names["protocol"]) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    paths["protocol"] = out_dir / names["protocol"]
    return paths
