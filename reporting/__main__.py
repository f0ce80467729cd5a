"""python -m reporting aggregate|plots|provenance|render|regress|interactive ...   (called by the workflow's report rules)"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

from vos_datasets.masks import MaskFormatError
from vos_datasets.sequence import DatasetError

from .aggregate import collect, write_summary
from .interactive import PUBLISHED_INTERACTIVE, InteractiveSummaryError, write_interactive_report
from .plots import EvaluationData, evaluation_figures, figure_list, speed_accuracy, training_curves
from .provenance import build_manifest, git_commit, hardware, write_manifest
from .published import PUBLISHED_FILE, load_published
from .regression import Run, compare, frames_file, refresh_baseline, render_comparison, write_baseline
from .render import measured_on, render, write
from .seeds import primary_rows

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reporting")
    sub = parser.add_subparsers(dest="command", required=True)
    agg = sub.add_parser("aggregate", help="collect scores and timings of a preset into a summary CSV")
    agg.add_argument("--preset", required=True)
    agg.add_argument("--rows", required=True, help="the preset's rows config as JSON")
    agg.add_argument("--results", type=Path, required=True)
    agg.add_argument("--protocols", default="{}", help="JSON: evaluation -> davis | youtube_vos | server")
    agg.add_argument("--server-results", type=Path, help="the figures the YouTube-VOS server returned (YAML)")
    agg.add_argument("--out", type=Path, required=True)

    speed = sub.add_parser("plot-speed", help="the speed vs accuracy figure (PNG)")
    speed.add_argument("--summary", type=Path, required=True)
    speed.add_argument("--evaluations", required=True, help="the preset's evaluations config as JSON")
    speed.add_argument("--published", type=Path, default=PUBLISHED_FILE)
    speed.add_argument("--out", type=Path, required=True)
    plots = sub.add_parser("plot-evaluation", help="the figures of one evaluation (PNG)")
    plots.add_argument("--summary", type=Path, required=True)
    plots.add_argument("--results", type=Path, required=True)
    plots.add_argument("--evaluation", required=True)
    plots.add_argument("--root", type=Path, required=True, help="the evaluation's dataset root")
    plots.add_argument("--qualitative-sequence", help="the sequence of the qualitative strips")
    plots.add_argument("--out-dir", type=Path, required=True)
    curves = sub.add_parser("plot-training", help="the training curves of a preset's trainings (PNG)")
    curves.add_argument("--histories", type=Path, nargs="*", default=[],
                        help="each training's head.json (results/<preset>/training/<name>/head.json)")
    curves.add_argument("--out", type=Path, required=True)

    prov = sub.add_parser("provenance", help="write the provenance manifest of a run")
    prov.add_argument("--preset", required=True)
    prov.add_argument("--config", required=True, help="the resolved config as JSON")
    prov.add_argument("--heads", nargs="*", default=[], help="trained weight files")
    prov.add_argument("--released", type=Path, nargs="*", default=[],
                      help="the records of the released weights files (results/<preset>/released/<file>.json)")
    prov.add_argument("--datasets", required=True, help="JSON: dataset name -> root")
    prov.add_argument("--timings", nargs="*", default=[], type=Path,
                      help="the rows' timing.json files: the devices the infer jobs ran on")
    prov.add_argument("--out", type=Path, required=True)

    ren = sub.add_parser("render", help="render the tables (markdown) from a summary CSV")
    ren.add_argument("--summary", type=Path, required=True)
    ren.add_argument("--preset", required=True)
    ren.add_argument("--description", default="")
    ren.add_argument("--datasets", default="{}", help="the preset's datasets config as JSON")
    ren.add_argument("--evaluations", default="{}", help="the preset's evaluations config as JSON")
    ren.add_argument("--published", type=Path, default=PUBLISHED_FILE)
    ren.add_argument("--figures", type=Path, help="the figures folder")
    ren.add_argument("--provenance", type=Path, help="the provenance manifest to link")
    ren.add_argument("--out", type=Path, nargs="+", required=True, help="one or more copies to write")

    reg = sub.add_parser("regress", help="compare a summary with a committed baseline (CI regression check)")
    reg.add_argument("--results", type=Path, required=True, help="the run's results/<preset>/ folder")
    reg.add_argument("--baseline", type=Path, required=True)
    reg.add_argument("--preset-file", type=Path, help="the preset's YAML: its rows must be of the kinds measured")
    base = sub.add_parser("baseline", help="write a regression baseline from several runs, tolerances derived "
                                           "from their spread (refreshing it)")
    base.add_argument("--run", type=Path, nargs="+", required=True,
                      help="one results/<preset>/ folder per run (seeds, thread counts), the per-frame reference "
                           "first; the folder name labels the run")
    base.add_argument("--preset-file", type=Path, required=True, help="the preset's YAML (which rows train)")
    base.add_argument("--out", type=Path, required=True)
    base.add_argument("--rows", nargs="+", help="remake only these rows' entries of the existing baseline --out "
                                                "(and their per-frame references); every other entry stays")
    inter = sub.add_parser("interactive", help="the interactive track's table (markdown) and plots (PNG)")
    inter.add_argument("--preset", required=True)
    inter.add_argument("--summaries", type=Path, nargs="+", required=True,
                       help="each session's summary.json (results/<preset>/interactive/<session>/summary.json)")
    inter.add_argument("--labels", default="{}", help="JSON: session -> label")
    inter.add_argument("--notes", default="{}", help="JSON: session -> a line under the table")
    inter.add_argument("--published", type=Path, default=PUBLISHED_INTERACTIVE)
    inter.add_argument("--out", type=Path, required=True)
    inter.add_argument("--figure-interactions", type=Path, required=True)
    inter.add_argument("--figure-time", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (DatasetError, MaskFormatError, InteractiveSummaryError) as err:  # one line naming the file
        print(f"error: {err}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "aggregate":
        write_summary(collect(args.preset, json.loads(args.rows), args.results, json.loads(args.protocols),
                              args.server_results), args.out)
    elif args.command == "plot-speed":
        summary = primary_rows(pd.read_csv(args.summary))  # the seed repeats are in the seeds table only
        speed_accuracy(summary, load_published(args.published), json.loads(args.evaluations), measured_on(summary),
                       args.out)
    elif args.command == "plot-evaluation":
        evaluation = EvaluationData(args.evaluation, args.root, qualitative_sequence=args.qualitative_sequence)
        evaluation_figures(primary_rows(pd.read_csv(args.summary)), evaluation, args.results, args.out_dir)
    elif args.command == "interactive":
        write_interactive_report(args.preset, args.summaries, json.loads(args.labels), args.published, args.out,
                                 args.figure_interactions, args.figure_time, json.loads(args.notes))
    elif args.command == "plot-training":
        training_curves(args.histories, args.out)
    elif args.command == "provenance":
        manifest = build_manifest(args.preset, json.loads(args.config), args.heads, json.loads(args.datasets), REPO,
                                  released=[json.loads(path.read_text()) for path in args.released],
                                  timings=args.timings)
        write_manifest(manifest, args.out)
    elif args.command == "render":
        summary, published = pd.read_csv(args.summary), load_published(args.published)
        found = figure_list(args.figures, summary) if args.figures is not None else []
        # the machine as the provenance job saw it (torch's view of the GPUs; this job may run without torch)
        machine = json.loads(args.provenance.read_text())["device"]["hardware"] if args.provenance else None
        for out in args.out:  # links are relative to each copy
            figures = [(os.path.relpath(path, out.parent), text) for path, text in found]
            provenance = os.path.relpath(args.provenance, out.parent) if args.provenance else None
            text = render(summary, args.preset, args.description, json.loads(args.datasets),
                          json.loads(args.evaluations), published, REPO, figures, provenance, machine)
            write(text, out)
    elif args.command in ("baseline", "regress"):
        try:
            return regression_command(args)
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    print(f"{args.command}: done")
    return 0


def regression_command(args: argparse.Namespace) -> int:
    preset = yaml.safe_load(args.preset_file.read_text()) if args.preset_file else None
    if args.command == "baseline":
        runs = [Run(path.name, path) for path in args.run]
        if args.rows:
            refresh_baseline(runs, preset, hardware(), args.out, args.rows, commit=git_commit(REPO))
            print(f"baseline: rows {', '.join(args.rows)} of {args.out} remade from {len(runs)} runs, the others kept")
            return 0
        write_baseline(runs, preset, hardware(), args.out, commit=git_commit(REPO))
        print(f"baseline: {args.out} and {frames_file(args.out)} from {len(args.run)} runs")
        return 0
    result = compare(args.results, args.baseline, preset)
    print(render_comparison(result))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
