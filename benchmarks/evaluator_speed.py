"""Evaluator speed on the official-toolkit fixtures, beside the toolkit's own recorded time and beside
vos-benchmark (PyPI, MIT) run side by side on identical inputs with the same number of workers.

    make bench                      # installs vos-benchmark --no-deps, then runs this script
    python benchmarks/evaluator_speed.py --workers 2 --repeats 3 --record benchmarks/RESULTS-evaluator.md

What is timed: one call of the evaluator (reading every PNG, scoring, statistics) in this process,
with the files already in the OS page cache; the median of --repeats runs. Configurations:
- ours, cold: no ground-truth cache (every annotation PNG decoded);
- ours, warm: the ground-truth cache filled by an earlier run (what the workflow sees from its second
  method on: every method is scored against the same annotations);
- vos-benchmark: its `benchmark()` with num_processes = workers.
The official toolkit's time is the one recorded in the fixture (its own wall time, one process).
vos-benchmark reads DAVIS 2016's 0/255 masks as object 255, so the side-by-side runs use a copy of
that ground truth re-saved as 0/1 palette PNGs (for both evaluators) and scores match.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics as stats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metrics import evaluate  # noqa: E402
from vos_datasets.davis import read_image_set  # noqa: E402
from vos_datasets.masks import read_label_png, write_label_png  # noqa: E402
from vos_datasets.shared import require_shared  # noqa: E402


def timed(fn, repeats):
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return stats.median(seconds), result


def prepare(work: Path, shared: Path) -> dict:
    """Fixture inputs, plus 0/1 palette copies for the side-by-side run."""
    val = read_image_set(shared / "data/davis2016/ImageSets/480p/val.txt")
    d16_pred = work / "d16-pred"
    d16_gt01 = work / "d16-gt01"
    for name in val:
        for png in sorted((shared / "data/davis2017-val-osvos" / name).glob("*.png")):
            write_label_png(d16_pred / name / png.name, (np.asarray(Image.open(png)) > 0).astype(np.uint8))
        for png in sorted((shared / "data/davis2016/Annotations/480p" / name).glob("*.png")):
            write_label_png(d16_gt01 / name / png.name, read_label_png(png))
    multi_pred = shared / "fixtures/metrics/multiobject/pred"
    multi_names = sorted(p.name for p in multi_pred.iterdir() if p.is_dir())
    multi_gt = work / "multi-gt"
    for name in multi_names:
        shutil.copytree(shared / "data/davis2017-val-osvos" / name, multi_gt / name)
    for folder in (d16_pred, d16_gt01, multi_gt, multi_pred, shared / "data/davis2016/Annotations/480p"):
        for png in folder.rglob("*.png"):
            png.read_bytes()  # page cache warm for every configuration alike
    return {
        "davis16": {"fixture": "davis16-val-osvos.json", "gt": shared / "data/davis2016/Annotations/480p",
                    "gt_same_for_both": d16_gt01, "pred": d16_pred, "sequences": val},
        "multiobject": {"fixture": "multiobject/official.json", "gt": shared / "data/davis2017-val-osvos",
                        "gt_same_for_both": multi_gt, "pred": multi_pred, "sequences": multi_names},
    }


def run_vos_benchmark(gt: Path, pred: Path, workers: int, scratch: Path):
    from vos_benchmark.benchmark import benchmark

    copy = scratch / "vb-pred"  # it writes its CSV into the prediction folder: give it a copy
    if not copy.exists():
        shutil.copytree(pred, copy)
    with contextlib.redirect_stdout(io.StringIO()):
        return benchmark([str(gt)], [str(copy)], strict=True, num_processes=workers, verbose=False)


def bench_case(name: str, case: dict, shared: Path, work: Path, args, have_vb: bool, record: dict) -> list[str]:
    """Table lines for one fixture: every configuration, then the official toolkit's own time."""
    fixture = json.loads((shared / "fixtures/metrics" / case["fixture"]).read_text())
    official = fixture["seconds"]
    expected = fixture["global"]["J&F-Mean"]

    def ours(gt: Path, cache: Path | None) -> float:
        return evaluate(gt, case["pred"], case["sequences"], workers=args.workers, progress=False,
                        cache_dir=cache).global_statistics()["J&F-Mean"]

    cache, same_cache, same = work / f"cache-{name}", work / f"cache-same-{name}", case["gt_same_for_both"]
    rows = [("ours, cold (no cache), fixture inputs", *timed(lambda: ours(case["gt"], None), args.repeats))]
    rows.append(("ours, building the ground-truth cache", *timed(lambda: ours(case["gt"], cache), 1)))
    rows.append(("ours, warm cache, fixture inputs", *timed(lambda: ours(case["gt"], cache), args.repeats)))
    rows.append(("ours, cold, side-by-side inputs", *timed(lambda: ours(same, None), args.repeats)))
    ours(same, same_cache)
    rows.append(("ours, warm cache, side-by-side inputs", *timed(lambda: ours(same, same_cache), args.repeats)))
    if have_vb:
        seconds, result = timed(lambda: run_vos_benchmark(same, case["pred"], args.workers, work / name), args.repeats)
        rows.append(("vos-benchmark 0.1.0, side-by-side inputs", seconds, result[0][0] / 100))
    lines = []
    for label, seconds, jf in rows:
        if not label.startswith("vos-benchmark"):
            assert abs(jf - expected) < 1e-6, (label, jf, expected)
        lines.append(f"| {name} | {label} | {seconds:.2f} | {official / seconds:.1f}x | {100 * jf:.2f} |")
        record[f"{name}: {label}"] = {"seconds": seconds, "speedup_vs_official": official / seconds}
    lines.append(f"| {name} | official toolkit (recorded in the fixture) | {official:.2f} | 1.0x | {100 * expected:.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", type=Path, help="also write the markdown table to this file")
    args = parser.parse_args()
    shared = require_shared("fixtures", "metrics")
    shared = shared.parent.parent
    try:
        import vos_benchmark  # noqa: F401
        have_vb = True
    except ImportError:
        have_vb = False
        print("vos-benchmark is not installed (pip install --no-deps vos-benchmark==0.1.0): skipping it")

    lines = [f"Evaluator speed, {args.workers} workers, median of {args.repeats} runs "
             f"({time.strftime('%Y-%m-%d')}, this machine: 2 cores).", "",
             "| fixture | configuration | seconds | vs official toolkit | J&F |", "|---|---|---|---|---|"]
    record = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = prepare(work, shared)
        for name, case in cases.items():
            lines += bench_case(name, case, shared, work, args, have_vb, record)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.record:
        args.record.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
