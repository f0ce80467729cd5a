"""The GPU check: inference FPS at 480p and training iterations per second of FRTM and LWL, on one GPU, in a
few minutes, written to benchmarks/RESULTS-gpu-speed.md (atomically, after each part, so a run cut short keeps
what it measured). Its inference rows are also the speed part of the reviewers' pre-flight (benchmarks/preflight.py,
run by benchmarks/gpu_check.sh), which writes benchmarks/RESULTS-gpu.md.

    python benchmarks/gpu_check.py                     # one GPU, at most 8 minutes
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu-check.md   # smoke test, seconds

What is measured:
- Inference (FRTM's FPS protocol, notes §1.8, as benchmarks/method_speed.py): per sequence the method's whole
  loop (frame reading, first-frame initialisation, tracking, updates; no PNG writing), the first sequence run
  once untimed as warm-up, torch.cuda.synchronize before and after each timed sequence; FPS = frames /
  seconds per sequence, then the unweighted mean over sequences. Rows: FRTM Ours and Ours (fast) on
  ResNet-101 at the native 854x480, LWL (full) on the Mask R-CNN ResNet-50 with 480x832 crops; beside each,
  its backbone alone on the same frames (read and resized as the method does).
- Training: iterations per second of one optimiser step at the batch sizes of config/presets/paper.yaml's
  trainings (frtm-refiner, lwl-stage2), synthetic inputs at the training sizes, warm-up steps excluded. FRTM:
  backbone forward (frozen), R forward and backward per target frame, Adam step; the cached target model's
  scores are random (the cache is filled once, before training). LWL stage 2: the whole network (backbone
  layer2-4 learning) over Q=4-frame mini-sequences, Lovasz x100, Adam step; one GPU's share of the batch
  (the preset trains on several GPUs; the all-reduce between them is not included).

Weights are random (no ImageNet or released weights are needed, or reachable on the GPU machine): the
arithmetic, hence the time, is that of trained weights, but the masks (so how many memory updates are
skipped) are not. Frames: DAVIS 2016 val from the shared folder when present, otherwise synthetic 854x480
frames (vos_datasets.synthetic); the output says which.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.method_speed import run_backbone  # noqa: E402
from methods.core.backbones import build_backbone  # noqa: E402
from methods.frtm.networks import build_head, save_head  # noqa: E402
from methods.lwl.networks import LWLNet, NetworkConfig, save_network  # noqa: E402
from methods.runner import build_method  # noqa: E402
from vos_datasets.build import build_dataset  # noqa: E402
from vos_datasets.fileio import atomic_write_text  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "RESULTS-gpu-speed.md"
SEQUENCES = ["blackswan", "camel", "dog"]  # DAVIS 2016 val; 50, 90, 60 frames
FRTM_BACKBONE = "resnet101"
LWL_BACKBONE = "resnet50_mrcnn"


@dataclasses.dataclass
class Plan:
    """Sizes of one run: the full check, or the seconds-long CPU smoke test (--quick)."""

    frame_size: tuple[int, int] = (480, 854)  # H, W of the frames (DAVIS 480p)
    lwl_crop: tuple[int, int] = (480, 832)
    sequences: int = 3
    frames_per_sequence: int = 40
    frtm_training_size: tuple[int, int] = (480, 854)
    lwl_training_size: tuple[int, int] = (480, 832)
    training_warmup: int = 2
    training_steps: int = 5
    batch_scale: float = 1.0  # quick: batches shrunk to fit a CPU

    @classmethod
    def quick(cls) -> Plan:
        return cls(frame_size=(64, 112), lwl_crop=(64, 112), sequences=1, frames_per_sequence=6,
                   frtm_training_size=(64, 112), lwl_training_size=(64, 112), training_warmup=1,
                   training_steps=1, batch_scale=0.1)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(work: Callable[[], object], device: torch.device) -> float:
    """Seconds `work` takes, CUDA synchronised before and after."""
    synchronise(device)
    started = time.perf_counter()
    work()
    synchronise(device)
    return time.perf_counter() - started


# --- frames -----------------------------------------------------------------------------------------
def frames(plan: Plan, scratch: Path) -> tuple[list, str]:
    """(sequences, where they come from): DAVIS 2016 val if the shared folder has it, else synthetic."""
    from vos_datasets.shared import shared_dir

    shared = shared_dir()
    davis = shared / "data" / "davis2016" if shared is not None else None
    if davis is not None and (davis / "JPEGImages").is_dir() and plan.frame_size == (480, 854):
        dataset = build_dataset({"kind": "davis", "root": str(davis), "split": "val", "year": "2016",
                                 "sequences": SEQUENCES[: plan.sequences]})
        source = f"real DAVIS 2016 val frames ({davis})"
    else:
        from vos_datasets.synthetic import generate

        height, width = plan.frame_size
        root = generate(scratch / "synthetic", seed=0, n_train=0, n_val=plan.sequences,
                        n_frames=max(plan.frames_per_sequence, 6), height=height, width=width)
        dataset = build_dataset({"kind": "davis", "root": str(root), "split": "val", "year": "2017"})
        source = f"synthetic {width}x{height} frames (vos_datasets.synthetic; no DAVIS 2016 in the shared folder)"
    sequences = [dataclasses.replace(s, frames=s.frames[: plan.frames_per_sequence]) for s in dataset]
    return sequences, source


# --- inference --------------------------------------------------------------------------------------
def method_fps(method, sequences, device: torch.device) -> float:
    for _ in method.run_sequence(sequences[0]):  # warm-up: allocation, kernel selection
        pass
    fps = []
    for sequence in sequences:
        count = [0]

        def loop(sequence=sequence, count=count):
            for _ in method.run_sequence(sequence):
                count[0] += 1

        seconds = timed(loop, device)
        fps.append(count[0] / seconds)
    return float(np.mean(fps))


def backbone_fps(backbone, sequences, size: tuple[int, int] | None, device: torch.device) -> float:
    def one(sequence):
        run_backbone(backbone, sequence, size, device)

    one(sequences[0])  # warm-up
    return float(np.mean([len(s.frames) / timed(lambda s=s: one(s), device) for s in sequences]))


def frtm_rows(plan: Plan, sequences, device: torch.device, scratch: Path, variants: dict) -> list[tuple]:
    backbone_weights = _torchvision_state_file(FRTM_BACKBONE, scratch)
    backbone = build_backbone(FRTM_BACKBONE, backbone_weights).to(device)
    head = scratch / "frtm-refiner.pt"
    save_head(head, build_head("refiner", backbone.channels), "refiner", FRTM_BACKBONE)
    rows = [("FRTM backbone only (ResNet-101)", backbone_fps(backbone, sequences, None, device))]
    for name, label in (("ours", "FRTM Ours (ResNet-101)"), ("fast", "FRTM Ours fast (ResNet-101)")):
        settings = {**variants["frtm"][name].get("settings", {}), "device": str(device), "backbone": FRTM_BACKBONE,
                    "backbone_weights_file": backbone_weights, "checkpoint": str(head)}
        rows.append((label, method_fps(build_method("frtm", settings), sequences, device)))
    return rows


def _torchvision_state_file(name: str, scratch: Path) -> str:
    """A random torchvision ResNet state dict on disk: FRTM's tracker loads its backbone from a file."""
    import torchvision

    path = scratch / f"{name}-random.pt"
    torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), path)
    return str(path)


def lwl_network(backbone_name: str) -> tuple[LWLNet, str]:
    """A random full LWL network on the Mask R-CNN ResNet-50 (torchvision's ResNet-50 if this checkout's LWL
    does not take that backbone yet); returns it and the backbone's name."""
    try:
        config = NetworkConfig.from_dict({"backbone": backbone_name})
        return LWLNet(config, backbone=build_backbone(backbone_name, pretrained=False)), backbone_name
    except (ValueError, KeyError):
        config = NetworkConfig.from_dict({"backbone": "resnet50"})
        return LWLNet(config, backbone=build_backbone("resnet50", pretrained=False)), "resnet50"


def lwl_rows(plan: Plan, sequences, device: torch.device, scratch: Path, variants: dict) -> list[tuple]:
    net, backbone_name = lwl_network(LWL_BACKBONE)
    path = scratch / "lwl.pt"
    save_network(path, net)
    crop = list(plan.lwl_crop)
    label = f"{'Mask R-CNN ResNet-50' if backbone_name == LWL_BACKBONE else 'ResNet-50'}, crop {crop[0]}x{crop[1]}"
    backbone = net.backbone.to(device)
    rows = [(f"LWL backbone only ({label})", backbone_fps(backbone, sequences, tuple(crop), device))]
    settings = {**variants["lwl"]["full"].get("settings", {}), "device": str(device), "crop_size": crop,
                "checkpoint": str(path)}
    rows.append((f"LWL ({label})", method_fps(build_method("lwl", settings), sequences, device)))
    return rows


# --- training ---------------------------------------------------------------------------------------
def preset_batch(training: str, default: int) -> tuple[int, int]:
    """(batch size, GPUs) of one of config/presets/paper.yaml's trainings."""
    preset = yaml.safe_load((REPO / "config/presets/paper.yaml").read_text())
    entry = preset["trainings"][training]
    return int(entry.get("settings", {}).get("batch_size", default)), int(entry.get("gpus", 1))


def steps_per_second(step: Callable[[], None], plan: Plan, device: torch.device) -> float:
    for _ in range(plan.training_warmup):
        step()
    return plan.training_steps / timed(lambda: [step() for _ in range(plan.training_steps)], device)


def frtm_training(plan: Plan, device: torch.device) -> tuple[str, float, str]:
    from methods.frtm.training import TrainingConfig

    batch, gpus = preset_batch("frtm-refiner", TrainingConfig.batch_size)
    share = max(1, round(math.ceil(batch / gpus) * plan.batch_scale))
    backbone = build_backbone(FRTM_BACKBONE, pretrained=False).to(device)
    head = build_head("refiner", backbone.channels).to(device).train()
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-5)
    height, width = plan.frtm_training_size
    target_frames = TrainingConfig().target_frames

    def step():
        optimiser.zero_grad(set_to_none=True)
        for _ in range(target_frames):  # one backward per target frame, as the training job
            images = torch.rand(share, 3, height, width, device=device) * 255
            labels = (torch.rand(share, height, width, device=device) > 0.5).float()
            with torch.no_grad():
                features = backbone(images)
                scores = torch.randn(share, 1, *features[16].shape[-2:], device=device)  # the cached D's output
            logits = head(features, scores, (height, width))[:, 0]
            torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()
        optimiser.step()

    what = (f"FRTM R (frtm-refiner): batch {share} of {batch} x {target_frames} target frames at "
            f"{width}x{height}, ResNet-101 frozen, {gpus} GPU(s) in the preset")
    return what, steps_per_second(step, plan, device), f"{share}/{batch}"


def lwl_training(plan: Plan, device: torch.device) -> tuple[str, float, str]:
    from methods.lwl.training import TrainingConfig, lovasz_loss

    config = TrainingConfig()
    batch, gpus = preset_batch("lwl-stage2", config.batch_size)
    share = max(1, round(math.ceil(batch / gpus) * plan.batch_scale))
    net, backbone_name = lwl_network(LWL_BACKBONE)
    net = net.to(device)
    net.train()
    groups = [{"params": [p for n, p in net.named_parameters() if not n.startswith("backbone.")]},
              {"params": net.backbone.unfreeze_deep_levels()}]  # stage 2: layer2-4 learn
    optimiser = torch.optim.Adam(groups, lr=2e-5)
    height, width = plan.lwl_training_size
    q = config.frames_per_sequence

    def step():
        optimiser.zero_grad(set_to_none=True)
        images = torch.rand(share, q, 3, height, width, device=device) * 255
        masks = torch.zeros(share, q, 1, height, width, device=device)
        masks[..., height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1
        logits = net(images, masks, config.init_iterations, config.update_iterations)
        (lovasz_loss(logits, masks[:, 1:].flatten(0, 1)) * config.loss_weight).backward()
        optimiser.step()

    what = (f"LWL stage 2 (lwl-stage2): batch {share} of {batch} (one of {gpus} GPUs' share), Q={q} frames at "
            f"{width}x{height}, {backbone_name} layer2-4 learning, {config.init_iterations}+"
            f"{config.update_iterations} steepest-descent steps")
    return what, steps_per_second(step, plan, device), f"{share}/{batch}"


# --- report -----------------------------------------------------------------------------------------
def report(header: list[str], inference: list[tuple], training: list[tuple], notes: list[str]) -> str:
    lines = [*header, "", "## Inference (FPS, mean over sequences)", "",
             "| run | FPS | ratio to its backbone alone |", "|---|---:|---:|"]
    reference = None
    for label, fps in inference:
        if "backbone only" in label:
            reference = fps
        ratio = f"{fps / reference:.3f}" if reference and "backbone only" not in label else ""
        lines.append(f"| {label} | {fps:.2f} | {ratio} |")
    lines += ["", "## Training (iterations per second, one GPU)", "",
              "| training step | batch (share/preset) | iterations/s | seconds/iteration |", "|---|---:|---:|---:|"]
    for what, rate, share in training:
        lines.append(f"| {what} | {share} | {rate:.3f} | {1 / rate:.2f} |")
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu with --quick")
    parser.add_argument("--quick", action="store_true", help="tiny inputs: a seconds-long smoke test of this script")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="stop starting new parts after this many seconds (what was measured is kept)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on a GPU machine (or `--device cpu --quick` for a smoke test)",
              file=sys.stderr)
        return 2
    if device.type != "cuda" and not args.quick:
        print("gpu_check: the full check measures a GPU; on the CPU use --quick (a smoke test only)", file=sys.stderr)
        return 2
    plan = Plan.quick() if args.quick else Plan()
    torch.backends.cudnn.benchmark = device.type == "cuda"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch_folder:  # removed when done, whatever happens
        scratch = Path(scratch_folder)
        variants = yaml.safe_load((REPO / "config/variants.yaml").read_text())
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        sequences, source = frames(plan, scratch)
        header = ["# GPU check" + (" (QUICK CPU SMOKE TEST: not a measurement)" if args.quick else ""), "",
                  f"Device: {name}; torch {torch.__version__}; command: `python benchmarks/gpu_check.py "
                  f"{' '.join(argv if argv is not None else sys.argv[1:])}`  ",
                  f"Frames: {sum(len(s.frames) for s in sequences)} in {len(sequences)} sequences, {source}  ",
                  "Weights: random (timing only; no ImageNet, Mask R-CNN or released weights): the arithmetic is that "
                  "of trained weights, the masks (so skipped updates) are not."]
        inference: list[tuple] = []
        training: list[tuple] = []
        notes: list[str] = []
        parts = [("FRTM inference", lambda: inference.extend(frtm_rows(plan, sequences, device, scratch, variants))),
                 ("LWL inference", lambda: inference.extend(lwl_rows(plan, sequences, device, scratch, variants))),
                 ("FRTM training", lambda: training.append(frtm_training(plan, device))),
                 ("LWL training", lambda: training.append(lwl_training(plan, device)))]
        for part, work in parts:
            elapsed = time.perf_counter() - started
            if elapsed > args.budget_s:
                notes.append(f"{part}: not run (time budget of {args.budget_s:.0f} s spent)")
                continue
            try:
                work()
            except torch.cuda.OutOfMemoryError as error:  # a batch too large for this GPU: say so, go on
                notes.append(f"{part}: out of GPU memory ({str(error).splitlines()[0][:160]})")
                torch.cuda.empty_cache()
            print(f"gpu_check: {part} done at {time.perf_counter() - started:.0f} s", file=sys.stderr)
            atomic_write_text(args.out, report(header, inference, training, notes))
        notes.append(f"total wall time {time.perf_counter() - started:.0f} s")
        atomic_write_text(args.out, report(header, inference, training, notes))
        print(report(header, inference, training, notes))
        return 0


if __name__ == "__main__":
    sys.exit(main())
