"""The CI regression check: a preset's summary against a committed baseline, figure by figure.

The baseline (YAML) holds J&F, J and F (percent) of every (row, evaluation) of one preset, the tolerance in
points, and where it was made. A row that moved by more than the tolerance, or that the summary lacks,
fails the check; rows the baseline does not know are listed but do not fail it. Refresh the baseline after
an intended change with `python -m reports baseline` (see README, "Regression check")."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from vos_datasets.fileio import atomic_write_text

CHECKED = ("J&F-Mean", "J-Mean", "F-Mean")
DEFAULT_TOLERANCE = 2.0  # points of J&F / J / F: CPU float reductions differ between machines, and a short
# training amplifies them; a broken component moves a row by far more


@dataclass
class Comparison:
    table: pd.DataFrame  # one line per (row, evaluation, measure)
    tolerance: float
    baseline: Path
    missing: list[str]
    new: list[str]

    @property
    def passed(self) -> bool:
        return not self.missing and bool((self.table["status"] == "ok").all())


def _figures(summary: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    return {(r["row"], r["evaluation"]): {m: round(100 * float(r[m]), 3) for m in CHECKED}
            for _, r in summary.iterrows()}


def write_baseline(summary: pd.DataFrame, tolerance: float, hardware: str, out: str | Path) -> None:
    presets = sorted(summary["preset"].unique())
    data = {
        "preset": presets[0] if len(presets) == 1 else presets,
        "tolerance": tolerance,
        "made": {"date": dt.date.today().isoformat(), "hardware": hardware},
        "rows": {f"{row}@{evaluation}": values for (row, evaluation), values in _figures(summary).items()},
    }
    header = ("# CI regression baseline: J&F, J and F (percent) per row@evaluation. Refresh after an intended\n"
              "# change with: python -m reports baseline --summary results/ci/summary.csv --out <this file>\n")
    atomic_write_text(out, header + yaml.safe_dump(data, sort_keys=False))


def compare(summary: pd.DataFrame, baseline_path: str | Path, tolerance: float | None = None) -> Comparison:
    baseline_path = Path(baseline_path)
    if not baseline_path.is_file():
        raise FileNotFoundError(f"{baseline_path}: no regression baseline; make one with `make regression-baseline` "
                                "and commit it")
    baseline = yaml.safe_load(baseline_path.read_text())
    if not baseline.get("rows"):
        raise ValueError(f"{baseline_path}: the baseline lists no rows; nothing would be checked")
    tolerance = float(baseline["tolerance"] if tolerance is None else tolerance)
    current = {f"{row}@{evaluation}": values for (row, evaluation), values in _figures(summary).items()}
    lines, missing = [], []
    for key, expected in baseline["rows"].items():
        if key not in current:
            missing.append(key)
            continue
        for measure in CHECKED:
            difference = current[key][measure] - expected[measure]
            if math.isnan(difference):
                status = "MISSING (NaN)"
            else:
                status = "ok" if abs(difference) <= tolerance else "REGRESSED" if difference < 0 else "IMPROVED"
            lines.append({"row@evaluation": key, "measure": measure, "baseline": expected[measure],
                          "now": current[key][measure], "difference": round(difference, 3), "status": status})
    new = sorted(set(current) - set(baseline["rows"]))
    return Comparison(pd.DataFrame(lines, columns=["row@evaluation", "measure", "baseline", "now", "difference",
                                                   "status"]), tolerance, baseline_path, missing, new)


def render_comparison(result: Comparison) -> str:
    verdict = "PASSED" if result.passed else "FAILED"
    lines = [f"Regression check against {result.baseline} (tolerance {result.tolerance} points): {verdict}", ""]
    if not result.table.empty:
        lines.append(result.table.to_string(index=False))
    if result.missing:
        lines += ["", "Missing from this run (in the baseline): " + ", ".join(result.missing)]
    if result.new:
        lines += ["", "Not in the baseline (not checked): " + ", ".join(result.new)]
    if not result.passed:
        lines += ["", "A change outside the tolerance in either direction fails: if it is intended, refresh the "
                      "baseline (README, 'Regression check') and commit it with the change that caused it."]
    return "\n".join(lines)
