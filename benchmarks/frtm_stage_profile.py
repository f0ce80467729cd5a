"""Where FRTM's inference time goes: the share of each stage (backbone, refinement network R, target-model
initialisation, online updates, first-frame augmentation) in one variant's run, from Python's profiler.

    python benchmarks/frtm_stage_profile.py --variant ours --sequences blackswan car-roundabout camel \\
        --input-size 240 432 --checkpoint results/davis2016/training/frtm-refiner/head.pt \\
        --record benchmarks/RESULTS-speed.md

It answers why a variant's FPS is the fraction of backbone-only FPS that benchmarks/method_speed.py
reports. The run is the same as there (warm-up over the first sequence, then every sequence through
methods.runner.run); cProfile adds a little overhead per Python call, so read the shares, and take FPS
from method_speed.py. Stages overlap nowhere except that the backbone time includes the augmented
first-frame samples' features (part of the initialisation in the FPS protocol).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.method_speed import publish_table  # noqa: E402
from methods.core.augmentation import augment_first_frame  # noqa: E402
from methods.core.backbones import EfficientNetLite0Backbone, ResNetBackbone  # noqa: E402
from methods.core.refinement import RefinementNetwork  # noqa: E402
from methods.frtm.target_model import TargetModel  # noqa: E402
from methods.runner import build_dataset, build_method, device_description, run  # noqa: E402
from vos_datasets.shared import require_shared  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _key(function) -> tuple[str, int, str]:
    """pstats' key of a function: (file, first line, name)."""
    code = function.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


# stage -> the functions whose cumulative time it is (none calls another of the same stage)
STAGES = {
    "backbone (frames and augmented samples)": [ResNetBackbone.forward, EfficientNetLite0Backbone.forward],
    "refinement network R": [RefinementNetwork.forward],
    "target model initialisation (Gauss-Newton)": [TargetModel.initialise],
    "target model updates (Gauss-Newton)": [TargetModel.update],
    "first-frame augmentation (inpainting, warps)": [augment_first_frame],
}


def stage_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds per stage."""
    seconds = {}
    for stage, functions in STAGES.items():
        seconds[stage] = sum(stats.stats[_key(f)][3] for f in functions if _key(f) in stats.stats)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-root", help="DAVIS 2016 folder (default: the shared folder's)")
    parser.add_argument("--sequences", nargs="+", default=["blackswan", "car-roundabout", "camel"])
    parser.add_argument("--variant", default="ours")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--input-size", nargs=2, type=int, help="H W (default: native frame size)")
    parser.add_argument("--checkpoint", required=True,
                        help="trained head of the variant's kind (refiner; d-only: scale_offset; base-net: base_net)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--record", type=Path, help="append the table to this markdown file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = yaml.safe_load((REPO / "config/variants.yaml").read_text())["frtm"]
    if args.variant not in variants:
        parser.error(f"unknown FRTM variant {args.variant!r}; known: {sorted(variants)}")
    settings = {**variants[args.variant].get("settings", {}), "device": "cpu", "backbone": args.backbone,
                "checkpoint": args.checkpoint}
    if args.input_size:
        settings["input_size"] = list(args.input_size)
    try:  # a wrong sequence name, checkpoint or head kind: a usage error naming it, not a traceback
        root = args.dataset_root or str(require_shared() / "data/davis2016")
        dataset = build_dataset({"kind": "davis", "root": root, "split": "val", "year": "2016",
                                 "sequences": args.sequences})
        method = build_method("frtm", settings)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    sequences = list(dataset)
    for _ in method.run_sequence(sequences[0]):  # warm-up, as the timed runs
        pass
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="stage-profile-") as scratch:
        profiler.enable()
        record = run(method, dataset, Path(scratch) / "masks", progress=False)
        profiler.disable()
    stats = pstats.Stats(profiler)
    frames = record["frames"]
    total = frames / record["total_fps"]
    seconds = stage_seconds(stats)
    seconds["everything else (merging, resizing, memory, reading frames)"] = total - sum(seconds.values())

    size = "x".join(map(str, args.input_size)) if args.input_size else "native"
    lines = [f"### FRTM {args.variant}: time per stage ({args.backbone}, input {size}, cpu, profiled)",
             "",
             f"Command: `python benchmarks/frtm_stage_profile.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ",
             f"Machine: {device_description()}, torch {torch.__version__}, {args.threads} threads  ",
             f"Frames: {frames} in {len(sequences)} DAVIS 2016 val sequences; {total:.1f} s timed under cProfile "
             f"({frames / total:.2f} FPS with the profiler's overhead)",
             "",
             "| stage | seconds | share | ms per frame |",
             "|---|---:|---:|---:|"]
    for stage, value in seconds.items():
        lines.append(f"| {stage} | {value:.1f} | {value / total:.0%} | {1000 * value / frames:.0f} |")
    publish_table("\n".join(lines) + "\n", args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
