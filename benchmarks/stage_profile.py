"""Where a method's inference time goes: the share of each stage (FRTM: backbone, refinement network R,
target-model initialisation, online updates, first-frame augmentation; LWL: backbone, feature conv, E and W, target
model learning at initialisation and in updates, the target model's prediction, decoder, box encoder,
crops) in one variant's run, from Python's profiler.

    python benchmarks/stage_profile.py --method frtm --variant ours \\
        --sequences blackswan car-roundabout camel --input-size 240 432 \\
        --checkpoint results/davis2016/training/frtm-refiner/head.pt --record benchmarks/RESULTS-speed.md
    python benchmarks/stage_profile.py --method lwl --variant full \\
        --sequences blackswan car-roundabout camel --input-size 240 432 \\
        --checkpoint results/davis2016/training/lwl-stage2/head.pt --record benchmarks/RESULTS-speed.md

It answers why a variant's FPS is the fraction of backbone-only FPS that the method speed benchmarks
(benchmarks/test_method_speed.py) report. A profile, not a timing, so it stays a script: the run is the
method's loop over every sequence (warm-up over the first sequence, then every sequence through
methods.runner.run); cProfile adds a little overhead per Python call, so read the shares, and take FPS
from the benchmarks. Stages do not overlap: FRTM's backbone time includes the augmented first-frame
samples' features (part of the initialisation in the FPS protocol); LWL's backbone and decoder times include the
first frame's (and, for box-init, the box encoder's) passes.
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
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
from methods.lwl.crops import crop, paste  # noqa: E402
from methods.lwl.learner import FewShotLearner  # noqa: E402
from methods.lwl.networks import BoxEncoder, TargetFeatures  # noqa: E402
from methods.lwl.tracker import LWL  # noqa: E402
from methods.runner import build_method, cpu_model, run  # noqa: E402
from vos_datasets.build import build_dataset  # noqa: E402
from vos_datasets.shared import require_shared  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BACKBONES = [ResNetBackbone.forward, EfficientNetLite0Backbone.forward]

# method -> stage -> the functions whose cumulative time it is; an entry (function, caller) counts only the
# calls made from that caller. No function of a stage calls another function of any stage.
STAGES = {
    "frtm": {
        "backbone (frames and augmented samples)": BACKBONES,
        "refinement network R": [RefinementNetwork.forward],
        "target model initialisation (Gauss-Newton)": [TargetModel.initialise],
        "target model updates (Gauss-Newton)": [TargetModel.update],
        "first-frame augmentation (inpainting, warps)": [augment_first_frame],
    },
    "lwl": {
        "backbone (search-region crops)": BACKBONES,
        "feature conv to C channels": [TargetFeatures.forward],
        "label generator E and weight predictor W (once per stored mask)": [LWL._sample],
        "target model learning at initialisation (N_init steps)": [(LWL._learn, LWL._new_object)],
        "target model learning in updates (N_update steps over the memory)": [(LWL._learn, LWL._track)],
        "target model prediction T_tau(x)": [(FewShotLearner.predict, LWL._segment)],
        "decoder": [RefinementNetwork.forward],
        "box encoder": [BoxEncoder.forward],
        "crops and pasting back": [crop, paste],
    },
}


def _key(function) -> tuple[str, int, str]:
    """pstats' key of a function: (file, first line, name), seen through decorators such as torch.no_grad."""
    code = inspect.unwrap(function).__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def _cumulative(stats: pstats.Stats, entry) -> float:
    """Cumulative seconds of a function, or of its calls from one caller for an entry (function, caller)."""
    function, caller = entry if isinstance(entry, tuple) else (entry, None)
    record = stats.stats.get(_key(function))
    if record is None:
        return 0.0
    if caller is None:
        return record[3]
    from_caller = record[4].get(_key(caller))
    return from_caller[3] if from_caller else 0.0


def stage_seconds(stats: pstats.Stats, stages: dict[str, list]) -> dict[str, float]:
    """Cumulative seconds per stage."""
    return {stage: sum(_cumulative(stats, entry) for entry in entries) for stage, entries in stages.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-root", help="DAVIS 2016 folder (default: the shared folder's)")
    parser.add_argument("--sequences", nargs="+", default=["blackswan", "car-roundabout", "camel"])
    parser.add_argument("--method", choices=sorted(STAGES), default="frtm")
    parser.add_argument("--variant", default=None, help="default: frtm ours, lwl full")
    parser.add_argument("--backbone", default="efficientnet_lite0", help="FRTM only (LWL's is in its checkpoint)")
    parser.add_argument("--input-size", nargs=2, type=int,
                        help="H W: FRTM's frame size (default native), LWL's crop size (default 480 832)")
    parser.add_argument("--checkpoint", required=True,
                        help="FRTM: trained head of the variant's kind (refiner; d-only: scale_offset; base-net: "
                             "base_net); LWL: the trained network of the variant's kind")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--record", type=Path, help="append the table to this markdown file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variant = args.variant or {"frtm": "ours", "lwl": "full"}[args.method]
    variants = yaml.safe_load((REPO / "config/variants.yaml").read_text())[args.method]
    if variant not in variants:
        parser.error(f"unknown {args.method.upper()} variant {variant!r}; known: {sorted(variants)}")
    settings = {**variants[variant].get("settings", {}), "device": "cpu", "checkpoint": args.checkpoint}
    if args.method == "frtm":
        settings["backbone"] = args.backbone
    if args.input_size:
        settings["input_size" if args.method == "frtm" else "crop_size"] = list(args.input_size)
    try:  # a wrong sequence name, checkpoint or head kind: a usage error naming it, not a traceback
        root = args.dataset_root or str(require_shared() / "data/davis2016")
        dataset = build_dataset({"kind": "davis", "root": root, "split": "val", "year": "2016",
                                 "sequences": args.sequences})
        method = build_method(args.method, settings)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        parser.error(str(error))
    sequences = list(dataset)
    for _ in method.run_sequence(sequences[0]):  # warm-up, as the timed runs
        pass
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="stage-profile-") as scratch:
        profiler.enable()
        # streaming: frame reading stays inside the timed total, as the "everything else" share says
        record = run(method, dataset, Path(scratch) / "masks", progress=False, fps_protocol="streaming")
        profiler.disable()
    stats = pstats.Stats(profiler)
    frames = record["frames"]
    total = frames / record["total_fps"]
    seconds = stage_seconds(stats, STAGES[args.method])
    seconds["everything else (merging, resizing, memory, reading frames)"] = total - sum(seconds.values())

    backbone = args.backbone if args.method == "frtm" else method.net.config.backbone
    size = "x".join(map(str, args.input_size or settings.get("crop_size") or ["native"]))
    lines = [f"### {args.method.upper()} {variant}: time per stage ({backbone}, input {size}, cpu, profiled)",
             "",
             f"Command: `python benchmarks/stage_profile.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ",
             f"Machine: {cpu_model()}, torch {torch.__version__}, {args.threads} threads  ",
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
