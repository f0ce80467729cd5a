"""Cross-check the suite's DAVIS scores against the official toolkit (davisvideochallenge/davis2017-evaluation).

Run as a script, `python metrics/crosscheck.py COMMAND ...`: the `official` command runs inside the toolkit's own
environment (envs/davis2017-toolkit.yaml: NumPy < 1.24 for its `np.bool`), which does not have the suite's
packages, so this file imports nothing from the suite and only the standard library at module level.

  official DATASET MASKS --split val --year 2017 (--sequences A B | --split-file F) [--task T] --out DIR
      Scores MASKS with the toolkit's own `DAVISEvaluation` (task T: semi-supervised, the default, against
      DATASET/Annotations/480p, or unsupervised, against DATASET/Annotations_unsupervised/480p) and writes what
      its evaluation_method.py writes, global_results-<split>.csv and per-sequence_results-<split>.csv (3
      decimals), plus per-object_results-<split>.csv: the six figures of every object at full precision (the
      lists the toolkit returns, which evaluation_method.py only averages).
  compare OFFICIAL_DIR SUITE_DIR --official-set val --suite-set EVALUATION [--task T] --report REPORT.md
      Compares every figure the two hold, writes a Markdown table of the differences and exits 1, with one line
      naming the worst figure, when one differs by more than its tolerance (see `tolerance`).

docs/official-toolkit.md explains the workflow rule (workflow/rules/crosscheck.smk) that runs both.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

GLOBAL_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
OBJECT_COLUMNS = GLOBAL_COLUMNS[1:]
PER_SEQUENCE_COLUMNS = ["J-Mean", "F-Mean"]

# Both sides compute the same float64 formulas, so full-precision figures differ only by summation order
# (~1e-15); 1e-6 is the agreement metrics/README.md states and tests/test_metrics_fixtures.py checks.
AGREEMENT = 1e-6
# evaluation_method.py writes its CSVs with "%.3f": a printed figure lies within half a unit of its last digit
# of the true one.
PRINTED = 0.0005
# The toolkit's protocol of each task, as the suite records it in protocol-<set>.json (metrics.davis.Protocol;
# tables written before the unsupervised task record no task: semi-supervised).
TASKS = ("semi-supervised", "unsupervised")
OFFICIAL_PROTOCOLS = {
    "semi-supervised": {"task": "semi-supervised", "objects": "first-frame", "ignore_void": False,
                        "decay_uint8_quirk": True, "skip_first_last": True},
    "unsupervised": {"task": "unsupervised", "objects": "first-frame", "ignore_void": True,
                     "decay_uint8_quirk": True, "skip_first_last": False},
}
# The toolkit's annotation folder of each task (davis2017/davis.py).
ANNOTATIONS = {"semi-supervised": "Annotations", "unsupervised": "Annotations_unsupervised"}


class CrossCheckError(Exception):
    """A problem with the inputs, as one line naming the file and the fix."""


def tolerance(full_precision: bool) -> float:
    """How far a suite figure (always full precision) may lie from the official one."""
    return AGREEMENT if full_precision else PRINTED + AGREEMENT


def names(subset: str) -> dict[str, str]:
    return {"global": f"global_results-{subset}.csv", "per_sequence": f"per-sequence_results-{subset}.csv",
            "per_object": f"per-object_results-{subset}.csv", "protocol": f"protocol-{subset}.json"}


# ---------------------------------------------------------------------------------------------------------------
# official: run the toolkit


def read_split_file(path: Path) -> list[str]:
    """Sequence names of an ImageSets file, in order, in either official line format (DAVIS 2016 lines are
    "/JPEGImages/480p/<seq>/<frame>.jpg /Annotations/...")."""
    if not path.is_file():
        raise CrossCheckError(f"{path}: split file not found; pass --sequences or an existing --split-file")
    found: list[str] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        name = line.split()[0].strip("/").split("/")[2] if line.startswith("/") else line
        if name and name not in found:
            found.append(name)
    return found


def stage_dataset(dataset: Path, sequences: list[str], split: str, year: str, stage: Path,
                  task: str = "semi-supervised") -> None:
    """The layout the toolkit reads (`ImageSets/2017/<split>.txt`, `Annotations/480p/<seq>`, or for the unsupervised
    task `Annotations_unsupervised/480p/<seq>`), in `stage`.

    The split file lists exactly the scored sequences. DAVIS 2017 annotations are linked as they are; DAVIS 2016
    ones (0/255, one object) are written with 255 -> 1, as FRTM and pytracking feed them to the toolkit, which would
    otherwise read 255 as void and score no object at all.
    """
    import numpy as np
    from PIL import Image

    # the toolkit reads the unsupervised test sets' lists from ImageSets/2019
    lists = "2019" if task == "unsupervised" and split in ("test-dev", "test-challenge") else "2017"
    (stage / "ImageSets" / lists).mkdir(parents=True)
    (stage / "ImageSets" / lists / f"{split}.txt").write_text("".join(f"{name}\n" for name in sequences))
    annotations = stage / ANNOTATIONS[task] / "480p"
    annotations.mkdir(parents=True)
    for name in sequences:
        source = dataset / ANNOTATIONS[task] / "480p" / name
        if not source.is_dir():
            raise CrossCheckError(f"{source}: no annotation folder for sequence {name}")
        if year != "2016":
            (annotations / name).symlink_to(source.resolve(), target_is_directory=True)
            continue
        (annotations / name).mkdir()
        for png in sorted(source.glob("*.png")):
            ids = np.array(Image.open(png))
            if ids.ndim != 2 or not set(np.unique(ids).tolist()) <= {0, 255}:
                raise CrossCheckError(f"{png}: not a DAVIS 2016 mask (one channel, values 0 and 255); "
                                      "set the dataset's `year` to the convention its masks use")
            Image.fromarray((ids == 255).astype(np.uint8)).save(annotations / name / png.name)


def run_official(dataset: Path, masks: Path, sequences: list[str], split: str, year: str,
                 task: str = "semi-supervised") -> list[dict]:
    """The toolkit's per-object figures (of `task`), in its order."""
    try:
        from davis2017.evaluation import DAVISEvaluation
    except ImportError as err:
        raise CrossCheckError(f"the official toolkit is not installed ({err}); run in envs/davis2017-toolkit.yaml "
                              "(snakemake --use-conda), see docs/official-toolkit.md") from err
    with tempfile.TemporaryDirectory(prefix="davis2017-stage-") as stage:
        stage_dataset(dataset, sequences, split, year, Path(stage), task)
        try:
            # codalab=True: the toolkit reads no JPEG (it would otherwise require them beside the annotations)
            evaluation = DAVISEvaluation(davis_root=stage, task=task, gt_set=split, sequences=sequences,
                                         codalab=True)
            figures = evaluation.evaluate(str(masks))
        except SystemExit as stop:  # the toolkit calls sys.exit() (status 0) on a missing frame or an unknown id
            cause = ("an object id above those of the first frame" if task == "semi-supervised"
                     else "a proposal id above 20")
            raise CrossCheckError(f"{masks}: the official toolkit stopped (sys.exit {stop.code!r}); its message is "
                                  f"above: a missing prediction or {cause}") from None
        except (ValueError, FileNotFoundError) as err:
            raise CrossCheckError(f"{masks}: the official toolkit refused the input ({err}); check the folder "
                                  f"against the annotations of {dataset}") from None
    j, f = figures["J"], figures["F"]
    return [{"Sequence": name, "J-Mean": j["M"][i], "J-Recall": j["R"][i], "J-Decay": j["D"][i],
             "F-Mean": f["M"][i], "F-Recall": f["R"][i], "F-Decay": f["D"][i]}
            for i, name in enumerate(j["M_per_object"])]


def write_official_tables(rows: list[dict], out: Path, split: str) -> None:
    """The tables of evaluation_method.py (same names, columns and "%.3f"), plus the full-precision per-object one."""
    import numpy as np
    import pandas as pd

    files = names(split)
    objects = pd.DataFrame(rows, columns=["Sequence", *OBJECT_COLUMNS])
    means = {column: np.mean([row[column] for row in rows]) for column in OBJECT_COLUMNS}  # as evaluation_method.py
    glob = pd.DataFrame([[(means["J-Mean"] + means["F-Mean"]) / 2.0, *means.values()]], columns=GLOBAL_COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    glob.to_csv(out / files["global"], index=False, float_format="%.3f")
    objects[["Sequence", *PER_SEQUENCE_COLUMNS]].to_csv(out / files["per_sequence"], index=False, float_format="%.3f")
    objects.to_csv(out / files["per_object"], index=False)  # repr of each float: exact


# ---------------------------------------------------------------------------------------------------------------
# compare: official against suite


@dataclass
class Difference:
    scope: str  # "global" or an object "<sequence>_<id>"
    figure: str
    official: float
    suite: float
    tolerance: float

    @property
    def gap(self) -> float:
        """|official - suite|; NaN on both sides agrees, NaN on one side is infinitely far."""
        nans = math.isnan(self.official) + math.isnan(self.suite)
        return 0.0 if nans == 2 else math.inf if nans == 1 else abs(self.official - self.suite)

    @property
    def failed(self) -> bool:
        return self.gap > self.tolerance


def _number(text: str) -> float:
    return math.nan if text.strip() == "" else float(text)  # pandas writes NaN as an empty field


def read_rows(path: Path, columns: list[str], key: str | None) -> dict[str, dict[str, float]] | dict[str, float]:
    """A CSV's figures: by the `key` column (one dict per row), or the single row itself when key is None."""
    if not path.is_file():
        raise CrossCheckError(f"{path}: not found; run the official toolkit (or the suite) into that folder first")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns + ([key] if key else []) if c not in (reader.fieldnames or [])]
        if missing:
            raise CrossCheckError(f"{path}: columns {missing} missing (has {reader.fieldnames}); not a DAVIS "
                                  "results table")
        try:
            rows = [{c: (row[c] if c == key else _number(row[c])) for c in columns + ([key] if key else [])}
                    for row in reader]
        except ValueError as err:
            raise CrossCheckError(f"{path}: a figure is not a number ({err})") from None
    if key is None:
        if len(rows) != 1:
            raise CrossCheckError(f"{path}: expected one row of global figures, found {len(rows)}")
        return rows[0]
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        name = row.pop(key)
        if name in table:
            raise CrossCheckError(f"{path}: object {name} listed twice")
        table[name] = row
    return table


def read_suite(suite: Path, subset: str, task: str = "semi-supervised") -> tuple[dict[str, float],
                                                                               dict[str, dict[str, float]]]:
    """The suite's global figures (full precision, from protocol-<set>.json) and per-object figures, scored with
    the toolkit's protocol of `task`."""
    files = names(subset)
    marker = suite / files["protocol"]
    try:
        info = json.loads(marker.read_text())
    except FileNotFoundError:
        raise CrossCheckError(f"{marker}: absent, so {suite} is not a complete set of the suite's tables; "
                              "evaluate again (python -m metrics)") from None
    except ValueError as err:
        raise CrossCheckError(f"{marker}: not JSON ({err}); evaluate again") from None
    protocol = {"task": "semi-supervised", **info.get("protocol", {})}
    official = OFFICIAL_PROTOCOLS[task]
    different = {k: protocol.get(k) for k, v in official.items() if protocol.get(k) != v}
    if different:
        raise CrossCheckError(f"{marker}: the suite scored with {different}, not the official protocol "
                              f"of the {task} task {official}; cross-check an evaluation scored with that protocol (or pass the "
                              "--task it was scored with)")
    glob = info.get("global")
    if not isinstance(glob, dict) or any(not isinstance(glob.get(c), (int, float)) for c in GLOBAL_COLUMNS):
        raise CrossCheckError(f"{marker}: no full-precision global figures {GLOBAL_COLUMNS}; evaluate again")
    objects = read_rows(suite / files["per_object"], OBJECT_COLUMNS, "Sequence")
    return {c: float(glob[c]) for c in GLOBAL_COLUMNS}, objects


def compare(official: Path, suite: Path, official_set: str, suite_set: str,
            task: str = "semi-supervised") -> tuple[list[Difference], list[str]]:
    """Every figure both sides report, and the objects only one side scored.

    Official per-object figures come from per-object_results (full precision, written by the `official` command)
    when present, else from the toolkit's per-sequence_results (J-Mean and F-Mean, 3 decimals); the global ones
    from its global_results (3 decimals). The suite's are full precision throughout.
    """
    files = names(official_set)
    suite_global, suite_objects = read_suite(suite, suite_set, task)
    official_global = read_rows(official / files["global"], GLOBAL_COLUMNS, None)
    differences = [Difference("global", c, official_global[c], suite_global[c], tolerance(False))
                   for c in GLOBAL_COLUMNS]
    full = (official / files["per_object"]).is_file()
    if full:
        official_objects = read_rows(official / files["per_object"], OBJECT_COLUMNS, "Sequence")
    else:
        official_objects = read_rows(official / files["per_sequence"], PER_SEQUENCE_COLUMNS, "Sequence")
    unmatched = [f"{name} (official only)" for name in official_objects if name not in suite_objects]
    unmatched += [f"{name} (suite only)" for name in suite_objects if name not in official_objects]
    for name, figures in official_objects.items():
        if name in suite_objects:
            differences += [Difference(name, c, value, suite_objects[name][c], tolerance(full))
                            for c, value in figures.items()]
    return differences, unmatched


def render(differences: list[Difference], unmatched: list[str], official: Path, suite: Path, shown: int = 10) -> str:
    objects = [d for d in differences if d.scope != "global"]
    worst = sorted(objects, key=lambda d: d.gap / d.tolerance, reverse=True)[:shown]
    failed = [d for d in differences if d.failed]
    lines = [
        "# Official toolkit cross-check",
        "",
        f"Official (davis2017-evaluation): `{official}`; suite: `{suite}`.",
        f"{len(differences)} figures compared: {len(differences) - len(objects)} global, {len(objects)} per object "
        f"({len({d.scope for d in objects})} objects). Tolerance: {AGREEMENT:g} where both are full precision, "
        f"{PRINTED + AGREEMENT:g} against a figure the toolkit printed with 3 decimals.",
        "",
        f"**Result: {'FAILED' if failed or unmatched else 'passed'}** ({len(failed)} figures beyond tolerance"
        + (f"; objects scored by one side only: {', '.join(unmatched)}" if unmatched else "") + ").",
        "",
        "| scope | figure | official | suite | difference | tolerance |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for d in [*(d for d in differences if d.scope == "global"), *worst]:
        mark = " **over**" if d.failed else ""
        printed = f"{d.official:.3f}" if d.tolerance > AGREEMENT else f"{d.official:.9f}"  # as the toolkit wrote it
        lines.append(f"| {d.scope} | {d.figure} | {printed} | {d.suite:.9f} | {d.gap:.2e}{mark} | {d.tolerance:g} |")
    if objects:
        lines.append(f"\nPer-object rows: the {len(worst)} largest of {len(objects)} differences (relative to their "
                     f"tolerance); the largest per-object difference is {max(d.gap for d in objects):.2e}.")
    return "\n".join(lines) + "\n"


def verdict(differences: list[Difference], unmatched: list[str]) -> str | None:
    """None when everything agrees, else one line naming the worst figure (or the unmatched objects)."""
    if unmatched:
        return f"objects scored by one side only: {', '.join(unmatched[:5])}" + (" ..." if len(unmatched) > 5 else "")
    failed = [d for d in differences if d.failed]
    if not failed:
        return None
    d = max(failed, key=lambda d: d.gap / d.tolerance)
    return (f"{len(failed)} of {len(differences)} figures beyond tolerance; worst: {d.figure} of {d.scope}: official {d.official:.9f}, "
            f"suite {d.suite:.9f} (difference {d.gap:.2e} > {d.tolerance:g})")


# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python metrics/crosscheck.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("official", help="score a result folder with the official toolkit")
    run.add_argument("dataset", type=Path, help="DAVIS root holding Annotations/480p/<sequence>")
    run.add_argument("masks", type=Path, help="results: <sequence>/<frame>.png, indexed with the annotation's ids")
    run.add_argument("--split", default="val", help="the toolkit's subset name (train, val, ...), used in file names")
    run.add_argument("--year", choices=["2016", "2017"], default="2017",
                     help="2016: annotations are 0/255 masks of one object (given to the toolkit as 0/1)")
    selection = run.add_mutually_exclusive_group(required=True)
    selection.add_argument("--sequences", nargs="+")
    selection.add_argument("--split-file", type=Path)
    run.add_argument("--task", choices=TASKS, default="semi-supervised",
                     help="the toolkit's task (default semi-supervised; unsupervised reads Annotations_unsupervised)")
    run.add_argument("--objects", default="first-frame",
                     help="the evaluation's `objects` setting: the toolkit has only first-frame")
    run.add_argument("--evaluation", default="this evaluation", help="its name, for messages")
    run.add_argument("--out", type=Path, required=True, help="folder for the toolkit's tables")
    check = commands.add_parser("compare", help="compare the toolkit's tables with the suite's")
    check.add_argument("official", type=Path, help="folder of the toolkit's tables")
    check.add_argument("suite", type=Path, help="folder of the suite's tables (python -m metrics --out)")
    check.add_argument("--official-set", default="val", help="the toolkit's subset name in its file names")
    check.add_argument("--suite-set", default="val", help="the suite's --set name in its file names")
    check.add_argument("--task", choices=TASKS, default="semi-supervised",
                       help="the task both scored (the suite's tables must record its official protocol)")
    check.add_argument("--report", type=Path, required=True, help="Markdown file for the table of differences")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "official":
            if args.objects != "first-frame":
                raise CrossCheckError(f"evaluations.{args.evaluation}.objects is {args.objects!r}: the official toolkit "
                                      "scores only the objects of the first frame, so there is nothing to cross-check; "
                                      "use an evaluation with objects: first-frame")
            if args.task == "unsupervised" and args.year == "2016":
                raise CrossCheckError(f"{args.dataset}: DAVIS 2016 has no unsupervised annotations; score the "
                                      "unsupervised task on DAVIS 2017 (Annotations_unsupervised)")
            sequences = args.sequences or read_split_file(args.split_file)
            rows = run_official(args.dataset, args.masks, sequences, args.split, args.year, args.task)
            write_official_tables(rows, args.out, args.split)
            print(f"official toolkit: {len(rows)} objects in {len(sequences)} sequences; tables in {args.out}")
            return 0
        differences, unmatched = compare(args.official, args.suite, args.official_set, args.suite_set, args.task)
        report = render(differences, unmatched, args.official, args.suite)
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report)
        print(report)
        problem = verdict(differences, unmatched)
        if problem:
            print(f"error: {args.report}: {problem}", file=sys.stderr)
            return 1
        return 0
    except CrossCheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
