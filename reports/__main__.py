"""python -m reports aggregate|render ...   (called by the workflow's report rules)"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from .aggregate import collect, write_summary
from .render import render, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports")
    sub = parser.add_subparsers(dest="command", required=True)
    agg = sub.add_parser("aggregate", help="collect scores and timings of a preset into a summary CSV")
    agg.add_argument("--preset", required=True)
    agg.add_argument("--rows", required=True, help="the preset's rows config as JSON")
    agg.add_argument("--results", type=Path, required=True)
    agg.add_argument("--out", type=Path, required=True)
    ren = sub.add_parser("render", help="render reports/tables.md from a summary CSV")
    ren.add_argument("--summary", type=Path, required=True)
    ren.add_argument("--preset", required=True)
    ren.add_argument("--description", default="")
    ren.add_argument("--datasets", default="{}", help="the preset's datasets config as JSON")
    ren.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "aggregate":
        write_summary(collect(args.preset, json.loads(args.rows), args.results), args.out)
    else:
        summary = pd.read_csv(args.summary)
        repo = Path(__file__).resolve().parent.parent
        write(render(summary, args.preset, args.description, json.loads(args.datasets), repo), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
