"""The suite's evaluator against the official DAVIS 2017 toolkit, both as cold command lines on identical inputs,
in one run.

    python benchmarks/evaluator_vs_toolkit.py --toolkit-python TOOLKIT_ENV/bin/python \
        --toolkit-source davis2017-evaluation/ [--repeats 3] [--workers N] [--keep WORK_DIR]

The set: 20 sequences of ../shared/data/davis2017-val-osvos (every multi-object one, then single-object ones in
name order), their OSVOS masks as ground truth and perturbed copies as predictions (`perturbed_prediction`:
objects shifted, grown, shrunk, dropped, swapped and blotted, seeded by the sequence's name, so every run builds
the same files). It is built afresh in a temporary folder (or --keep) from ../shared ($VOS_SHARED).

Each side is timed as a fresh process, wall clock, from start to exit, with the PNGs in the page cache:
- ours: `python -m metrics GT PRED --out OUT --no-cache --quiet` (no ground-truth cache: every PNG decoded), and
  the same with the command line's default, the ground-truth cache, built in an empty folder (every PNG decoded,
  hashed and stored), then once more with that cache warm (the ground truth hashed and read from the cache);
- the toolkit: its own command line, `python evaluation_method.py --task semi-supervised --set val
  --davis_path ROOT --results_path PRED`, on a DAVIS folder laid out as it expects (ImageSets/2017/val.txt naming
  the 20 sequences, Annotations/480p = the ground truth, and JPEGImages/480p holding an empty `<frame>.jpg` per
  mask: the toolkit lists the JPEGs to count frames but never opens them when it scores). It writes its CSVs into
  the results folder and silently reuses them on a later run, so they are deleted before every run.
The runs alternate (toolkit, ours, toolkit, ours, ...); the medians are compared. Every global figure of ours must
equal the toolkit's printed one (3 decimals) or the script fails; `tests/test_metrics_fixtures.py` checks the
figures to 1e-6 on the fixtures.

--toolkit-python defaults to $DAVIS2017_TOOLKIT_PYTHON, --toolkit-source to $DAVIS2017_TOOLKIT_SOURCE (the
toolkit's repository at the commit envs/davis2017-toolkit.yaml pins: pip does not install evaluation_method.py).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vos_datasets.masks import read_label_png, write_label_png  # noqa: E402
from vos_datasets.shared import require_shared  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
N_SEQUENCES = 20
FIGURES = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]


def choose_sequences(osvos: Path, count: int = N_SEQUENCES) -> list[str]:
    """Every sequence whose first mask holds two or more objects, then single-object ones, each in name order."""
    names = sorted(p.name for p in osvos.iterdir() if p.is_dir())
    objects = {name: int(read_label_png(min((osvos / name).glob("*.png")), "davis2017").max()) for name in names}
    ordered = [n for n in names if objects[n] >= 2] + [n for n in names if objects[n] < 2]
    return ordered[:count]


def perturbed_prediction(ids: np.ndarray, n_objects: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible imperfect prediction of the label map `ids`: each object is kept, shifted by a few pixels,
    grown, shrunk or dropped; sometimes two objects swap ids, and a blot of a random object is painted. Ids
    above `n_objects` (the toolkit's objects: 1..max id of the first frame) are left out, as a method would."""
    import cv2

    out = np.zeros_like(ids)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    for oid in range(1, n_objects + 1):
        mask = (ids == oid).astype(np.uint8)
        action = rng.choice(["keep", "shift", "grow", "shrink", "drop"], p=[0.3, 0.25, 0.2, 0.2, 0.05])
        if action == "shift":
            dy, dx = rng.integers(-6, 7, size=2)
            mask = np.roll(mask, (dy, dx), axis=(0, 1))
        elif action == "grow":
            mask = cv2.dilate(mask, kernel, iterations=int(rng.integers(1, 3)))
        elif action == "shrink":
            mask = cv2.erode(mask, kernel, iterations=int(rng.integers(1, 3)))
        elif action == "drop":
            mask[:] = 0
        out[mask.astype(bool)] = oid
    if n_objects >= 2 and rng.random() < 0.15:
        a, b = rng.choice(np.arange(1, n_objects + 1), size=2, replace=False)
        out = np.where(out == a, b, np.where(out == b, a, out)).astype(ids.dtype)
    if rng.random() < 0.3:
        height, width = ids.shape
        cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
        axes = (int(rng.integers(5, 40)), int(rng.integers(5, 40)))
        cv2.ellipse(out, (cx, cy), axes, 0, 0, 360, int(rng.integers(0, n_objects + 1)), -1)
    return out


def build_set(work: Path, shared_osvos: Path, sequences: list[str]) -> dict[str, Path]:
    """The toolkit's DAVIS folder (ground truth, ImageSets, empty JPEGs), the predictions, and our output folder."""
    root, pred = work / "DAVIS", work / "pred"
    (root / "ImageSets/2017").mkdir(parents=True)
    (root / "ImageSets/2017/val.txt").write_text("".join(f"{name}\n" for name in sequences))
    for name in sequences:
        pngs = sorted((shared_osvos / name).glob("*.png"))
        n_objects = int(read_label_png(pngs[0], "davis2017").max())
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        (root / "JPEGImages/480p" / name).mkdir(parents=True)
        for png in pngs:
            ids = read_label_png(png, "davis2017")
            write_label_png(root / "Annotations/480p" / name / png.name, ids)
            write_label_png(pred / name / png.name, perturbed_prediction(ids, n_objects, rng))
            (root / "JPEGImages/480p" / name / f"{png.stem}.jpg").touch()
    for png in list(root.rglob("*.png")) + list(pred.rglob("*.png")):
        png.read_bytes()  # in the page cache for both sides alike
    return {"root": root, "gt": root / "Annotations/480p", "pred": pred, "out": work / "ours"}


def run_timed(command: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the process and its children) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def read_global(csv_path: Path) -> dict[str, float]:
    with open(csv_path, newline="") as handle:
        row = next(csv.DictReader(handle))
    return {key: float(row[key]) for key in FIGURES}


def figures_check(suite: dict[str, float], official: dict[str, float]) -> int:
    """0 where every global figure of ours rounds to the toolkit's printed one (3 decimals); 1, naming them, otherwise."""
    differ = [key for key in FIGURES if abs(round(suite[key], 3) - official[key]) > 1e-9]
    if differ:
        print(f"error: figures differ from the toolkit's: {[(k, official[k], suite[k]) for k in differ]}", file=sys.stderr)
        return 1
    return 0


def add_toolkit_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a side-by-side run with the official toolkit (this script and unsupervised_vs_toolkit.py)."""
    parser.add_argument("--toolkit-python", type=Path, default=os.environ.get("DAVIS2017_TOOLKIT_PYTHON"),
                        help="a Python with the toolkit installed (default $DAVIS2017_TOOLKIT_PYTHON)")
    parser.add_argument("--toolkit-source", type=Path, default=os.environ.get("DAVIS2017_TOOLKIT_SOURCE"),
                        help="the toolkit's repository, holding evaluation_method.py (default $DAVIS2017_TOOLKIT_SOURCE)")
    parser.add_argument("--python", type=Path, default=Path(sys.executable), help="the suite's Python (default: this one)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (default 3); the medians are compared")
    parser.add_argument("--workers", type=int, default=None, help="our processes (default: every core)")
    parser.add_argument("--keep", type=Path, default=None, help="build the set in this (new) folder and keep it")


def toolkit_script(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """The toolkit's evaluation_method.py; a usage error naming what is missing otherwise."""
    if args.toolkit_python is None or args.toolkit_source is None:
        parser.error("give --toolkit-python and --toolkit-source (or $DAVIS2017_TOOLKIT_PYTHON and "
                     "$DAVIS2017_TOOLKIT_SOURCE): see docs/official-toolkit.md for its environment")
    script = args.toolkit_source / "evaluation_method.py"
    if not script.is_file():
        parser.error(f"{script} not found: --toolkit-source must be the toolkit's repository")
    return script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_toolkit_arguments(parser)
    args = parser.parse_args(argv)
    script = toolkit_script(parser, args)
    osvos = require_shared("data", "davis2017-val-osvos")
    work = Path(tempfile.mkdtemp(prefix="evaluator-vs-toolkit-")) if args.keep is None else args.keep
    try:
        sequences = choose_sequences(osvos)
        paths = build_set(work, osvos, sequences)
        ours = [str(args.python), "-m", "metrics", str(paths["gt"]), str(paths["pred"]), "--out", str(paths["out"]),
                "--no-cache", "--quiet"] + ([] if args.workers is None else ["--workers", str(args.workers)])
        theirs = [str(args.toolkit_python), str(script.resolve()), "--task", "semi-supervised", "--set", "val",
                  "--davis_path", str(paths["root"]), "--results_path", str(paths["pred"])]
        # the command line's default: the ground-truth cache on, built afresh in an empty folder each run
        building = [*ours[:ours.index("--no-cache")], "--cache-dir", str(work / "gt-cache"),
                    *ours[ours.index("--no-cache") + 1:]]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        times: dict[str, list[float]] = {"toolkit": [], "ours": [], "ours-building-cache": [], "ours-warm-cache": []}
        cpu: dict[str, list[float]] = {key: [] for key in times}
        for _ in range(args.repeats):
            for csv_name in ("global_results-val.csv", "per-sequence_results-val.csv"):
                (paths["pred"] / csv_name).unlink(missing_ok=True)  # else the toolkit reuses them
            shutil.rmtree(work / "gt-cache", ignore_errors=True)
            for key, command, cwd, environment in (("toolkit", theirs, args.toolkit_source, None),
                                                   ("ours", ours, REPO, env),
                                                   ("ours-building-cache", building, REPO, env),
                                                   ("ours-warm-cache", building, REPO, env)):  # the cache just built
                seconds, cpu_seconds = run_timed(command, cwd=cwd, env=environment)
                times[key].append(seconds)
                cpu[key].append(cpu_seconds)
        official = read_global(paths["pred"] / "global_results-val.csv")
        suite = read_global(paths["out"] / "global_results-val.csv")
        n_objects = len((paths["out"] / "per-object_results-val.csv").read_text().splitlines()) - 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    toolkit_s = statistics.median(times["toolkit"])
    print(f"{len(sequences)} sequences, {n_objects} objects; {platform.node()}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| evaluator (cold command line) | runs, wall (s) | median wall (s) | median CPU, user + system (s) | J&F-Mean |")
    print("|---|---|---|---|---|")
    for label, key, figures in (("official toolkit, evaluation_method.py", "toolkit", official),
                                ("ours, python -m metrics --no-cache", "ours", suite),
                                ("ours, default: building the ground-truth cache", "ours-building-cache", suite),
                                ("ours, default: the ground-truth cache warm", "ours-warm-cache", suite)):
        runs = ", ".join(f"{t:.2f}" for t in times[key])
        print(f"| {label} | {runs} | {statistics.median(times[key]):.2f} | {statistics.median(cpu[key]):.2f} | "
              f"{figures['J&F-Mean']:.3f} |")
    for key in ("ours", "ours-building-cache", "ours-warm-cache"):
        print(f"{key}: {toolkit_s / statistics.median(times[key]):.1f}x faster than the toolkit (wall clock), "
              f"{statistics.median(cpu['toolkit']) / statistics.median(cpu[key]):.1f}x less CPU time")
    return figures_check(suite, official)


if __name__ == "__main__":
    sys.exit(main())
