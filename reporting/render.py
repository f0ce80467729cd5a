"""Render reports/tables.md from a preset's summary: a short header, every reproduced row against the
first-frame copy, the papers' tables with the published and reproduced numbers side by side, the seeds'
spread, the figures, and the details the header links to (description, machines, every DAVIS measure).

A reproduced value is set against the published one, with their difference, only where the two are
comparable: measured on the paper's own benchmark (not a stand-in for it) and, for FPS, on a GPU like the
papers'. Otherwise it is shown labelled ("[stand-in 20.3]", "1.07 (CPU)"), without a difference. Missing
values carry distinct marks (NOT_PUBLISHED, NOT_MEASURED, NOT_RUN), explained under each table."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from metrics.youtube_vos import FRAME_RULES
from vos_datasets.fileio import atomic_write_text

from .provenance import git_commit, hardware
from .published import Published, PublishedRow, PublishedTable
from .seeds import primary_rows, seeds_section

SHOWN = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
PERCENT_METRICS = {"J&F-Mean", "J-Mean", "F-Mean", "G", "J-seen", "J-unseen", "F-seen", "F-unseen"}
YOUTUBE_VOS_METRICS = {"G", "J-seen", "J-unseen", "F-seen", "F-unseen"}  # only a YouTube-VOS scoring gives them

NOT_PUBLISHED = "n.p."  # the paper gives no value
NOT_FOUND = "not found"  # a paper version whose figures come from a quoting source: not in that source
NOT_MEASURED = "n.m."  # this preset has no such figure (no evaluation of or for the benchmark, the row did not
# run on it, or the evaluation does not give the measure)
NOT_RUN = "not run"  # the reproduced row is not run by this preset at all
TRIVIAL_FPS = 1000  # above it the first-frame copy's FPS is shown as "> 1000" (_copy_fps)
MARKS = {  # legend entries, in the order they are listed under a table
    "n.p.": f"**{NOT_PUBLISHED}** = not in the paper",
    "not found": f"**{NOT_FOUND}** = not in the text this project could cite for that paper version (named with "
                 "the source above the table): no number is filled in from elsewhere",
    "n.m.": f"**{NOT_MEASURED}** = not measured by this preset (no evaluation of or for the column's benchmark, the "
            "row did not run on it, or that evaluation does not give this measure: a DAVIS-protocol evaluation has "
            "no G or seen/unseen split)",
    "not run": f"**{NOT_RUN}** = this preset does not run the row",
    "stand-in": "**[stand-in x]** = measured on a stand-in for the paper's benchmark (named above the table), "
                "so no difference is taken",
    "CPU": "**(CPU)** = frames per second measured on a CPU, so no difference from the paper's GPU figure",
    "device": "**(device ...)** = frames per second measured on a device other than a CUDA GPU (or one not "
              "recorded), so no difference from the paper's GPU figure",
    "from": "**from `row`** = the reproduced row that filled the value, where several can",
    "other model": "**[other model x]** = the released file is not the model the published figure is of (the "
                   "row's label says which), so no difference is taken",
    "no computation": f"**> {TRIVIAL_FPS}** = the first-frame copy computes nothing (it writes the given mask to every "
                      "frame): its FPS times file handling, so only its order is shown",
    "under aim": "**(under aim)** = the row scores under the first-frame copy + 10 J&F on this evaluation: the "
                 "value does not show what the method can do here (*Under the aim*, under the table of every "
                 "row, gives its training's length and held-out J)",
}


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


def _record(summary: pd.DataFrame, row: str, evaluation: str) -> pd.Series | None:
    match = summary[(summary["row"] == row) & (summary["evaluation"] == evaluation)]
    return None if match.empty else match.iloc[0]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or bool(pd.isna(value))


def reproduced_value(summary: pd.DataFrame, row: str, evaluation: str, metric: str) -> float | None:
    """A summary figure on the papers' scale (percent, or FPS); None when not run or not measured.

    Each metric comes from its own column only: a DAVIS-protocol evaluation (also one standing in for a
    YouTube-VOS benchmark) measures no G and no seen/unseen classes, so those stay None; its J&F is not a G."""
    record = _record(summary, row, evaluation)
    if record is None or metric not in record or _missing(record[metric]):
        return None
    value = float(record[metric])
    return 100 * value if metric in PERCENT_METRICS else value


def fps_device(device) -> str | None:
    """None where an FPS was measured on a CUDA GPU (comparable with the papers' GPU figures); else the label
    it is shown with: "CPU" (device "cpu", or the CPU description a method without a device records), or
    "device ..." (another device, or none recorded)."""
    if _missing(device) or not str(device).strip():
        return "device not recorded"
    text = str(device).strip()
    lowered = text.lower()
    if lowered.startswith("cuda") or "gpu" in lowered:
        return None
    if lowered.startswith("cpu") or "cores" in lowered:  # "x86_64, 2 cores (Linux)": methods.runner's description
        return "CPU"
    return f"device {text}"


def chosen_row(summary: pd.DataFrame, candidates: tuple[str, ...], evaluation: str) -> str:
    """The first candidate row that ran on `evaluation` (else the first candidate)."""
    for name in candidates:
        if ((summary["row"] == name) & (summary["evaluation"] == evaluation)).any():
            return name
    return candidates[0]


def run_status(summary: pd.DataFrame, row: str, evaluation: str) -> str | None:
    """The summary's status of a (row, evaluation), e.g. awaiting the YouTube-VOS server's figures."""
    record = _record(summary, row, evaluation)
    if record is None or "status" not in record or _missing(record["status"]):
        return None
    return str(record["status"])


def _published(value: float | None, printed: str | None = None) -> str:
    """A published value as the paper prints it (`printed`, else the number as Python writes it)."""
    if value is None:
        return NOT_PUBLISHED
    return printed if printed is not None else str(value)


def _number(value: float | None, metric: str) -> str:
    """A reproduced value to 0.1 (FPS below 10: 0.01)."""
    if _missing(value):
        return NOT_MEASURED
    if metric == "FPS":
        return f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return f"{value:.1f}"


def _difference(published: float, reproduced: float) -> str:
    return f"({reproduced - published:+.1f})".replace("-", "−")


def _versus(published: float | None, reproduced: float | None, metric: str, exact: bool = True,
            device=None, marks: set | None = None, method=None) -> str:
    """A reproduced value as it can be set beside the published one: "81.2 (−0.5)" on the paper's benchmark
    (GPU for FPS); "[stand-in 20.3]" on a stand-in; "1.07 (CPU)" for an FPS not measured on a GPU; no
    difference in the last two. `marks` collects the legend entries used."""
    marks = set() if marks is None else marks
    if _missing(reproduced):
        marks.add("n.m.")
        return NOT_MEASURED
    trivial = _copy_fps(reproduced, method) if metric == "FPS" else None
    if trivial is not None:
        marks.add("no computation")
    text = trivial or _number(reproduced, metric)
    where = fps_device(device) if metric == "FPS" else None
    if where is not None:
        text += f" ({where})"
        marks.add("CPU" if where == "CPU" else "device")
    elif exact and published is not None and trivial is None:
        text += " " + _difference(published, reproduced)
    if not exact:
        marks.add("stand-in")
        text = f"[stand-in {text}]"
    return text


def format_cell(published: float | None, reproduced: float | None, metric: str, has_row: bool,
                ran: bool, printed: str | None = None, released: str | None = None, exact: bool = True,
                device=None) -> str:
    """"published / reproduced (difference)" for a reproduced row (see `_versus` for stand-ins and CPU FPS);
    the published value alone otherwise. `printed`: the published value as the paper prints it (default: the
    number as Python writes it). `released`: the released-weights part ("81.2 (−0.5)", see `_versus`), placed
    between the published and the retrained value: "published / released / retrained"."""
    shown = _published(published, printed)
    if not has_row:
        return shown
    parts = [shown] if released is None else [shown, released]
    return " / ".join([*parts, _versus(published, reproduced, metric, exact, device) if ran else NOT_RUN])


def _part(summary: pd.DataFrame, candidates: tuple[str, ...], source: CellSource | None,
          published: float | None, metric: str, marks: set, other_model: bool = False) -> tuple[str, bool]:
    """The reproduced part of a cell from the first candidate that ran on the column's evaluation (see
    `_versus`), or the run's status while it awaits the YouTube-VOS server's figures (then True). Where
    several candidates can fill it, the part names the one that did: "80.1 (−1.5) from `lwl`"."""
    if source is None:
        marks.add("n.m.")
        return NOT_MEASURED, False
    name = chosen_row(summary, candidates, source.evaluation)
    record = _record(summary, name, source.evaluation)
    reproduced = reproduced_value(summary, name, source.evaluation, metric)
    status = run_status(summary, name, source.evaluation)
    pending = reproduced is None and bool(status) and status != "official server"
    if pending:
        text = status.split(" for ")[0]
    else:
        device, method = (None, None) if record is None else (record.get("device"), record.get("method"))
        text = _versus(None if other_model else published, reproduced, metric, source.exact, device, marks, method)
        if other_model and reproduced is not None:
            marks.add("other model")
            text = f"[other model {text}]"
        if reproduced is not None and metric != "FPS" and scores_under_aim(summary, name, source.evaluation):
            marks.add("under aim")
            text += " (under aim)"
    if len(candidates) > 1 and (reproduced is not None or pending):
        marks.add("from")
        text += f" from `{name}`"
    return text, pending


def _stand_in_jf(table: PublishedTable, summary: pd.DataFrame, sources: list) -> list[str]:
    """For YouTube-VOS columns filled by a stand-in that measures no G (a DAVIS-protocol evaluation): that
    evaluation's J&F of the table's rows, labelled as such, in a line under the table (never in a G cell)."""
    lines = []
    done = set()
    for column, source in zip(table.columns, sources, strict=True):
        if column.metric not in YOUTUBE_VOS_METRICS or source is None or source.exact:
            continue
        if (column.benchmark, source.evaluation) in done:
            continue
        done.add((column.benchmark, source.evaluation))
        entries, seen = [], set()
        for row in table.rows:
            for names in (row.released, row.candidates):
                if not names:
                    continue
                name = chosen_row(summary, names, source.evaluation)
                record = _record(summary, name, source.evaluation)
                if name in seen or record is None or ("G" in record and not _missing(record["G"])):
                    continue
                seen.add(name)
                jf = reproduced_value(summary, name, source.evaluation, "J&F-Mean")
                if jf is not None:
                    entries.append(f"{row.label} (`{name}`) {_number(jf, 'J&F-Mean')}")
        if entries:
            lines += [f"*Stand-in J&F, not G:* `{source.evaluation}` stands in for {column.benchmark} but measures "
                      "no G or seen/unseen split (DAVIS protocol), so those cells read "
                      f"{NOT_MEASURED}; its J&F of the rows, for orientation only: " + "; ".join(entries) + ".", ""]
    return lines


def held_out_frames(spec: dict) -> str:
    """For a local YouTube-VOS scoring, the frames it scored (metrics.youtube_vos FRAME_RULES), as a clause."""
    rule = spec.get("frames")
    return "" if rule is None else f"; scored on {FRAME_RULES[rule]}, `frames: {rule}`"


def legend(marks: set) -> str:
    """The line under a table that explains the marks and forms it uses."""
    return "*Marks:* " + "; ".join(text for key, text in MARKS.items() if key in marks) + "."


def _names(names: tuple[str, ...]) -> str:
    return " or ".join(f"`{name}`" for name in names)


@dataclass
class TableLine:
    """One published row as rendered: its Markdown table line, the marks it uses, and whether any reproduced
    part holds a value (or awaits the server's figures)."""

    line: str
    marks: set[str]
    pending: bool = False
    measured: bool = False


def _table_heading(table: PublishedTable, published: Published, cited: set[str] | None) -> list[str]:
    """The table's title, its source and the sources of rows quoted from another paper version; a source
    already cited in full above (`cited`, shared across the report's tables) is named by its short form only."""
    lines = [f"### {table.title}", "", f"Source: {published.sources[table.source]['citation']}.", ""]
    for key in dict.fromkeys(row.source for row in table.rows if row.source != table.source):
        spec = published.sources[key]
        if cited is not None and key in cited:
            lines += [f"Rows marked [{spec['short']}]: the source cited in full under the first table that "
                      "has such rows.", ""]
            continue
        lines += [f"Rows marked [{spec['short']}]: {spec['citation']}."
                  + (f" Not found: {spec['not_found_in']}." if spec.get("not_found_in") else ""), ""]
        if cited is not None:
            cited.add(key)
    return lines


def _columns_note(table: PublishedTable, published: Published, sources: list, evaluations: dict) -> list[str]:
    """The line above the table: which of the preset's evaluations fills each benchmark's columns, and how."""
    notes = []
    for benchmark in dict.fromkeys(column.benchmark for column in table.columns):
        source = next(s for c, s in zip(table.columns, sources, strict=True) if c.benchmark == benchmark)
        headers = ", ".join(c.header for c in table.columns if c.benchmark == benchmark)
        if source is None:
            notes.append(f"{headers}: this preset has no evaluation of or for {benchmark} "
                         f"({published.benchmarks[benchmark]}), {NOT_MEASURED}")
        elif not source.exact:
            notes.append(f"{headers}: reproduced on `{source.evaluation}`, a STAND-IN for {benchmark}, "
                         "not the paper's benchmark: shown as [stand-in value], no difference")
        else:
            notes.append(f"{headers}: reproduced on `{source.evaluation}` ({benchmark}"
                         + held_out_frames(evaluations[source.evaluation]) + ")")
    return ["Reproduced cells: " + "; ".join(notes) + ".", ""]


def _row_label(table: PublishedTable, row: PublishedRow, published: Published, released_ran: bool) -> str:
    """The Method cell: the paper's label, the quoting source's mark, and the reproduced rows that fill it."""
    label = row.label
    if row.source != table.source:
        label += f" [{published.sources[row.source]['short']}]"
    if released_ran:
        label += f" (released row {_names(row.released)}"
        label += f"; retrained row {_names(row.candidates)})" if row.candidates else ")"
        if row.released_model:
            label += f" (released file: {row.released_model})"
    elif row.candidates:
        label += f" (row {_names(row.candidates)})"
    return label


def _table_line(table: PublishedTable, row: PublishedRow, published: Published, summary: pd.DataFrame,
                sources: list) -> TableLine:
    """A published row's table line: each cell "published / [released /] retrained" (see `_part`), the
    published value alone for a row without a reproduction."""
    ran = bool(row.candidates) and summary["row"].isin(row.candidates).any()
    # the released-weights part only when such a row ran: presets without them render as before
    released_ran = bool(row.released) and summary["row"].isin(row.released).any()
    not_found = published.sources[row.source].get("not_found_in")
    rendered = TableLine("", set())
    cells = []
    for column, source, value, text in zip(table.columns, sources, row.values, row.printed, strict=True):
        parts = [NOT_FOUND if value is None and not_found else _published(value, text)]
        if value is None:
            rendered.marks.add("not found" if not_found else "n.p.")
        reproduced = []
        if released_ran:
            reproduced.append(_part(summary, row.released, source, value, column.metric, rendered.marks,
                                    other_model=bool(row.released_model)))
        if row.candidates and ran:
            reproduced.append(_part(summary, row.candidates, source, value, column.metric, rendered.marks))
        elif row.candidates:
            rendered.marks.add("not run")
            reproduced.append((NOT_RUN, False))
        for part, pending in reproduced:
            parts.append(part)
            rendered.pending = rendered.pending or pending
            rendered.measured = rendered.measured or part not in (NOT_MEASURED, NOT_RUN)
        cells.append(" / ".join(parts))
    rendered.line = "| " + " | ".join([_row_label(table, row, published, released_ran), *row.flags, *cells]) + " |"
    return rendered


def _nothing_measured(table: PublishedTable, summary: pd.DataFrame, sources: list) -> list[str]:
    """A table this preset measured nothing of, as one line: which of its rows ran, and why none of its columns
    has a value. Its published figures beside n.m. in every reproduced cell would tell a reader nothing."""
    reasons = []
    for benchmark in dict.fromkeys(column.benchmark for column in table.columns):
        source = next(s for c, s in zip(table.columns, sources, strict=True) if c.benchmark == benchmark)
        headers = ", ".join(c.header for c in table.columns if c.benchmark == benchmark)
        if source is None:
            reasons.append(f"no evaluation of or for {benchmark}")
        else:
            role = "scores" if source.exact else "stands in for"
            reasons.append(f"`{source.evaluation}` {role} {benchmark} but gives no {headers} for these rows")
    names = list(dict.fromkeys(name for row in table.rows for name in (*row.released, *row.candidates)))
    ran = [name for name in names if summary["row"].eq(name).any()]
    # released rows are named only where they ran: presets without them say nothing of them
    not_run = list(dict.fromkeys(name for row in table.rows for name in row.candidates if name not in ran))
    rows = (f"its rows {', '.join(f'`{name}`' for name in ran)} are in *Every reproduced row*" if ran else
            "none of its rows ran")
    return [f"### {table.title}", "",
            f"Not measured by this preset ({NOT_MEASURED} in every reproduced cell): " + "; ".join(reasons)
            + f"; {rows}" + (f"; {NOT_RUN}: {', '.join(f'`{name}`' for name in not_run)}" if not_run and ran else "")
            + ". The published figures are in reporting/published.yaml.", ""]


def render_paper_table(table: PublishedTable, published: Published, summary: pd.DataFrame,
                       evaluations: dict, cited: set[str] | None = None) -> list[str]:
    """One paper's table with the reproduced values beside the published ones: heading and sources, which
    evaluation fills each column, the table, the legend of the marks it uses, and the notes it needs (stand-in
    J&F, awaiting server). A table of which this preset measured nothing is one line (`_nothing_measured`).
    `cited`: the sources cited in full so far in the report (updated)."""
    sources = [evaluation_for(column.benchmark, evaluations) for column in table.columns]
    rendered = [_table_line(table, row, published, summary, sources) for row in table.rows]
    if not any(line.measured or line.pending for line in rendered):
        return _nothing_measured(table, summary, sources)
    lines = _table_heading(table, published, cited) + _columns_note(table, published, sources, evaluations)
    header = ["Method", *table.flags, *(column.header for column in table.columns)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    group = None
    for row, line in zip(table.rows, rendered, strict=True):
        if row.group != group and row.group is not None:
            lines.append("| " + " | ".join([f"*{row.group}*", *[""] * (len(header) - 1)]) + " |")
        group = row.group
        lines.append(line.line)
    lines.append("")
    marks = set().union(*(line.marks for line in rendered))
    if marks:
        lines += [legend(marks), ""]
    lines += _stand_in_jf(table, summary, sources)
    if any(line.pending for line in rendered):
        lines += ["*Awaiting server:* YouTube-VOS valid has no public ground truth. Upload the row's "
                  "`results/<preset>/<evaluation>/<row>/submission.zip` to the official YouTube-VOS server "
                  "(CodaLab), enter the returned G, J and F (seen / unseen) in the server results file "
                  "(`server_results` in config.yaml, format in its header) and run the workflow again.", ""]
    return lines


LOWER_BOUND_METHOD = "first_frame_copy"
AIM_OVER_LOWER_BOUND = 0.10  # J&F a method row should gain over the first-frame copy (the main job's aim)


def lower_bound(group: pd.DataFrame) -> float | None:
    """The first-frame copy's J&F on this evaluation (None where it did not run)."""
    if "method" not in group or "J&F-Mean" not in group:
        return None
    copy = group[group["method"] == LOWER_BOUND_METHOD]["J&F-Mean"]
    return None if copy.empty or _missing(copy.iloc[0]) else float(copy.iloc[0])


def _device_cell(where: str | None, threads, model=None) -> str:
    """The Device column: "GPU" with its name, or the CPU/device label with the thread count the timing recorded."""
    if where is None:
        return "GPU" if _missing(model) else f"GPU ({model})"
    if _missing(threads):
        return where
    return f"{where}, {int(threads)} thread{'s' if int(threads) > 1 else ''}"


def _training_text(row: pd.Series) -> str:
    if _missing(row.get("training")):
        return "not trained here"
    text = (f"its training `{row['training']}` saw {int(row['training_samples'])} samples in "
            f"{int(row['training_epochs'])} epochs")
    if not _missing(row.get("heldout_J")):
        text += f", held-out J {100 * row['heldout_J']:.1f} at its last measure"
    return text


def rows_under_aim(group: pd.DataFrame) -> list[pd.Series]:
    """The method rows of one evaluation below the first-frame copy + the aim (none where the copy did not run)."""
    bound = lower_bound(group)
    if bound is None:
        return []
    return [row for _, row in group.iterrows() if row["method"] != LOWER_BOUND_METHOD
            and not _missing(row.get("J&F-Mean")) and row["J&F-Mean"] < bound + AIM_OVER_LOWER_BOUND]


def scores_under_aim(summary: pd.DataFrame, row: str, evaluation: str) -> bool:
    """Whether `row` scores under the first-frame copy + the aim on `evaluation` (rows_under_aim)."""
    return any(record["row"] == row for record in rows_under_aim(summary[summary["evaluation"] == evaluation]))


def under_aim(group: pd.DataFrame) -> list[str]:
    """One line per row below the first-frame copy + the aim, with what its training measured: a low figure
    is stated as such, with the measurement that explains it, not left to read as a failure."""
    low = rows_under_aim(group)
    if not low:
        return []
    bound = lower_bound(group)
    return [f"**Under the aim** (the first-frame copy's J&F {100 * bound:.1f} + {100 * AIM_OVER_LOWER_BOUND:.0f}): "
            "these rows do not show what the method can do on this preset. Each line gives what its training "
            "measured (the curves are in the figures below: a held-out J near 0 means the network has not left "
            "its initial plateau); the preset's description (Details, at the end) says why and where the methods' real-data "
            "figures are measured.",
            "", *(f"- `{row['row']}`: J&F {100 * row['J&F-Mean']:.1f}, {100 * (row['J&F-Mean'] - bound):+.1f} "
                  f"against the copy; {_training_text(row)}." for row in low), ""]


def measured_on(summary: pd.DataFrame) -> str:
    """The devices the rows' FPS were measured on, as the infer jobs recorded them (the report's steps may run
    elsewhere: a torch-free environment, the cluster's head node), e.g. "CUDA GPU", "CPU" or "CUDA GPU and CPU"."""
    found = {"CUDA GPU" if where is None else where
             for where in map(fps_device, summary.get("device", pd.Series(dtype=object)))}
    found.discard("device not recorded")
    return " and ".join(sorted(found)) or "a device not recorded"


def fps_machines(summary: pd.DataFrame) -> str:
    """The device models and FPS protocols the infer jobs recorded in their timing.json (on the machine each
    ran on, which may not be the one rendering), e.g. "NVIDIA H100 80GB HBM3 (protocol authors)"."""
    if "device_model" not in summary:
        return "not recorded"
    seen = {}
    for _, row in summary.iterrows():
        model = "not recorded" if _missing(row.get("device_model")) else str(row["device_model"])
        protocol = "not recorded" if _missing(row.get("fps_protocol")) else str(row["fps_protocol"])
        seen.setdefault(f"{model} (protocol {protocol})", []).append(row["row"])
    if len(seen) == 1:
        return f"{next(iter(seen))}, every row"
    return "; ".join(f"{machine}: {', '.join(sorted(set(rows)))}" for machine, rows in seen.items()) or "not recorded"


def _header(preset: str, summary: pd.DataFrame, repo: Path, provenance: str | None) -> list[str]:
    """The few lines above the tables (about 60 words): what ran, where, and links to the rest (the
    Details section at the end, the provenance manifest)."""
    rest = f"; package versions and checksums: [provenance.json]({provenance})" if provenance else ""
    return ["# Reproduced tables", "",
            f"Preset `{preset}` at commit {git_commit(repo)}, rendered "
            f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; FPS measured on {measured_on(summary)}. "
            "First every row this preset ran against the first-frame copy, then the papers' tables. The preset's "
            f"description, data, hardware and how to read a cell: [Details](#details){rest}.", ""]


def _copy_fps(value: float | None, method) -> str | None:
    """The first-frame copy's FPS cell, or None for any other row. The copy computes nothing (it writes the
    given mask to every frame): its FPS times file handling, thousands on a CPU and different on every run, so
    only its order is shown, and it is no speed to compare."""
    if method != LOWER_BOUND_METHOD or _missing(value) or value <= TRIVIAL_FPS:
        return None
    return f"> {TRIVIAL_FPS}"


def _every_row_line(row: pd.Series, released_rows: set, bound: float | None, low_rows: set,
                    columns: list[str]) -> tuple[str, bool]:
    """One row of an every-row table (`columns`: its measures, in order), and whether a measure is missing."""
    mark = " †" if row["row"] in released_rows else ""
    if not _missing(row.get("released_sha256")):  # which file ran: the first 12 hex of its sha256
        mark += f" (sha256 `{row['released_sha256'][:12]}`)"
    values = {c: None if _missing(row.get(c)) else 100 * row[c] for c in columns}
    values["FPS"] = None if _missing(row.get("FPS")) else row["FPS"]
    shown = {c: (_copy_fps(v, row.get("method")) if c == "FPS" else None) or _number(v, c) for c, v in values.items()}
    cells = [f"{row['label']} (`{row['row']}`){mark}", *shown.values()]
    missing = any(v is None for v in values.values())
    if bound is not None:
        copy_row = row["method"] == LOWER_BOUND_METHOD or values["J&F-Mean"] is None
        cells.append("" if copy_row else f"{values['J&F-Mean'] - 100 * bound:+.1f}"
                     + (" (under aim)" if row["row"] in low_rows else ""))
    cells.append(_device_cell(fps_device(row.get("device")), row.get("threads"), row.get("device_model")))
    return "| " + " | ".join(cells) + " |", missing


def _every_row_marks(group: pd.DataFrame, missing: bool, not_measured: str) -> list[str]:
    """The legend under an every-row table: `not_measured` where a measure is missing, and the copy's FPS form."""
    marks = [not_measured] if missing else []
    if any(_copy_fps(row.get("FPS"), row.get("method")) for _, row in group.iterrows()):
        marks.append(MARKS["no computation"])
    return ["*Marks:* " + "; ".join(marks) + ".", ""] if marks else []


def _every_row_section(summary: pd.DataFrame, released_rows: set) -> list[str]:
    """The table a reader needs first: per evaluation, each row's J&F, J, F and FPS, its J&F against the
    first-frame copy and its device; then the rows under the aim with what their trainings measured."""
    released = summary["row"].isin(released_rows).any()
    lines = ["## Every reproduced row", "",
             "J&F, J and F are x 100 (the other DAVIS measures: *All measures* in Details); FPS is the mean over "
             "sequences of the method's frames per second (PNG writing excluded), on the row's device."
             + (" Rows marked † run the authors' released weights (not trained here)." if released else ""), ""]
    for evaluation, group in summary.groupby("evaluation", sort=False):
        bound = lower_bound(group)
        low_rows = {record["row"] for record in rows_under_aim(group)}
        header = ["Method", "J&F", "J", "F", "FPS"] + (["J&F vs copy"] if bound is not None else []) + ["Device"]
        lines += [f"### {evaluation}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        missing = False
        for _, row in group.iterrows():
            line, gap = _every_row_line(row, released_rows, bound, low_rows, ["J&F-Mean", "J-Mean", "F-Mean", "FPS"])
            lines.append(line)
            missing = missing or gap
        lines.append("")
        lines += _every_row_marks(group, missing, f"**{NOT_MEASURED}** = not measured by this evaluation")
        lines += under_aim(group)
    return lines


def _papers_section(summary: pd.DataFrame, published: Published, evaluations: dict) -> list[str]:
    """The papers' tables, each with the reproduced values beside the published ones, after a line on how
    to read them and the rows to read with care."""
    lines = ["## The papers' tables", "",
             "A cell reads **published / reproduced (reproduced − published)**; a value that cannot be compared "
             "with the paper's (measured on a stand-in, or FPS not on a GPU) is labelled, without a difference. "
             "The marks are explained under each table and in [Details](#details).", ""]
    low = sorted({row["row"] for _, group in summary.groupby("evaluation", sort=False) for row in rows_under_aim(group)})
    if low:
        lines += [f"**Read with care:** {', '.join(f'`{row}`' for row in low)} score under the first-frame copy + "
                  f"{100 * AIM_OVER_LOWER_BOUND:.0f} J&F on this preset; *Under the aim* above gives each one's "
                  "training length and held-out J.", ""]
    cited: set[str] = set()
    for table in published.tables.values():
        lines += render_paper_table(table, published, summary, evaluations, cited)
    return lines


def _figures_section(figures: list[tuple[str, str]]) -> list[str]:
    """Each figure with its caption; the qualitative strips of an evaluation (one per row, their captions alike
    but for the row: "<label> on <evaluation>: <what it shows>") under one shared caption, each named by its row."""
    if not figures:
        return []
    lines = ["## Figures", ""]
    shared = None
    for path, caption in figures:
        folder = Path(path).parent.name
        separator = f" on {folder.removeprefix('qualitative-')}: "
        if not folder.startswith("qualitative-") or separator not in caption:
            lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
            continue
        label, _, what = caption.partition(separator)
        if (folder, what) != shared:
            shared = (folder, what)
            lines += [f"Qualitative strips on {folder.removeprefix('qualitative-')}, one per row: "
                      f"{what[0].lower()}{what[1:]}", ""]
        lines += [f"![{label}]({path})", "", f"*{label}*", ""]
    return lines


CELL_FORMAT = (
    "Each cell of a reproduced row reads **published / reproduced (reproduced − published)** where the "
    "reproduced value is measured on the paper's own benchmark. A value measured on a *stand-in* (an "
    "evaluation that only stands in for the paper's benchmark, named above each table) reads "
    "**published / [stand-in value]**, without a difference: the two are not measured on the same videos. "
    "An FPS not measured on a GPU reads **published / value (CPU)**, without a difference: the papers' FPS "
    "are GPU figures. G and the YouTube-VOS seen / unseen columns are filled only by an evaluation that "
    "measures them, never by a DAVIS J&F. Where a published row can be filled by several reproduced rows "
    "(its label lists them, first choice first), each value names the row that filled it "
    "(\"from `row`\"). Marks: "
    f"**{NOT_PUBLISHED}** = not in the paper; **{NOT_MEASURED}** = not measured by this preset (no "
    "evaluation of or for the column's benchmark, the row did not run on it, or that evaluation does not "
    f"give the measure); **{NOT_RUN}** = this preset does not run the row; each table lists those it uses; "
    "a table of which the preset measured nothing is one line saying so. "
    "Rows without a reproduction (other methods) show the published value only. Figures are percentages; "
    "FPS is frames per second, published on the papers' GPUs, reproduced on the devices of the FPS line above. "
    "Methods are rows in every table (LWL's Tables 2 and 3 print them as columns).")

RELEASED_FORMAT = (
    "Where the authors' released weights ran (the row's label names a *released row*), a cell "
    "reads **published / released (released − published) / retrained (retrained − published)**: "
    "first the figure of the paper version the released file belongs to, then the authors' "
    "released checkpoint run through this suite's tracker (our inference on their weights), then "
    "the model trained here (our training and inference); on a stand-in or for a CPU FPS both "
    "parts are labelled as above, without a difference. A gap in the retrained value alone points "
    "at training, one in both at inference or evaluation. FRTM's released files are its CVPR 2020 "
    "version's: they stand beside the rows marked [FRTM (CVPR 2020, ...)] only, which have no "
    "retrained part (cells **published (CVPR 2020) / released**), while the rows retrained here "
    "keep the arXiv v1 figures; a released ResNet-18 file (FRTM fast) stands only beside a "
    "ResNet-18 row. Where the released file is not the model the figure is of (LWL's lwl_stage2 "
    "beside its DAVIS-fine-tuned figures) the released part reads [other model x], without a "
    "difference.")


def _details_section(summary: pd.DataFrame, description: str, datasets: dict, machine: str | None,
                     released_rows: set) -> list[str]:
    """What the header links to: the preset's description, data and machines, how to read a paper table's
    cell, and every DAVIS measure of every row."""
    lines = [
        "## Details", "",
        f"- **Preset:** {description}",
        "- **Data:** " + "; ".join(f"`{name}` ({spec.get('kind')}"
                                    + (f", {spec['root']}" if spec.get("root") else "") + ")"
                                    for name, spec in datasets.items()),
        f"- **Hardware:** {machine or hardware()}",
        f"- **FPS measured on:** {fps_machines(summary)}",
        "",
        "**Reading the papers' tables.** " + CELL_FORMAT, ""]
    if summary["row"].isin(released_rows).any():
        lines += [RELEASED_FORMAT, ""]
    lines += ["### All measures", "",
              "Every DAVIS measure (x 100) of each row this preset ran, and the objects it scored.", ""]
    for evaluation, group in summary.groupby("evaluation", sort=False):
        header = ["Method", *SHOWN, "FPS", "Device", "Objects"]
        lines += [f"#### {evaluation}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        unmeasured = False
        for _, row in group.iterrows():
            line, missing = _every_row_line(row, released_rows, None, set(), SHOWN)
            objects = NOT_MEASURED if _missing(row.get("objects")) else str(int(row["objects"]))
            lines.append(f"{line} {objects} |")
            unmeasured = unmeasured or missing or _missing(row.get("objects"))
        lines.append("")
        lines += _every_row_marks(group, unmeasured, f"**{NOT_MEASURED}** = not measured by this evaluation (a "
                                  "YouTube-VOS or server scoring gives no recall or decay; the server no objects count)")
    return lines


def render(summary: pd.DataFrame, preset: str, description: str, datasets: dict, evaluations: dict,
           published: Published, repo: Path, figures: list[tuple[str, str]] = (),
           provenance: str | None = None, machine: str | None = None) -> str:
    """The tables' Markdown: a short header, every reproduced row, the papers' tables, the seeds' spread, the
    figures and the details the header links to. figures: (relative path, caption) pairs; provenance: relative
    path of the manifest; machine: the hardware line of the provenance manifest (written where torch sees the
    GPUs; default: this process's view, hardware()). The summary's seed repeats (reporting.seeds) fill the seeds
    section only."""
    repeats_included, summary = summary, primary_rows(summary)
    released_rows = set(published.released_rows())
    ablation_order = [name for table in published.tables.values() for row in table.rows for name in row.candidates]
    lines = (_header(preset, summary, repo, provenance)
             + _every_row_section(summary, released_rows)
             + _papers_section(summary, published, evaluations)
             + seeds_section(repeats_included, ablation_order)
             + _figures_section(figures)
             + _details_section(summary, description, datasets, machine, released_rows))
    return "\n".join(lines)


def write(text: str, *outs: str | Path) -> None:
    for out in outs:
        atomic_write_text(out, text)
