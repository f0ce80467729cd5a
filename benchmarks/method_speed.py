"""A method's inference speed (FRTM or LWL variants) beside the backbone's own forward pass on the same
frames, in one run.

    python benchmarks/method_speed.py --method frtm --backbone efficientnet_lite0 --input-size 240 432 \\
        --checkpoint results/davis2016/training/frtm-refiner/head.pt --record benchmarks/RESULTS-speed.md
    python benchmarks/method_speed.py --method frtm --backbone resnet101 --random-weights --device cuda  # GPU, 480p
    python benchmarks/method_speed.py --method lwl --backbone efficientnet_lite0 --input-size 240 432 \\
        --random-weights --record benchmarks/RESULTS-speed.md
    python benchmarks/method_speed.py --method lwl --backbone resnet50 --input-size 480 832 --random-weights --device cuda

LWL runs its backbone on a search region per object resized to the crop size (--input-size, default the
paper's 480x832), so its backbone-only pass runs on the frames resized to that size.

What is timed (FRTM's protocol, notes §1.8): per sequence, the whole loop of the method (frame reading,
first-frame augmentation and target-model initialisation, tracking, updates; PNG writing excluded), a
warm-up pass over the first sequence first, CUDA synchronised on a GPU; FPS = frames / seconds per
sequence, then the unweighted mean over sequences. Backbone-only: the same frames read, resized as the
method resizes them, and passed through the backbone, timed the same way. Ratio = variant FPS / backbone FPS.

--random-weights builds the backbone and head with random weights (saved to a temporary file): the
arithmetic, hence the time, is the same as with trained weights, but the masks (and so how many memory
updates get skipped) are not; use it only where the trained weights are not available.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from methods.core.backbones import build_backbone, image_to_tensor  # noqa: E402
from methods.frtm.networks import build_head, save_head  # noqa: E402
from methods.lwl.networks import LWLNet, NetworkConfig, save_network  # noqa: E402
from methods.runner import build_method, device_description, run  # noqa: E402
from vos_datasets.build import build_dataset  # noqa: E402
from vos_datasets.fileio import atomic_write_text  # noqa: E402
from vos_datasets.shared import require_shared  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SEQUENCES = ["blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout", "dog", "goat", "kite-surf"]


def run_backbone(backbone, sequence, size, device) -> None:
    """The backbone alone over a sequence's frames, read and resized as the methods do."""
    for frame in sequence.frames:
        image = sequence.read_image(frame)
        if size and tuple(size) != image.shape[:2]:
            image = cv2.resize(image, tuple(size)[::-1], interpolation=cv2.INTER_LINEAR)
        with torch.no_grad():
            backbone(image_to_tensor(image, device))


def backbone_only_fps(backbone, sequences, size, device) -> float:
    fps = []
    for sequence in sequences:
        started = time.perf_counter()
        run_backbone(backbone, sequence, size, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        fps.append(len(sequence.frames) / (time.perf_counter() - started))
    return float(np.mean(fps))


def publish_table(table: str, record: Path | None) -> None:
    """Print a benchmark's markdown table and, with a record file, append it there (atomically)."""
    print(table)
    if record:
        previous = record.read_text() if record.exists() else "# Speed benchmarks\n"
        atomic_write_text(record, previous.rstrip("\n") + "\n\n" + table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-root", help="DAVIS 2016 folder (default: the shared folder's)")
    parser.add_argument("--sequences", nargs="+", default=DEFAULT_SEQUENCES)
    parser.add_argument("--method", choices=["frtm", "lwl"], default="frtm")
    parser.add_argument("--variants", nargs="+", help="default: frtm ours fast no-update d-only; lwl full baseline")
    parser.add_argument("--decoder-widths", nargs=4, type=int, help="LWL random network: decoder widths")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--input-size", nargs=2, type=int, help="H W (default: native frame size)")
    parser.add_argument("--checkpoint", help="trained refiner head (FRTM) or network (LWL); --random-weights otherwise")
    parser.add_argument("--d-only-checkpoint", help="trained scale/offset head for d-only")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--record", type=Path, help="append the table to this markdown file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    root = args.dataset_root or str(require_shared() / "data/davis2016")
    dataset = build_dataset({"kind": "davis", "root": root, "split": "val", "year": "2016",
                             "sequences": args.sequences})
    sequences = list(dataset)
    variants = yaml.safe_load((REPO / "config/variants.yaml").read_text())[args.method]
    names = args.variants or (["ours", "fast", "no-update", "d-only"] if args.method == "frtm" else ["full", "baseline"])

    scratch = Path(tempfile.mkdtemp(prefix="speed-"))
    weights = {}
    offline = args.backbone == "efficientnet_lite0"  # its ImageNet weights ship with the package
    backbone = build_backbone(args.backbone, pretrained=offline or not args.random_weights)
    if args.random_weights and not offline:
        weights["backbone_weights"] = str(scratch / "backbone.pt")
        import torchvision

        torch.save(getattr(torchvision.models, args.backbone)(weights=None).state_dict(), weights["backbone_weights"])
        backbone = build_backbone(args.backbone, weights["backbone_weights"])
    base = {"device": args.device}
    if args.method == "frtm":
        base.update(weights)  # LWL's checkpoint carries its backbone's weights
        if args.random_weights:
            for kind in ("refiner", "scale_offset"):
                save_head(scratch / f"{kind}.pt", build_head(kind, backbone.channels), kind, args.backbone)
        heads = {"refiner": args.checkpoint or str(scratch / "refiner.pt"),
                 "scale_offset": args.d_only_checkpoint or str(scratch / "scale_offset.pt")}
        base["backbone"] = args.backbone
        if args.input_size:
            base["input_size"] = list(args.input_size)

        def checkpoint(name, settings):
            return heads["scale_offset" if settings.get("head") == "scale_offset" else "refiner"]
    else:
        crop = list(args.input_size or (480, 832))
        args.input_size = crop
        base["crop_size"] = crop

        networks = {}  # one random network per Table 1 kind

        def checkpoint(name, settings):
            if args.checkpoint and not args.random_weights:
                return args.checkpoint
            network = {"backbone": args.backbone, **variants[name].get("network", {})}
            if args.decoder_widths:
                network["decoder_widths"] = args.decoder_widths
            key = json.dumps(network, sort_keys=True)
            if key not in networks:
                networks[key] = str(scratch / f"lwl-{len(networks)}.pt")
                save_network(networks[key], LWLNet(NetworkConfig(**network), backbone=backbone))
            return networks[key]
    backbone = backbone.to(device)

    # warm-up, then backbone-only and every variant on the same frames
    backbone_only_fps(backbone, sequences[:1], args.input_size, device)
    rows = [("backbone only", backbone_only_fps(backbone, sequences, args.input_size, device))]
    for name in names:
        settings = {**variants[name].get("settings", {}), **base}
        settings["checkpoint"] = checkpoint(name, settings)
        method = build_method(args.method, settings)
        record = run(method, dataset, scratch / f"out-{name}", progress=False, warm_up=True)
        rows.append((name, record["mean_fps_over_sequences"]))

    size = "x".join(map(str, args.input_size)) if args.input_size else "native"
    lines = [f"### {args.method.upper()} speed: {args.backbone}, input {size}, {args.device}",
             "",
             f"Command: `python benchmarks/method_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ",
             f"Machine: {device_description()}, torch {torch.__version__}, {args.threads} threads, "
             f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'CPU'}  ",
             f"Frames: {sum(len(s.frames) for s in sequences)} in {len(sequences)} DAVIS 2016 val sequences; "
             f"weights: {'random (timing only)' if args.random_weights else 'trained'}",
             "",
             "| run | FPS (mean over sequences) | ratio to backbone only |",
             "|---|---:|---:|"]
    for name, fps in rows:
        lines.append(f"| {name} | {fps:.2f} | {fps / rows[0][1]:.3f} |")
    publish_table("\n".join(lines) + "\n", args.record)
    (scratch / "rows.json").write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
