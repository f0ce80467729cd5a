"""python -m interactive: the DAVIS interactive track (the package davisinteractive: `make interactive-setup`).

    python -m interactive standin --shared ../shared --kind single|multi --sequences a,b --out ROOT
    python -m interactive session --root ROOT --method scribble_copy [--settings JSON] [--sequences a,b]
        [--scribbles 1] [--chunk K/N] --max-interactions 8 [--max-time SECONDS] --out-dir DIR
    python -m interactive summarize --reports A/report.csv [B/report.csv ...] --root ROOT [--max-interactions 8]
        [--max-time SECONDS] --out summary.json
    python -m interactive download-scribbles --davis-root ROOT [--mirror URL] [--archive FILE]

A bad input (a missing file, an unknown sequence or method, bad settings) is one line on stderr naming it and
the fix, exit status 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from vos_datasets.download import DownloadError
from vos_datasets.fileio import atomic_path
from vos_datasets.shared import shared_dir

from .compat import DownloadRefused, MissingPackageError
from .dataset import InteractiveDataError, open_dataset

MAX_INTERACTIONS = 16  # the package caps a session at 16 interactions
MAX_TIME = 600  # and a sample at 600 s an object


def _names(text: str | None) -> list[str] | None:
    return [name for name in text.split(",") if name] if text else None


def _indices(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(index) for index in text.split(",") if index]
    except ValueError:
        raise InteractiveDataError(f"--scribbles {text}: give scribble numbers, e.g. 1 or 1,2") from None


def _chunk(text: str | None) -> tuple[int, int] | None:
    """--chunk K/N: the K-th of N parts of the sequences (every N-th from the K-th), 1 <= K <= N."""
    if not text:
        return None
    try:
        part, parts = (int(value) for value in text.split("/"))
    except ValueError:
        part = parts = 0
    if not 1 <= part <= parts:
        raise InteractiveDataError(f"--chunk {text}: give K/N with 1 <= K <= N, e.g. 2/6 (the second of six parts)")
    return part, parts


def _limits(max_interactions: int | None, max_time: float | None) -> None:
    if max_interactions is not None and not 1 <= max_interactions <= MAX_INTERACTIONS:
        raise InteractiveDataError(f"--max-interactions {max_interactions}: choose 1..{MAX_INTERACTIONS} (the "
                                   "package's limit)")
    if max_time is not None and not 0 < max_time <= MAX_TIME:
        raise InteractiveDataError(f"--max-time {max_time}: choose a time in (0, {MAX_TIME}] seconds an object "
                                   "(the package's limit), or leave it out for no time limit")


def cmd_standin(args) -> int:
    from .standin import build_standin

    shared = args.shared or shared_dir()
    if shared is None:
        raise InteractiveDataError("no shared folder: pass --shared DIR or set VOS_SHARED")
    root = build_standin(shared, args.kind, args.out, _names(args.sequences), args.max_frames, args.scale,
                         progress=not args.quiet)
    print(f"stand-in ({args.kind}) written to {root}")
    return 0


def cmd_session(args) -> int:
    from .session import run_session

    _limits(args.max_interactions, args.max_time)
    try:
        settings = json.loads(args.settings) if args.settings else {}
    except json.JSONDecodeError as err:
        raise InteractiveDataError(f"--settings {args.settings!r}: not JSON ({err})") from None
    dataset = open_dataset(args.root, _names(args.sequences), _indices(args.scribbles))
    chunk = _chunk(args.chunk)
    if chunk:  # chunked sessions of one run are merged by `summarize` (the suite's own AUC over all samples)
        part, parts = chunk
        names = dataset.sequences[part - 1::parts]
        if not names:
            raise InteractiveDataError(f"--chunk {args.chunk}: only {len(dataset.sequences)} sequence(s) to share; "
                                       "choose fewer parts")
        dataset = open_dataset(args.root, names, _indices(args.scribbles))
    summary = run_session(dataset, args.method, settings, args.max_interactions, args.max_time, args.out_dir,
                          progress=not args.quiet)
    table = " ".join(f"{row['J&F']:.3f}" for row in summary["per_interaction"])
    print(f"{args.method} on {dataset.label}: J&F per interaction {table}; AUC {summary['auc']:.3f}, "
          f"J&F@60s {summary['jf_at_60s']:.3f} ({summary['device']}); written to {args.out_dir}")
    return 0


def _agreed(chunks: list[dict], key, given, what: str):
    """A value the chunks' summaries must share (the command line's when given)."""
    if given is not None:
        return given
    values = {json.dumps(chunk.get(key) if not callable(key) else key(chunk), sort_keys=True) for chunk in chunks}
    if len(values) > 1:
        raise InteractiveDataError(f"the reports' summaries differ in {what} ({sorted(values)}): merge chunks of "
                                   "one run only")
    return json.loads(values.pop()) if values else None


def cmd_summarize(args) -> int:
    from .summary import package_summary, read_reports, summarize

    _limits(args.max_interactions, args.max_time)
    report = read_reports(args.reports)
    chunks = [json.loads(path.read_text()) for path in (Path(r).parent / "summary.json" for r in args.reports)
              if path.is_file()]
    sequences = _names(args.sequences)
    if sequences is None and chunks:
        sequences = [name for chunk in chunks for name in chunk["dataset"]["sequences"]]
    elif sequences is None:
        sequences = list(dict.fromkeys(report["sequence"]))
    scribbles = _indices(args.scribbles)
    if scribbles is None:
        count = _agreed(chunks, lambda chunk: chunk["dataset"]["scribbles"], None, "scribbles")
        scribbles = list(range(1, count + 1)) if count else None
    max_interactions = _agreed(chunks, "max_interactions", args.max_interactions, "max_interactions")
    max_time = _agreed(chunks, "max_time", args.max_time, "max_time")
    dataset = open_dataset(args.root, sequences, scribbles)
    own = summarize(report, dataset.entries, max_interactions, max_time)
    summary = {
        "dataset": dataset.summary_entry(),
        "method": _agreed(chunks, "method", None, "method"),
        "settings": _agreed(chunks, "settings", None, "settings"),
        **own,
        "package_summary": package_summary(report, dataset, max_interactions, max_time),
        "device": _agreed(chunks, "device", None, "device"),
        "threads": _agreed(chunks, "threads", None, "threads"),
        "reports": [str(path) for path in args.reports],
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"summary of {len(args.reports)} report(s) written to {args.out}")
    return 0


def cmd_download_scribbles(args) -> int:
    from .download import fetch_scribbles

    folder = fetch_scribbles(args.davis_root, args.mirror, args.archive, progress=not args.quiet)
    print(f"scribbles ready in {folder}")
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m interactive", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="no progress bars, no log lines")
    commands = main.add_subparsers(dest="command", required=True)

    standin = commands.add_parser("standin", parents=[common],
                                   help="build a stand-in dataset from the shared folder")
    standin.add_argument("--shared", type=Path, help="the shared folder (default: VOS_SHARED or ../shared)")
    standin.add_argument("--kind", choices=("single", "multi"), required=True)
    standin.add_argument("--sequences", help="comma-separated (default: every sequence the kind can hold)")
    standin.add_argument("--out", type=Path, required=True)
    standin.add_argument("--max-frames", type=int, help="the first N frames of each sequence (small tests)")
    standin.add_argument("--scale", type=float, default=1.0, help="resize frames and masks (small tests)")
    standin.set_defaults(run=cmd_standin)

    session = commands.add_parser("session", parents=[common],
                                   help="run an interactive session of one method")
    session.add_argument("--root", type=Path, required=True, help="DAVIS 2017 root or stand-in root")
    session.add_argument("--method", required=True, help="methods/registry.py INTERACTIVE_METHODS")
    session.add_argument("--settings", help="the method's settings as JSON")
    session.add_argument("--sequences", help="comma-separated subset (default: every val sequence)")
    session.add_argument("--scribbles", help="scribbles 1..k of every sequence, e.g. 1 (default: all)")
    session.add_argument("--chunk", help="K/N: the K-th of N parts of the sequences (every N-th from the K-th), "
                         "for sessions split over jobs and merged by `summarize`")
    session.add_argument("--max-interactions", type=int, required=True)
    session.add_argument("--max-time", type=float, help="seconds an object per sample (default: no limit)")
    session.add_argument("--out-dir", type=Path, required=True)
    session.set_defaults(run=cmd_session)

    summarize = commands.add_parser("summarize", parents=[common],
                                   help="summarise report.csv files (chunks of one run)")
    summarize.add_argument("--reports", type=Path, nargs="+", required=True)
    summarize.add_argument("--root", type=Path, required=True)
    summarize.add_argument("--sequences", help="default: the chunks' (their summary.json beside each report)")
    summarize.add_argument("--scribbles", help="default: the chunks'")
    summarize.add_argument("--max-interactions", type=int, help="default: the chunks'")
    summarize.add_argument("--max-time", type=float, help="default: the chunks'")
    summarize.add_argument("--out", type=Path, required=True)
    summarize.set_defaults(run=cmd_summarize)

    download = commands.add_parser("download-scribbles", parents=[common],
                                   help="download the DAVIS 2017 scribbles into a root")
    download.add_argument("--davis-root", type=Path, required=True)
    download.add_argument("--mirror", help="base URL that replaces the official host")
    download.add_argument("--archive", type=Path, help="use the archive already on disk")
    download.set_defaults(run=cmd_download_scribbles)
    return main


class _BesideProgressBars(logging.Handler):
    """Log lines above the progress bar, not run into it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[_BesideProgressBars()])
        logging.getLogger("absl").setLevel(logging.WARNING)  # the package's own INFO lines: several an interaction
    try:
        return args.run(args)
    except (InteractiveDataError, MissingPackageError, DownloadRefused, DownloadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
