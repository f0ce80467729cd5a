"""The suite's evaluator on the unsupervised task against the official DAVIS 2017 toolkit's, both as cold command
lines on identical inputs, in one run.

    python benchmarks/unsupervised_vs_toolkit.py --toolkit-python TOOLKIT_ENV/bin/python \
        --toolkit-source davis2017-evaluation/ [--set osvos|fixture] [--repeats 3] [--workers N] [--keep WORK_DIR]

The sets:
- fixture: the three scored sequences of tests/fixtures/unsupervised (96x160 to 160x288 pixels, 24 frames).
- osvos (default): a larger stand-in built as the fixture is, from real masks at 480p: the first --sequences
  sequences of ../shared/data/davis2017-val-osvos (multi-object ones first, as benchmarks/evaluator_vs_toolkit.py
  chooses them). Ground truth = the OSVOS masks with a void ring (255) around the objects, as DAVIS annotations
  have; proposals (`proposals`) = each object under another id (a permutation seeded by the sequence's name),
  perturbed as evaluator_vs_toolkit.perturbed_prediction does (shifted, grown, shrunk, dropped), the first one
  split in two, and three moving distractors: objects + 4 proposal ids, every run the same files.
Both are built afresh in a temporary folder (or --keep).

Each side is timed as a fresh process, wall clock, from start to exit, with the PNGs in the page cache:
- ours: `python -m metrics GT PRED --out OUT --task unsupervised --no-cache --quiet`;
- the toolkit: its own command line, `python evaluation_method.py --task unsupervised --set val --davis_path ROOT
  --results_path PRED`, on a DAVIS folder laid out as it expects (ImageSets/2017/val.txt naming the sequences,
  Annotations_unsupervised/480p = the ground truth, and JPEGImages/480p holding an empty `<frame>.jpg` per mask:
  it lists the JPEGs to count frames but never opens them when it scores). It writes its CSVs into the results
  folder and silently reuses them on a later run, so they are deleted before every run.
The runs alternate (toolkit, ours, toolkit, ours, ...); the medians are compared. Every global figure of ours must
equal the toolkit's printed one (3 decimals) or the script fails; tests/test_metrics_unsupervised.py checks the
figures to 1e-6 on the fixture.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.evaluator_vs_toolkit import (  # noqa: E402
    add_toolkit_arguments,
    choose_sequences,
    figures_check,
    perturbed_prediction,
    read_global,
    run_timed,
    toolkit_script,
)
from vos_datasets.masks import read_label_png, write_label_png  # noqa: E402
from vos_datasets.shared import require_shared  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "unsupervised"
N_SEQUENCES = 4
VOID = 255


def with_void_ring(ids: np.ndarray, width: int = 3) -> np.ndarray:
    """The label map with void (255) on the background pixels within `width` pixels of an object."""
    import cv2

    near = cv2.dilate((ids > 0).astype(np.uint8), np.ones((2 * width + 1, 2 * width + 1), np.uint8)).astype(bool)
    return np.where(near & (ids == 0), VOID, ids).astype(np.uint8)


def proposals(ids: np.ndarray, n_objects: int, frame: int, rng: np.random.Generator,
              permutation: np.ndarray) -> np.ndarray:
    """Proposals for the label map `ids`: object o perturbed under id permutation[o - 1]; the right half of the
    first object's proposal as id n_objects + 1; distractors n_objects + 2 .. n_objects + 4 drifting across."""
    import cv2

    perturbed = perturbed_prediction(ids, n_objects, rng)
    out = np.zeros_like(perturbed)
    for oid in range(1, n_objects + 1):
        out[perturbed == oid] = permutation[oid - 1]
    first = out == permutation[0]
    columns = np.flatnonzero(first.any(axis=0))
    if columns.size:
        half = np.zeros_like(first)
        half[:, (columns[0] + columns[-1]) // 2:] = True
        out[first & half] = n_objects + 1
    height, width = ids.shape
    for k in range(3):
        centre = ((37 + 91 * k + 5 * frame) % width, (53 + 127 * k + 3 * frame) % height)
        cv2.ellipse(out, centre, (12 + 6 * k, 8 + 4 * k), 0, 0, 360, n_objects + 2 + k, -1)
    return out


def davis_folder(work: Path, sequences: list[str]) -> Path:
    root = work / "DAVIS"
    (root / "ImageSets/2017").mkdir(parents=True)
    (root / "ImageSets/2017/val.txt").write_text("".join(f"{name}\n" for name in sequences))
    return root


def build_osvos_set(work: Path, osvos: Path, sequences: list[str]) -> dict[str, Path]:
    root, pred = davis_folder(work, sequences), work / "pred"
    for name in sequences:
        pngs = sorted((osvos / name).glob("*.png"))
        n_objects = int(read_label_png(pngs[0], "davis2017").max())
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        permutation = rng.permutation(np.arange(1, n_objects + 1))
        (root / "JPEGImages/480p" / name).mkdir(parents=True)
        for frame, png in enumerate(pngs):
            ids = read_label_png(png, "davis2017")
            write_label_png(root / "Annotations_unsupervised/480p" / name / png.name, with_void_ring(ids))
            write_label_png(pred / name / png.name, proposals(ids, n_objects, frame, rng, permutation))
            (root / "JPEGImages/480p" / name / f"{png.stem}.jpg").touch()
    return {"root": root, "gt": root / "Annotations_unsupervised/480p", "pred": pred, "out": work / "ours"}


def build_fixture_set(work: Path, sequences: list[str]) -> dict[str, Path]:
    """The fixture's folders copied (the toolkit writes its CSVs into the results folder)."""
    root, pred = davis_folder(work, sequences), work / "pred"
    for name in sequences:
        shutil.copytree(FIXTURE / "gt" / name, root / "Annotations_unsupervised/480p" / name)
        shutil.copytree(FIXTURE / "pred" / name, pred / name)
        (root / "JPEGImages/480p" / name).mkdir(parents=True)
        for png in (FIXTURE / "gt" / name).glob("*.png"):
            (root / "JPEGImages/480p" / name / f"{png.stem}.jpg").touch()
    return {"root": root, "gt": root / "Annotations_unsupervised/480p", "pred": pred, "out": work / "ours"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_toolkit_arguments(parser)
    parser.add_argument("--set", dest="which", choices=["osvos", "fixture"], default="osvos",
                        help="osvos (default: real masks at 480p, ../shared) or fixture (tests/fixtures/unsupervised)")
    parser.add_argument("--sequences", type=int, default=N_SEQUENCES, help=f"osvos set: how many (default {N_SEQUENCES})")
    args = parser.parse_args(argv)
    script = toolkit_script(parser, args)
    work = Path(tempfile.mkdtemp(prefix="unsupervised-vs-toolkit-")) if args.keep is None else args.keep
    try:
        if args.which == "fixture":
            import json

            sequences = json.loads((FIXTURE / "official.json").read_text())["sequences"]
            paths = build_fixture_set(work, sequences)
        else:
            osvos = require_shared("data", "davis2017-val-osvos")
            sequences = choose_sequences(osvos, args.sequences)
            paths = build_osvos_set(work, osvos, sequences)
        for png in list(paths["root"].rglob("*.png")) + list(paths["pred"].rglob("*.png")):
            png.read_bytes()  # in the page cache for both sides alike
        ours = [str(args.python), "-m", "metrics", str(paths["gt"]), str(paths["pred"]), "--out", str(paths["out"]),
                "--task", "unsupervised", "--no-cache", "--quiet"]
        ours += [] if args.workers is None else ["--workers", str(args.workers)]
        theirs = [str(args.toolkit_python), str(script.resolve()), "--task", "unsupervised", "--set", "val",
                  "--davis_path", str(paths["root"]), "--results_path", str(paths["pred"])]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        times: dict[str, list[float]] = {"toolkit": [], "ours": []}
        cpu: dict[str, list[float]] = {"toolkit": [], "ours": []}
        for _ in range(args.repeats):
            for csv_name in ("global_results-val.csv", "per-sequence_results-val.csv"):
                (paths["pred"] / csv_name).unlink(missing_ok=True)  # else the toolkit reuses them
            for key, command, cwd, environment in (("toolkit", theirs, args.toolkit_source, None),
                                                   ("ours", ours, REPO, env)):
                seconds, cpu_seconds = run_timed(command, cwd=cwd, env=environment)
                times[key].append(seconds)
                cpu[key].append(cpu_seconds)
        official = read_global(paths["pred"] / "global_results-val.csv")
        suite = read_global(paths["out"] / "global_results-val.csv")
        rows = (paths["out"] / "per-object_results-val.csv").read_text().splitlines()[1:]
        n_frames = sum(1 for _ in paths["gt"].rglob("*.png"))
        n_proposals = sum(int(max(read_label_png(p, "davis2017").max() for p in (paths["pred"] / name).glob("*.png")))
                          for name in sequences)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"set {args.which}: {len(sequences)} sequences ({', '.join(sequences)}), {len(rows)} objects, "
          f"{n_proposals} proposals, {n_frames} frames scored; {platform.node()}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| evaluator (cold command line, unsupervised task) | runs, wall (s) | median wall (s) | "
          "median CPU, user + system (s) | J&F-Mean |")
    print("|---|---|---|---|---|")
    for label, key, figures in (("official toolkit, evaluation_method.py --task unsupervised", "toolkit", official),
                                ("ours, python -m metrics --task unsupervised --no-cache", "ours", suite)):
        runs = ", ".join(f"{t:.2f}" for t in times[key])
        print(f"| {label} | {runs} | {statistics.median(times[key]):.2f} | {statistics.median(cpu[key]):.2f} | "
              f"{figures['J&F-Mean']:.3f} |")
    print(f"ours: {statistics.median(times['toolkit']) / statistics.median(times['ours']):.1f}x faster than the toolkit "
          f"(wall clock), {statistics.median(cpu['toolkit']) / statistics.median(cpu['ours']):.1f}x less CPU time; "
          f"per run: {', '.join(f'{t / o:.1f}x' for t, o in zip(times['toolkit'], times['ours'], strict=True))}")
    return figures_check(suite, official)


if __name__ == "__main__":
    sys.exit(main())
