"""The CI regression check: a preset's results against a committed baseline, row by row.

Two kinds of rows guard two different things (docs/development.md, "Regression check"):
- `fixed weights` rows (a `checkpoint:` in the preset) run inference with weights committed to the repository,
  and the first-frame copy has none: the same code gives nearly the same masks on any machine. They are held
  to their global J&F, J and F and, frame by frame, to the reference run's J and F (the mean absolute
  per-frame difference): a fault that leaves the means about where they were still changes many frames.
- `trained` rows (a `training:` in the preset) train in the run itself. A short CPU training turns rounding
  differences (machine, thread count) into a different network, so these rows can only be held to the
  spread of their global figures, measured over several seeds and thread counts.

A baseline is written from several runs of the same preset (`python -m reporting baseline --run DIR ...`, each
folder a run's results/<preset>/): each row's expected figure is the mean over the runs, its tolerance
max(3 standard deviations, max - min, the kind's floor); the per-frame reference is the first run's, its
tolerance 3 x the largest per-frame difference of another run from it (at least a floor). So the files state
what was measured and what follows from it. A row that moved by more than its tolerance, or that the results
lack, fails the check; rows the baseline does not know are listed but do not fail it."""

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
FRAME_MEASURES = ("J", "F")
TRAINED, FIXED = "trained", "fixed weights"
# Smallest tolerances (points). Fixed-weight rows: float32 inference may differ between machines more than
# between the thread counts of one machine (the only spread measurable on one machine), so a floor keeps a
# margin; the faults the check must catch move these rows by far more (tests/regression/README.md). Trained
# rows have no floor: their spread is measured.
TOLERANCE_FLOOR = {FIXED: 0.25, TRAINED: 0.0}
FRAME_TOLERANCE_FLOOR = 0.05
FRAME_MARGIN = 3.0  # per-frame tolerance = this x the largest per-frame difference measured between runs
@dataclass
class Comparison:
    table: pd.DataFrame  # one line per (row, evaluation, measure)
    baseline: Path
    missing: list[str]
    new: list[str]

    @property
    def passed(self) -> bool:
        return not self.missing and bool((self.table["status"] == "ok").all())


@dataclass
class Run:
    """One run of a preset: its results/<preset>/ folder (summary.csv, <evaluation>/<row>/scores/)."""

    label: str
    folder: Path

    @property
    def summary(self) -> pd.DataFrame:
        path = self.folder / "summary.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no summary; run the preset's DAG first (results/<preset>/summary.csv)")
        return pd.read_csv(path)

    def frames(self, key: str) -> pd.DataFrame | None:
        """Per-frame J and F (percent) of row@evaluation, indexed by (Sequence, Object, Frame); None if absent."""
        row, evaluation = key.split("@")
        path = self.folder / evaluation / row / "scores" / f"per-frame_results-{evaluation}.csv"
        if not path.is_file():
            return None
        frame = pd.read_csv(path, dtype={"Sequence": str, "Frame": str})
        return frame.set_index(["Sequence", "Object", "Frame"])[list(FRAME_MEASURES)] * 100


def _figures(summary: pd.DataFrame) -> dict[str, dict[str, float]]:
    return {f"{r['row']}@{r['evaluation']}": {m: 100 * float(r[m]) for m in CHECKED} for _, r in summary.iterrows()}


def row_kinds(preset: dict) -> dict[str, str]:
    """Each row of a preset config: `trained` when it trains in the run, `fixed weights` otherwise."""
    return {name: TRAINED if spec.get("training") else FIXED for name, spec in preset["rows"].items()}


def _round_up(value: float, step: float = 0.05) -> float:
    return round(math.ceil(value / step - 1e-9) * step, 2)


def frame_differences(now: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float] | None:
    """Mean absolute per-frame difference of J and F (points); None when the frames are not the same."""
    if len(now) != len(reference) or not now.index.sort_values().equals(reference.index.sort_values()):
        return None
    difference = (now - reference.loc[now.index]).abs()
    return {m: float(difference[m].mean()) for m in FRAME_MEASURES}


def _global_entry(key: str, kind: str, runs: dict[str, dict[str, dict[str, float]]]) -> dict:
    holding = [label for label, figures in runs.items() if key in figures]
    if len(holding) < 2:
        raise ValueError(f"{key}: in {len(holding)} run(s) ({holding}); a spread needs at least 2")
    values = {m: np.array([runs[label][key][m] for label in holding]) for m in CHECKED}
    for measure, array in values.items():
        if np.isnan(array).any():
            bad = [label for label, value in zip(holding, array, strict=True) if np.isnan(value)]
            raise ValueError(f"{key}: {measure} is NaN in the runs {bad}; a baseline needs every figure")
    sd = {m: float(np.std(v, ddof=1)) for m, v in values.items()}
    spread = {m: float(v.max() - v.min()) for m, v in values.items()}
    return {
        "kind": kind,
        "expected": {m: round(float(v.mean()), 3) for m, v in values.items()},
        "tolerance": {m: _round_up(max(3 * sd[m], spread[m], TOLERANCE_FLOOR[kind])) for m in CHECKED},
        "measured": {"runs": holding, "sd": {m: round(sd[m], 3) for m in CHECKED},
                     "min": {m: round(float(v.min()), 3) for m, v in values.items()},
                     "max": {m: round(float(v.max()), 3) for m, v in values.items()}},
    }


def _frames_entry(key: str, runs: list[Run]) -> tuple[dict, pd.DataFrame]:
    """A fixed row's per-frame reference (the first run holding its frames) and tolerance."""
    holding = [(run.label, frames) for run in runs if (frames := run.frames(key)) is not None]
    if len(holding) < 2:
        raise ValueError(f"{key}: per-frame scores in {len(holding)} run(s); a fixed row needs at least 2 "
                         "(results/<preset>/<evaluation>/<row>/scores/per-frame_results-<evaluation>.csv)")
    (reference_label, reference), others = holding[0], holding[1:]
    measured = {}
    for label, frames in others:
        differences = frame_differences(frames, reference)
        if differences is None:
            raise ValueError(f"{key}: run {label} scored other frames than {reference_label}")
        measured[label] = {m: round(v, 4) for m, v in differences.items()}
    largest = {m: max(d[m] for d in measured.values()) for m in FRAME_MEASURES}
    entry = {"reference_run": reference_label,
             "tolerance": {m: _round_up(max(FRAME_MARGIN * largest[m], FRAME_TOLERANCE_FLOOR))
                           for m in FRAME_MEASURES},
             "measured": measured}
    return entry, reference


def measured_rows(runs: list[Run], kinds: dict[str, str]) -> tuple[dict[str, dict], pd.DataFrame]:
    """Each row@evaluation's expected figures, spread and derived tolerances over the runs, and the per-frame
    reference of the fixed rows (one table: row@evaluation, Sequence, Object, Frame, J, F)."""
    figures = {run.label: _figures(run.summary) for run in runs}
    keys = sorted(key for key in set().union(*(set(f) for f in figures.values())) if key.split("@")[0] in kinds)
    unmeasured = sorted(set(kinds) - {key.split("@")[0] for key in keys})
    if unmeasured:
        raise ValueError(f"rows {unmeasured} of the preset are in none of the runs given")
    rows, references = {}, []
    for key in keys:
        kind = kinds[key.split("@")[0]]
        rows[key] = _global_entry(key, kind, figures)
        if kind == FIXED:
            rows[key]["frames"], reference = _frames_entry(key, runs)
            references.append(reference.round(6).reset_index().assign(key=key))
    columns = ["key", "Sequence", "Object", "Frame", *FRAME_MEASURES]
    return rows, pd.concat(references)[columns] if references else pd.DataFrame(columns=columns)


def frames_file(baseline: str | Path) -> Path:
    """The per-frame reference beside a baseline: <baseline>-frames.csv."""
    baseline = Path(baseline)
    return baseline.with_name(f"{baseline.stem}-frames.csv")


BASELINE_HEADER = """\
# CI regression baseline (docs/development.md, "Regression check"; measurements: tests/regression/README.md), written by
# `make regression-baseline` from the runs under `made.runs` (one run = the preset's DAG with one training seed
# at one thread count). Per row@evaluation: `expected` is the mean of J&F, J and F (percent) over the runs
# under `measured.runs`; `tolerance` (points, either direction) = max(3 x the standard deviation over those
# runs, max - min, the kind's floor), rounded up to 0.05: `fixed weights` rows (committed weights,
# tests/regression/weights/) floor {fixed}, `trained` rows no floor. Fixed rows also have `frames`: the mean
# absolute per-frame difference of J and F from the reference run's frames (in {frames_file}) may be at most
# {margin} x the largest measured between runs, at least {frame_floor} points. Rows remade later from other runs
# (`make regression-baseline ROWS="..."`) are listed under `made.updated`, one line each; each entry's own runs
# are its `measured.runs`.
"""


def write_baseline(runs: list[Run], preset: dict, hardware: str, out: str | Path, commit: str = "") -> None:
    """The baseline of several runs of one preset, tolerances derived from their spread, and the fixed rows'
    per-frame reference beside it."""
    labels = run_labels(runs)
    names = sorted({name for run in runs for name in run.summary["preset"].unique()})
    rows, references = measured_rows(runs, row_kinds(preset))
    data = {
        "preset": names[0] if len(names) == 1 else names,
        "made": {"date": dt.date.today().isoformat(), "hardware": hardware, "commit": commit, "runs": labels},
        "rows": rows,
    }
    _write_baseline_files(out, data, references)


def run_labels(runs: list[Run]) -> list[str]:
    """The runs' labels (their folder names), which a baseline records: refused if two are the same."""
    labels = [run.label for run in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two runs share a label (folder name): {labels}")
    return labels


def _write_baseline_files(out: str | Path, data: dict, references: pd.DataFrame) -> None:
    """The baseline (its explanatory header, then the data) and the per-frame references beside it."""
    header = BASELINE_HEADER.format(fixed=TOLERANCE_FLOOR[FIXED], frames_file=frames_file(out).name,
                                    margin=FRAME_MARGIN, frame_floor=FRAME_TOLERANCE_FLOOR)
    atomic_write_text(frames_file(out), references.to_csv(index=False))
    atomic_write_text(out, header + yaml.safe_dump(data, sort_keys=False))


def refresh_baseline(runs: list[Run], preset: dict, hardware: str, baseline_path: str | Path, rows: list[str],
                     commit: str = "") -> None:
    """Remake only `rows`' entries of an existing baseline (and their per-frame references) from the runs,
    keeping every other row's entry as it was measured: for an intended change of a few rows, the others
    keep their measurements instead of being re-measured on another machine. A line under `made.updated` says
    which rows were remade, when, from which runs, at which commit and on which machine."""
    baseline_path = Path(baseline_path)
    if not baseline_path.is_file():
        raise FileNotFoundError(f"{baseline_path}: no baseline to refresh rows of; make the whole one with "
                                "`make regression-baseline` (without ROWS)")
    kinds = row_kinds(preset)
    unknown = sorted(set(rows) - set(kinds))
    if unknown:
        raise ValueError(f"rows {unknown} are not rows of the preset; its rows: {sorted(kinds)}")
    labels = run_labels(runs)
    data = yaml.safe_load(baseline_path.read_text())
    remade, references = measured_rows(runs, {row: kinds[row] for row in rows})
    kept = {key: entry for key, entry in data["rows"].items() if key.split("@")[0] not in rows}
    data["rows"] = dict(sorted({**kept, **remade}.items()))
    remade_keys = ", ".join(sorted(remade))
    data["made"].setdefault("updated", []).append(
        f"{dt.date.today().isoformat()}: {remade_keys} from the runs {', '.join(labels)} at {commit or 'an unknown commit'} "
        f"on {hardware} (make regression-baseline ROWS=...); the other rows as made before")
    frames = frames_file(baseline_path)
    previous = pd.read_csv(frames, dtype={"Sequence": str, "Frame": str}) if frames.is_file() else references[:0]
    previous = previous[~previous["key"].str.split("@").str[0].isin(rows)]
    _write_baseline_files(baseline_path, data, pd.concat([previous, references])[previous.columns])


def _status(difference: float, tolerance: float) -> str:
    if math.isnan(difference):
        return "MISSING (NaN)"
    return "ok" if abs(difference) <= tolerance else "REGRESSED" if difference < 0 else "IMPROVED"


def compare(results: str | Path, baseline_path: str | Path, preset: dict | None = None) -> Comparison:
    """A run's results folder (results/<preset>/) against the baseline; with the preset config, each baseline
    row must still be of the kind it was measured as (a row switched between `training:` and `checkpoint:`
    needs a new baseline)."""
    baseline_path = Path(baseline_path)
    if not baseline_path.is_file():
        raise FileNotFoundError(f"{baseline_path}: no regression baseline; make one with `make regression-baseline` "
                                "and commit it")
    baseline = yaml.safe_load(baseline_path.read_text())
    if not baseline.get("rows"):
        raise ValueError(f"{baseline_path}: the baseline lists no rows; nothing would be checked")
    if preset is not None:
        kinds = row_kinds(preset)
        for key, entry in baseline["rows"].items():
            kind = kinds.get(key.split("@")[0])
            if kind is not None and kind != entry["kind"]:
                raise ValueError(f"{baseline_path}: {key} was measured as a {entry['kind']!r} row but the preset "
                                 f"now makes it a {kind!r} row; refresh the baseline (make regression-baseline)")
    run = Run("now", Path(results))
    current = _figures(run.summary)
    references = None
    lines, missing = [], []
    for key, entry in baseline["rows"].items():
        if key not in current:
            missing.append(key)
            continue
        for measure in CHECKED:
            difference = current[key][measure] - entry["expected"][measure]
            lines.append({"row@evaluation": key, "kind": entry["kind"], "measure": measure,
                          "baseline": entry["expected"][measure], "now": round(current[key][measure], 3),
                          "difference": round(difference, 3), "tolerance": entry["tolerance"][measure],
                          "status": _status(difference, entry["tolerance"][measure])})
        if "frames" not in entry:
            continue
        if references is None:
            references = pd.read_csv(frames_file(baseline_path), dtype={"Sequence": str, "Frame": str})
        reference = references[references["key"] == key].set_index(["Sequence", "Object", "Frame"])
        frames = run.frames(key)
        differences = None if frames is None else frame_differences(frames, reference[list(FRAME_MEASURES)])
        for measure in FRAME_MEASURES:
            tolerance = entry["frames"]["tolerance"][measure]
            value = float("nan") if differences is None else differences[measure]
            status = ("MISSING (frames differ)" if differences is None
                      else "ok" if value <= tolerance else "CHANGED")
            lines.append({"row@evaluation": key, "kind": entry["kind"], "measure": f"per-frame |d{measure}|",
                          "baseline": 0.0, "now": round(value, 3), "difference": round(value, 3),
                          "tolerance": tolerance, "status": status})
    new = sorted(set(current) - set(baseline["rows"]))
    columns = ["row@evaluation", "kind", "measure", "baseline", "now", "difference", "tolerance", "status"]
    return Comparison(pd.DataFrame(lines, columns=columns), baseline_path, missing, new)


FAILED_ADVICE = """\
What to do:
- A failing `fixed weights` row (or the first-frame copy), in its means or frame by frame: inference computes
  something else than it did. If your change did not mean to change inference, it is a regression: find it
  (each row's per-sequence and per-frame figures are in results/ci/<evaluation>/<row>/scores/).
- A failing `trained` row only: the training learns something else, beyond the spread measured over seeds and
  thread counts. Unintended: a regression in the training code or its data.
- The change is intended (a fix that moves the figures): refresh the baseline with `make regression-baseline`
  (it reruns the preset over the seeds and thread counts and derives the tolerances again; about an hour on
  2 cores) and commit it with the change, saying in the commit which rows moved and why. If the networks'
  parameters changed (names, shapes), refresh the fixed weights first: `make regression-weights`."""


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
