"""What the evaluator speed benchmarks (benchmarks/test_evaluator_speed.py) run: the suite's evaluator on the
official-toolkit fixtures, and vos-benchmark (PyPI, MIT) side by side on identical inputs with the same number
of workers.

Configurations (each timed as one call of the evaluator: reading every PNG, scoring, statistics, in this
process, with the files already in the OS page cache):
- ours, cold: no ground-truth cache (every annotation PNG decoded);
- ours, building the ground-truth cache: the cache emptied before each round;
- ours, warm: the ground-truth cache filled by an earlier run (what the workflow sees from its second method
  on: every method is scored against the same annotations);
- vos-benchmark: its `benchmark()` with num_processes = workers (`make bench` installs it; not a dependency).
The official toolkit's time is the one recorded in the fixture (its own wall time, one process).
vos-benchmark reads DAVIS 2016's 0/255 masks as object 255, so the side-by-side runs use a copy of that ground
truth re-saved as 0/1 palette PNGs (for both evaluators) and scores match.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metrics import evaluate  # noqa: E402
from vos_datasets.davis import read_image_set  # noqa: E402
from vos_datasets.masks import read_label_png, write_label_png  # noqa: E402

VOS_BENCHMARK = "vos-benchmark 0.1.0"
OFFICIAL = "official toolkit (recorded in the fixture)"


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


def fixture_record(shared: Path, case: dict) -> tuple[float, float]:
    """The official toolkit's recorded wall time (seconds) and J&F-Mean on a case's fixture."""
    fixture = json.loads((shared / "fixtures/metrics" / case["fixture"]).read_text())
    return fixture["seconds"], fixture["global"]["J&F-Mean"]


def score_ours(case: dict, gt: Path, workers: int, cache: Path | None) -> float:
    """J&F-Mean of the suite's evaluator on a case's predictions against `gt`."""
    return evaluate(gt, case["pred"], case["sequences"], workers=workers, progress=False,
                    cache_dir=cache).global_statistics()["J&F-Mean"]


def copy_for_vos_benchmark(pred: Path, scratch: Path) -> Path:
    """vos-benchmark writes its CSV into the prediction folder: it gets a copy."""
    copy = scratch / "vb-pred"
    if not copy.exists():
        shutil.copytree(pred, copy)
    return copy


def score_vos_benchmark(gt: Path, pred_copy: Path, workers: int) -> float:
    """J&F-Mean (0-1) of vos-benchmark on `pred_copy` against `gt`."""
    from vos_benchmark.benchmark import benchmark

    with contextlib.redirect_stdout(io.StringIO()):
        return benchmark([str(gt)], [str(pred_copy)], strict=True, num_processes=workers, verbose=False)[0][0] / 100
