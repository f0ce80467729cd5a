"""The CI regression check: a preset's summary against a committed baseline, row by row.

Two kinds of rows guard two different things (README, "Regression check"):
- `fixed weights` rows (a `checkpoint:` in the preset) run inference with weights committed to the repository,
  and the first-frame copy has none: the same code gives the same figures on any machine, up to float
  rounding in inference. Their tolerance is tight.
- `trained` rows (a `training:` in the preset) train in the run itself. A short CPU training turns rounding
  differences (machine, thread count) into a different network, so these rows can only be held to the
  spread measured over several seeds and thread counts.

A baseline is written from several runs of the same preset (`python -m reports baseline --summary A.csv B.csv
...`): each row's expected figure is the mean over the runs and its tolerance comes from their spread,
max(3 standard deviations, max - min, the kind's floor), so the file states what was measured and what
follows from it. A row that moved by more than its tolerance, or that the summary lacks, fails the check; rows
the baseline does not know are listed but do not fail it."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vos_datasets.fileio import atomic_write_text

CHECKED = ("J&F-Mean", "J-Mean", "F-Mean")
TRAINED, FIXED = "trained", "fixed weights"
# Smallest tolerance (points) of each kind of row. Fixed-weight rows: float32 inference differs between
# machines a little more than between thread counts of one machine (the only spread measurable on one
# machine), so the floor keeps a margin over that spread; the faults the check must catch move these rows by
# far more (README, "Regression check"). Trained rows have no floor: their spread is measured.
TOLERANCE_FLOOR = {FIXED: 0.25, TRAINED: 0.0}


@dataclass
class Comparison:
    table: pd.DataFrame  # one line per (row, evaluation, measure)
    baseline: Path
    missing: list[str]
    new: list[str]

    @property
    def passed(self) -> bool:
        return not self.missing and bool((self.table["status"] == "ok").all())


def _figures(summary: pd.DataFrame) -> dict[str, dict[str, float]]:
    return {f"{r['row']}@{r['evaluation']}": {m: 100 * float(r[m]) for m in CHECKED} for _, r in summary.iterrows()}


def row_kinds(preset: dict) -> dict[str, str]:
    """Each row of a preset config: `trained` when it trains in the run, `fixed weights` otherwise."""
    return {name: TRAINED if spec.get("training") else FIXED for name, spec in preset["rows"].items()}


def _round_up(value: float, step: float = 0.05) -> float:
    return round(math.ceil(value / step - 1e-9) * step, 2)


def measured_rows(summaries: dict[str, pd.DataFrame], kinds: dict[str, str]) -> dict[str, dict]:
    """Each row@evaluation's mean, spread and derived tolerance over the runs (label -> summary)."""
    runs = {label: _figures(summary) for label, summary in summaries.items()}
    keys = sorted(key for key in set().union(*(set(figures) for figures in runs.values()))
                  if key.split("@")[0] in kinds)
    unmeasured = sorted(set(kinds) - {key.split("@")[0] for key in keys})
    if unmeasured:
        raise ValueError(f"rows {unmeasured} of the preset are in none of the runs given")
    rows = {}
    for key in keys:
        kind = kinds[key.split("@")[0]]
        holding = [label for label, figures in runs.items() if key in figures]
        if len(holding) < 2:
            raise ValueError(f"{key}: in {len(holding)} run(s) ({holding}); a spread needs at least 2")
        values = {m: np.array([runs[label][key][m] for label in holding]) for m in CHECKED}
        sd = {m: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for m, v in values.items()}
        spread = {m: float(v.max() - v.min()) for m, v in values.items()}
        rows[key] = {
            "kind": kind,
            "expected": {m: round(float(v.mean()), 3) for m, v in values.items()},
            "tolerance": {m: _round_up(max(3 * sd[m], spread[m], TOLERANCE_FLOOR[kind])) for m in CHECKED},
            "measured": {"runs": holding, "sd": {m: round(sd[m], 3) for m in CHECKED},
                         "min": {m: round(float(v.min()), 3) for m, v in values.items()},
                         "max": {m: round(float(v.max()), 3) for m, v in values.items()}},
        }
    return rows


BASELINE_HEADER = """\
# CI regression baseline (README, "Regression check"), written by `make regression-baseline`.
# Per row@evaluation: `expected` is the mean of J&F, J and F (percent) over the runs under `measured.runs`
# (one run = the preset's DAG with one training seed at one thread count); `tolerance` (points, either
# direction) = max(3 x the standard deviation over those runs, max - min, the kind's floor), rounded up to 0.05.
# `fixed weights` rows run committed weights (tests/regression/weights/), floor {fixed}; `trained` rows train
# in the run, no floor. `measured` keeps the spread the tolerance came from.
"""


def write_baseline(summaries: dict[str, pd.DataFrame], preset: dict, hardware: str, out: str | Path,
                   commit: str = "") -> None:
    """The baseline of several runs of one preset (label -> summary), tolerances derived from their spread."""
    names = sorted({name for summary in summaries.values() for name in summary["preset"].unique()})
    data = {
        "preset": names[0] if len(names) == 1 else names,
        "made": {"date": dt.date.today().isoformat(), "hardware": hardware, "commit": commit,
                 "runs": list(summaries)},
        "rows": measured_rows(summaries, row_kinds(preset)),
    }
    header = BASELINE_HEADER.format(fixed=TOLERANCE_FLOOR[FIXED])
    atomic_write_text(out, header + yaml.safe_dump(data, sort_keys=False))


def compare(summary: pd.DataFrame, baseline_path: str | Path) -> Comparison:
    baseline_path = Path(baseline_path)
    if not baseline_path.is_file():
        raise FileNotFoundError(f"{baseline_path}: no regression baseline; make one with `make regression-baseline` "
                                "and commit it")
    baseline = yaml.safe_load(baseline_path.read_text())
    if not baseline.get("rows"):
        raise ValueError(f"{baseline_path}: the baseline lists no rows; nothing would be checked")
    current = _figures(summary)
    lines, missing = [], []
    for key, entry in baseline["rows"].items():
        if key not in current:
            missing.append(key)
            continue
        for measure in CHECKED:
            difference = current[key][measure] - entry["expected"][measure]
            tolerance = entry["tolerance"][measure]
            if math.isnan(difference):
                status = "MISSING (NaN)"
            else:
                status = "ok" if abs(difference) <= tolerance else "REGRESSED" if difference < 0 else "IMPROVED"
            lines.append({"row@evaluation": key, "kind": entry["kind"], "measure": measure,
                          "baseline": entry["expected"][measure], "now": round(current[key][measure], 3),
                          "difference": round(difference, 3), "tolerance": tolerance, "status": status})
    new = sorted(set(current) - set(baseline["rows"]))
    columns = ["row@evaluation", "kind", "measure", "baseline", "now", "difference", "tolerance", "status"]
    return Comparison(pd.DataFrame(lines, columns=columns), baseline_path, missing, new)


FAILED_ADVICE = """\
What to do:
- A failing `fixed weights` row (or the first-frame copy): inference computes something else than it did.
  If your change did not mean to change inference, it is a regression: find it (the rows' per-sequence
  figures are in results/ci/<evaluation>/<row>/scores/).
- A failing `trained` row only: the training learns something else, beyond the spread measured over seeds and
  thread counts. Unintended: a regression in the training code or its data.
- The change is intended (a fix that moves the figures): refresh the baseline with `make regression-baseline`
  (it reruns the preset over the seeds and thread counts and derives the tolerances again; about an hour on
  2 cores) and commit it with the change, saying in the commit which rows moved and why. If the networks'
  parameters changed shape, refresh the fixed weights first: `make regression-weights`."""


def render_comparison(result: Comparison) -> str:
    verdict = "PASSED" if result.passed else "FAILED"
    lines = [f"Regression check against {result.baseline}: {verdict}", ""]
    if not result.table.empty:
        lines.append(result.table.to_string(index=False))
    if result.missing:
        lines += ["", "Missing from this run (in the baseline): " + ", ".join(result.missing)]
    if result.new:
        lines += ["", "Not in the baseline (not checked): " + ", ".join(result.new)]
    if not result.passed:
        lines += ["", FAILED_ADVICE]
    return "\n".join(lines)
