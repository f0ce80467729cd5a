"""Render reports/tables.md from a preset's summary: a provenance header, the papers' tables with the
published and reproduced numbers side by side, every reproduced row with all DAVIS measures, and the
figures."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vos_datasets.fileio import atomic_write_text

from .provenance import git_commit, hardware
from .published import Published, PublishedTable

SHOWN = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
PERCENT_METRICS = {"J&F-Mean", "J-Mean", "F-Mean", "G", "J-seen", "J-unseen", "F-seen", "F-unseen"}


@dataclass(frozen=True)
class CellSource:
    """Which of the preset's evaluations fills a published column, and whether it is that benchmark."""

    evaluation: str
    exact: bool


def evaluation_for(benchmark: str, evaluations: dict) -> CellSource | None:
    """The preset's evaluation that scores `benchmark` itself, else the first that stands in for it."""
    for name, spec in evaluations.items():
        if spec.get("benchmark") == benchmark:
            return CellSource(name, True)
    for name, spec in evaluations.items():
        if benchmark in spec.get("stands_in_for", ()):
            return CellSource(name, False)
    return None


def reproduced_value(summary: pd.DataFrame, row: str, evaluation: str, metric: str) -> float | None:
    """A summary figure on the papers' scale (percent, or FPS); None when not run or not measured.

    A DAVIS-protocol evaluation standing in for a YouTube-VOS column has no seen/unseen classes: its G
    is (J + F) / 2, i.e. J&F-Mean, and the seen/unseen cells stay empty."""
    match = summary[(summary["row"] == row) & (summary["evaluation"] == evaluation)]
    if match.empty:
        return None
    record = match.iloc[0]
    column = metric
    if metric == "G" and (metric not in record or pd.isna(record[metric])):
        column = "J&F-Mean"
    if column not in record or pd.isna(record[column]):
        return None
    value = float(record[column])
    return 100 * value if metric in PERCENT_METRICS else value


def chosen_row(summary: pd.DataFrame, candidates: tuple[str, ...], evaluation: str) -> str:
    """The first candidate row that ran on `evaluation` (else the first candidate)."""
    for name in candidates:
        if ((summary["row"] == name) & (summary["evaluation"] == evaluation)).any():
            return name
    return candidates[0]


def run_status(summary: pd.DataFrame, row: str, evaluation: str) -> str | None:
    """The summary's status of a (row, evaluation), e.g. awaiting the YouTube-VOS server's figures."""
    if "status" not in summary:
        return None
    match = summary[(summary["row"] == row) & (summary["evaluation"] == evaluation)]
    if match.empty or pd.isna(match.iloc[0]["status"]):
        return None
    return str(match.iloc[0]["status"])


def _published(value: float | None, printed: str | None = None) -> str:
    """A published value as the paper prints it (`printed`, else the number as Python writes it)."""
    if value is None:
        return "–"
    return printed if printed is not None else str(value)


def _number(value: float | None, metric: str) -> str:
    """A reproduced value to 0.1 (FPS below 10: 0.01)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric == "FPS":
        return f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return f"{value:.1f}"


def _versus(published: float | None, reproduced: float | None, metric: str) -> str:
    """A reproduced value and its difference from the published one: "81.2 (−0.5)"."""
    text = _number(reproduced, metric)
    if published is not None and reproduced is not None:
        text += f" ({reproduced - published:+.1f})".replace("-", "−")
    return text


def format_cell(published: float | None, reproduced: float | None, metric: str, has_row: bool,
                ran: bool, printed: str | None = None, released: str | None = None) -> str:
    """"published / reproduced (difference)" for a reproduced row; the published value alone otherwise.
    `printed`: the published value as the paper prints it (default: the number as Python writes it).
    `released`: the released-weights part ("81.2 (−0.5)", see `_versus`), placed between the published and
    the retrained value: "published / released / retrained"."""
    shown = _published(published, printed)
    if not has_row:
        return shown
    parts = [shown] if released is None else [shown, released]
    return " / ".join([*parts, _versus(published, reproduced, metric) if ran else "not run"])


def _part(summary: pd.DataFrame, candidates: tuple[str, ...], source: CellSource | None,
          published: float | None, metric: str) -> tuple[str, bool]:
    """The reproduced part of a cell from the first candidate that ran on the column's evaluation: the value
    and its difference, or the run's status while it awaits the YouTube-VOS server's figures (then True)."""
    if source is None:
        return _versus(published, None, metric), False
    name = chosen_row(summary, candidates, source.evaluation)
    reproduced = reproduced_value(summary, name, source.evaluation, metric)
    status = run_status(summary, name, source.evaluation)
    if reproduced is None and status and status != "official server":
        return status.split(" for ")[0], True
    return _versus(published, reproduced, metric), False


def render_paper_table(table: PublishedTable, published: Published, summary: pd.DataFrame,
                       evaluations: dict) -> list[str]:
    sources = [evaluation_for(column.benchmark, evaluations) for column in table.columns]
    lines = [f"### {table.title}", "", f"Source: {published.sources[table.source]['citation']}.", ""]
    notes = []
    for benchmark in dict.fromkeys(column.benchmark for column in table.columns):
        source = next(s for c, s in zip(table.columns, sources, strict=True) if c.benchmark == benchmark)
        headers = ", ".join(c.header for c in table.columns if c.benchmark == benchmark)
        if source is None:
            notes.append(f"{headers}: this preset has no evaluation of or for {benchmark} "
                         f"({published.benchmarks[benchmark]})")
        elif not source.exact:
            notes.append(f"{headers}: reproduced on `{source.evaluation}`, a STAND-IN for {benchmark}, "
                         "not the paper's benchmark")
        else:
            notes.append(f"{headers}: reproduced on `{source.evaluation}` ({benchmark})")
    lines += ["Reproduced cells: " + "; ".join(notes) + ".", ""]
    header = ["Method", *table.flags, *(column.header for column in table.columns)]
    any_pending = False
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    group = None
    for row in table.rows:
        if row.group != group and row.group is not None:
            lines.append("| " + " | ".join([f"*{row.group}*", *[""] * (len(header) - 1)]) + " |")
        group = row.group
        label = row.label
        if row.source != table.source:
            label += f" [{published.sources[row.source]['short']}]"
        ran = bool(row.candidates) and summary["row"].isin(row.candidates).any()
        # the released-weights part only when such a row ran: presets without them render as before
        released_ran = bool(row.released) and summary["row"].isin(row.released).any()
        names = " / ".join(f"`{name}`" for name in row.candidates)
        if released_ran:
            label += (" (released row " + " / ".join(f"`{name}`" for name in row.released)
                      + f"; retrained row {names})")
        elif row.candidates:
            label += f" (row {names})"
        cells = []
        for column, source, value, text in zip(table.columns, sources, row.values, row.printed, strict=True):
            if not row.candidates:
                cells.append(_published(value, text))
                continue
            parts = [_published(value, text)]
            if released_ran:
                part, pending = _part(summary, row.released, source, value, column.metric)
                parts.append(part)
                any_pending = any_pending or pending
            if ran:
                part, pending = _part(summary, row.candidates, source, value, column.metric)
                parts.append(part)
                any_pending = any_pending or pending
            else:
                parts.append("not run")
            cells.append(" / ".join(parts))
        lines.append("| " + " | ".join([label, *row.flags, *cells]) + " |")
    lines.append("")
    if any_pending:
        lines += ["*Awaiting server:* YouTube-VOS valid has no public ground truth. Upload the row's "
                  "`results/<preset>/<evaluation>/<row>/submission.zip` to the official YouTube-VOS server "
                  "(CodaLab), enter the returned G, J and F (seen / unseen) in the server results file "
                  "(`server_results` in config.yaml, format in its header) and run the workflow again.", ""]
    return lines


def render(summary: pd.DataFrame, preset: str, description: str, datasets: dict, evaluations: dict,
           published: Published, repo: Path, figures: list[tuple[str, str]] = (),
           provenance: str | None = None) -> str:
    """figures: (relative path, caption) pairs shown at the end; provenance: relative path of the manifest."""
    lines = [
        "# Reproduced tables",
        "",
        f"- **Preset:** `{preset}`: {description}",
        "- **Data:** " + "; ".join(f"`{name}` ({spec.get('kind')}"
                                    + (f", {spec['root']}" if spec.get("root") else "") + ")"
                                    for name, spec in datasets.items()),
        f"- **Hardware:** {hardware()}",
        f"- **Commit:** {git_commit(repo)}",
        f"- **Date:** {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
    ]
    if provenance:
        lines.append(f"- **Provenance** (package versions, checksums of weights and data, config): "
                     f"[provenance.json]({provenance})")
    lines += [
        "",
        "## The papers' tables",
        "",
        "Each cell of a reproduced row reads **published / reproduced (reproduced − published)**; rows "
        "without a reproduction (other methods) show the published value only, `–` is a value the paper "
        "does not give or this run does not measure. Figures are percentages; FPS is frames per second, "
        "published on the papers' GPUs, reproduced on the hardware above. Methods are rows in every table "
        "(LWL's Tables 2 and 3 print them as columns).",
        "",
    ]
    released_rows = published.released_rows()
    released = summary["row"].isin(released_rows)
    if released.any():
        lines += ["Where the authors' released weights ran (the row's label names a *released row*), a cell "
                  "reads **published / released (released − published) / retrained (retrained − published)**: "
                  "first the paper's number, then the authors' released checkpoint run through this suite's "
                  "tracker (our inference on their weights), then the model trained here (our training and "
                  "inference). A gap in the retrained value alone points at training, one in both at inference "
                  "or evaluation (FRTM's released files are its CVPR 2020 version's, so set beside the arXiv "
                  "rows they may differ by that too).", ""]
    for table in published.tables.values():
        lines += render_paper_table(table, published, summary, evaluations)
    lines += ["## Every reproduced row", "",
              "All DAVIS measures (x 100) of each row this preset ran; FPS is the mean over sequences of the "
              "method's frames per second (PNG writing excluded)."
              + (" Rows marked † run the authors' released weights (not trained here)." if released.any() else ""),
              ""]
    for evaluation, group in summary.groupby("evaluation", sort=False):
        lines += [f"### {evaluation}", ""]
        header = ["Method", *SHOWN, "FPS", "Objects"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for _, row in group.iterrows():
            mark = " †" if row["row"] in released_rows else ""
            cells = [f"{row['label']} (`{row['row']}`){mark}"] + [_number(100 * row[c], c) for c in SHOWN]
            objects = "–" if pd.isna(row["objects"]) else str(int(row["objects"]))
            cells += [_number(row["FPS"], "FPS"), objects]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for path, caption in figures:
            lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def write(text: str, *outs: str | Path) -> None:
    for out in outs:
        atomic_write_text(out, text)
