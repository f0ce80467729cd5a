"""What the method speed benchmarks (benchmarks/test_method_speed.py) run: a method variant (FRTM or LWL) over
DAVIS 2016 frames, and the backbone's own forward pass over the same frames, built once per method.

The protocol is FRTM's (notes §1.8): a round is the method's whole loop over the sequences (frame reading,
first-frame augmentation and target-model initialisation, tracking, updates; no PNG writing), CUDA
synchronised on a GPU. Backbone-only: the same frames read, resized as the method resizes them, and passed
through the backbone. LWL runs its backbone on a search region per object resized to the crop size, so its
backbone-only pass runs on the frames resized to that size.

A variant without a trained checkpoint gets random weights (saved to a scratch folder): the arithmetic, hence
the time, is that of trained weights, but the masks (and so how many memory updates are skipped) are not.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from methods.core.backbones import build_backbone, image_to_tensor  # noqa: E402
from methods.frtm.networks import build_head, save_head  # noqa: E402
from methods.lwl.networks import LWLNet, NetworkConfig, save_network  # noqa: E402
from methods.runner import build_method  # noqa: E402
from vos_datasets.build import build_dataset  # noqa: E402
from vos_datasets.fileio import atomic_write_text  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# The variants each method's benchmark times beside its backbone (config/variants.yaml names)
VARIANTS = {"frtm": ["ours", "fast", "no-update", "d-only"], "lwl": ["full", "baseline"]}
OFFLINE_BACKBONES = {"efficientnet_lite0"}  # ImageNet weights ship with the package


def run_backbone(backbone, sequence, size, device) -> None:
    """The backbone alone over a sequence's frames, read and resized as the methods do."""
    for frame in sequence.frames:
        image = sequence.read_image(frame)
        if size and tuple(size) != image.shape[:2]:
            image = cv2.resize(image, tuple(size)[::-1], interpolation=cv2.INTER_LINEAR)
        with torch.no_grad():
            backbone(image_to_tensor(image, device))


def load_sequences(root: str | Path, names: list[str], frames: int | None) -> list:
    """DAVIS 2016 val sequences, each cut to its first `frames` frames (None: all of them)."""
    dataset = build_dataset({"kind": "davis", "root": str(root), "split": "val", "year": "2016", "sequences": names})
    sequences = list(dataset)
    if frames is None:
        return sequences
    if frames < 2:
        raise ValueError(f"--speed-frames {frames}: give at least 2 (the first frame only initialises the method)")
    return [dataclasses.replace(s, frames=s.frames[:frames]) for s in sequences]


@dataclasses.dataclass
class SpeedRuns:
    """One method's backbone and variants on one device and input size, ready to be timed."""

    method: str
    backbone_name: str
    input_size: list[int] | None  # FRTM: frame size (None: native); LWL: crop size
    device: torch.device
    backbone: torch.nn.Module
    build_variant: Callable[[str], object]  # variant name -> a VOSMethod
    weights: Callable[[str], str]  # variant name -> "trained" or "random (timing only)"

    def backbone_round(self, sequences) -> Callable[[], None]:
        def run() -> None:
            for sequence in sequences:
                run_backbone(self.backbone, sequence, self.input_size, self.device)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        return run

    @staticmethod
    def variant_round(method, sequences) -> Callable[[], None]:
        def run() -> None:  # the masks come back as numpy arrays: the GPU has finished each frame
            for sequence in sequences:
                for _ in method.run_sequence(sequence):
                    pass
        return run


def speed_runs(method: str, backbone_name: str, input_size: list[int] | None, device: str, scratch: Path,
               checkpoints: dict[str, str] | None = None, decoder_widths: list[int] | None = None) -> SpeedRuns:
    """Backbone and variant builder of one method. checkpoints: variant -> trained checkpoint (FRTM: the head
    of the variant's kind, LWL: the variant's network); the other variants get random weights."""
    checkpoints = checkpoints or {}
    unknown = sorted(set(checkpoints) - set(VARIANTS[method]))
    if unknown:
        raise ValueError(f"--speed-checkpoint names {method} variants {unknown} that are not benchmarked; "
                         f"benchmarked: {VARIANTS[method]}")
    variants = yaml.safe_load((REPO / "config/variants.yaml").read_text())[method]
    offline = backbone_name in OFFLINE_BACKBONES
    random_backbone = {}  # a backbone without downloadable weights here: random, saved for the methods to load
    if offline:
        backbone = build_backbone(backbone_name, pretrained=True)
    else:
        import torchvision

        random_backbone["backbone_weights_file"] = str(scratch / "backbone.pt")
        torch.save(getattr(torchvision.models, backbone_name)(weights=None).state_dict(),
                   random_backbone["backbone_weights_file"])
        backbone = build_backbone(backbone_name, random_backbone["backbone_weights_file"])
    base: dict = {"device": device}
    random_files: dict[str, str] = {}

    if method == "frtm":
        base["backbone"] = backbone_name
        if input_size:
            base["input_size"] = list(input_size)

        def checkpoint(name: str, settings: dict) -> str:
            if name in checkpoints:
                return checkpoints[name]
            kind = "scale_offset" if settings.get("head") == "scale_offset" else "refiner"
            if kind not in random_files:
                random_files[kind] = str(scratch / f"{kind}.pt")
                save_head(random_files[kind], build_head(kind, backbone.channels), kind, backbone_name)
            return random_files[kind]
    else:
        input_size = list(input_size or (480, 832))
        base["crop_size"] = input_size

        def checkpoint(name: str, settings: dict) -> str:  # one random network per Table 1 kind
            if name in checkpoints:
                return checkpoints[name]
            network = {"backbone": backbone_name, **variants[name].get("network", {})}
            if decoder_widths:
                network["decoder_widths"] = list(decoder_widths)
            key = json.dumps(network, sort_keys=True)
            if key not in random_files:
                random_files[key] = str(scratch / f"lwl-{len(random_files)}.pt")
                save_network(random_files[key], LWLNet(NetworkConfig(**network), backbone=backbone))
            return random_files[key]

    def build_variant(name: str):
        settings = {**variants[name].get("settings", {}), **base}
        if method == "frtm" and name not in checkpoints:
            settings.update(random_backbone)  # LWL's checkpoint carries its backbone's weights
        settings["checkpoint"] = checkpoint(name, settings)
        return build_method(method, settings)

    return SpeedRuns(method, backbone_name, input_size, torch.device(device), backbone.to(device), build_variant,
                     lambda name: "trained" if name in checkpoints else "random (timing only)")


def publish_table(table: str, record: Path | None) -> None:
    """Print a markdown table and, with a record file, append it there (atomically)."""
    print(table)
    if record:
        previous = record.read_text() if record.exists() else "# Speed benchmarks\n"
        atomic_write_text(record, previous.rstrip("\n") + "\n\n" + table)


def parse_checkpoints(entries: list[str]) -> dict[str, dict[str, str]]:
    """--speed-checkpoint METHOD:VARIANT=PATH entries -> {method: {variant: path}}, each path an existing file."""
    parsed: dict[str, dict[str, str]] = {method: {} for method in VARIANTS}
    for entry in entries:
        target, _, path = entry.partition("=")
        method, _, variant = target.partition(":")
        if not path or method not in VARIANTS or variant not in VARIANTS[method]:
            raise ValueError(f"--speed-checkpoint {entry!r}: give METHOD:VARIANT=PATH with METHOD:VARIANT one of "
                             + ", ".join(f"{m}:{v}" for m, names in VARIANTS.items() for v in names))
        if not Path(path).is_file():
            raise ValueError(f"--speed-checkpoint {entry!r}: {path} is not a file")
        parsed[method][variant] = path
    return parsed
