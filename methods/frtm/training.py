"""Offline training of FRTM's head (paper §3.3; notes §1.9): only the head learns, the backbone is frozen.

A sample is one object of one video with a reference frame and two target frames. The target model D is
learned on the reference frame alone (K augmented copies, Gauss-Newton, one update pass) and then applied
to the target frames; the head's logits are scored with binary cross-entropy against the ground truth,
one backward per target frame. As in the paper, D depends only on backbone features, so it is learned
once per (video, frame, object) and cached on disk (TargetModelCache, keyed by its inputs), never updated.

Epochs follow the paper: every (video, object) pair of each `repeat` source is visited `repeats` times
per epoch (DAVIS 2017: 8) and `pairs` random pairs are drawn from each `sample` source (YouTube-VOS:
4000 in the released code). Adam with weight decay and a step schedule (paper: 1e-3 for 120 epochs, then
1e-4 for 60; released code: 260 epochs, step 127, amsgrad).

Interruptions: a checkpoint (head, optimiser, scheduler, epoch) is written atomically after every epoch
into `<out>.work/`; a rerun resumes from it. Epoch sampling is seeded by (seed, epoch), so a resumed run
draws what an uninterrupted one would. Checkpoints are data: loaded with torch.load(weights_only=True).

Several processes (torchrun): each rank takes its share of every batch; DistributedDataParallel averages
the gradients (backend nccl on GPUs, gloo on CPUs); rank 0 writes checkpoints.

    python -m methods.frtm.training --config training.json --out results/.../head.pt
    torchrun --nproc_per_node 4 -m methods.frtm.training --config ... --out ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from methods.core.augmentation import augment_first_frame, initial_sample_weights
from methods.core.backbones import build_backbone, image_to_tensor, target_feature_scale
from methods.core.memory import SampleMemory
from methods.frtm.networks import HEADS, build_head, save_head
from methods.frtm.target_model import TargetModel, TargetModelSettings
from vos_datasets.fileio import atomic_path, atomic_write_text


@dataclass
class TrainingConfig:
    head: str = "refiner"
    backbone: str = "resnet101"
    backbone_weights: str | None = None
    # sources: [{"dataset": {...build_dataset spec...}, "repeats": 8} | {"dataset": ..., "pairs": 4000}]
    sources: list[dict] = field(default_factory=list)
    frame_size: list[int] = field(default_factory=lambda: [480, 854])  # H, W (released code: 854x480)
    epochs: int = 180  # paper: 120 + 60
    lr_step: int = 120
    learning_rate: float = 1e-3
    lr_gamma: float = 0.1
    weight_decay: float = 1e-5
    amsgrad: bool = False  # released code: True
    batch_size: int = 16
    target_frames: int = 2
    # Reference frames: visible frames (>= min_area_fraction of the object's largest area, >= 100 px)
    min_area_fraction: float = 0.25
    min_pixels: int = 100
    reference_frames_per_object: int | None = None  # None: any visible frame (paper); N: N fixed candidates
    # Cached target models (notes §1.9): K=15, c=32, no pixel weighting, memory 20, one update pass
    cache_dir: str = "resources/cache/target-models"
    cache_samples: int = 15
    cache_channels: int = 32
    cache_regularisation: list[float] = field(default_factory=lambda: [1e-10, 1e-8])  # code (1e-5, 1e-4) squared
    cache_init_cg_iterations: list[int] = field(default_factory=lambda: [5, 10, 10, 10, 10])
    cache_memory_capacity: int = 20
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_dict(cls, values: dict) -> TrainingConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown FRTM training settings {unknown}; known: {sorted(known)}")
        config = cls(**values)
        if config.head not in HEADS:
            raise ValueError(f"training head={config.head!r}: choose one of {list(HEADS)}")
        if not config.sources:
            raise ValueError("training sources is empty: name at least one dataset to train on")
        for source in config.sources:
            if "dataset" not in source or ("repeats" in source) == ("pairs" in source):
                raise ValueError(f"training source {source}: needs 'dataset' and exactly one of 'repeats' or 'pairs'")
        if config.epochs < 1 or config.batch_size < 1 or config.lr_step < 1:
            raise ValueError("epochs, batch_size and lr_step must be >= 1")
        return config

    def target_model_settings(self) -> TargetModelSettings:
        return TargetModelSettings(channels=self.cache_channels, regularisation=tuple(self.cache_regularisation),
                                   init_cg_iterations=tuple(self.cache_init_cg_iterations), pixel_weighting=False,
                                   feature_scale=target_feature_scale(self.backbone))


# --- data -------------------------------------------------------------------------------------------
@dataclass
class TrainingObject:
    sequence: object  # vos_datasets Sequence
    object_id: int
    references: list[str]  # candidate reference frames
    frames: list[str]  # annotated frames (targets are drawn from these)


def load_objects(source: dict, config: TrainingConfig) -> list[TrainingObject]:
    from methods.runner import build_dataset

    objects = []
    for sequence in build_dataset(source["dataset"]):
        frames = list(sequence.annotated_frames)
        areas: dict[int, dict[str, int]] = {}
        for frame in frames:
            ids, counts = np.unique(sequence.read_mask(frame), return_counts=True)
            for object_id, count in zip(ids.tolist(), counts.tolist(), strict=True):
                if 0 < object_id < 255:
                    areas.setdefault(object_id, {})[frame] = count
        for object_id, per_frame in sorted(areas.items()):
            threshold = max(config.min_pixels, config.min_area_fraction * max(per_frame.values()))
            visible = [f for f in frames if per_frame.get(f, 0) >= threshold]
            if config.reference_frames_per_object and len(visible) > config.reference_frames_per_object:
                picks = np.linspace(0, len(visible) - 1, config.reference_frames_per_object).round().astype(int)
                visible = [visible[i] for i in picks]
            if visible:
                objects.append(TrainingObject(sequence, object_id, visible, frames))
    if not objects:
        raise ValueError(f"training source {source['dataset']}: no object is visible in any frame")
    return objects


def epoch_samples(sources: list[tuple[dict, list[TrainingObject]]], config: TrainingConfig,
                  epoch: int) -> list[tuple[TrainingObject, str, list[str]]]:
    """(object, reference frame, target frames) of one epoch, shuffled; seeded by (seed, epoch)."""
    rng = random.Random(f"{config.seed}-{epoch}")
    pairs: list[TrainingObject] = []
    for source, objects in sources:
        if "repeats" in source:
            pairs += objects * int(source["repeats"])
        else:
            pairs += [rng.choice(objects) for _ in range(int(source["pairs"]))]
    rng.shuffle(pairs)
    return [(o, rng.choice(o.references), [rng.choice(o.frames) for _ in range(config.target_frames)]) for o in pairs]


def read_frame(sequence, frame: str, object_id: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Image and binary object mask resized to the training size (bilinear / nearest)."""
    import cv2

    image = sequence.read_image(frame)
    mask = (sequence.read_mask(frame) == object_id).astype(np.uint8)
    height, width = size
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    return image, mask.astype(bool)


# --- cached target models ---------------------------------------------------------------------------
class TargetModelCache:
    """Target models learned on one reference frame, stored as
    <cache_dir>/<backbone>-c<c>/<sequence>/<frame>.<object>.<key>.pt, key = hash of every input
    (image and mask bytes, frame size, backbone and its weights, settings, seed): an edit is never masked."""

    def __init__(self, config: TrainingConfig, backbone, device: torch.device) -> None:
        self.config = config
        self.backbone = backbone
        self.device = device
        self.root = Path(config.cache_dir) / f"{config.backbone}-c{config.cache_channels}"
        self.hits = self.misses = 0
        settings = {k: getattr(config, k) for k in ("cache_samples", "cache_channels", "cache_regularisation",
                                                    "cache_init_cg_iterations", "cache_memory_capacity",
                                                    "frame_size", "seed", "backbone")}
        settings["target_model"] = asdict(config.target_model_settings())  # every setting of D, scale included
        self.settings_key = json.dumps({**settings, "weights": backbone.weights_sha256()}, sort_keys=True)
        self._paths: dict[tuple[str, str, int], Path] = {}  # the input hash is computed once per run

    def path(self, sequence, frame: str, object_id: int) -> Path:
        key = (str(sequence.image_path(frame)), frame, object_id)
        if key not in self._paths:
            digest = hashlib.sha256(self.settings_key.encode())
            for file in (sequence.image_path(frame), sequence.mask_path(frame)):
                digest.update(Path(file).read_bytes())
            self._paths[key] = self.root / sequence.name / f"{frame}.{object_id}.{digest.hexdigest()[:16]}.pt"
        return self._paths[key]

    def get(self, sequence, frame: str, object_id: int) -> TargetModel:
        path = self.path(sequence, frame, object_id)
        settings = self.config.target_model_settings()
        if path.is_file():
            self.hits += 1
            state = torch.load(path, map_location="cpu", weights_only=True)
            model = TargetModel(state["w1"].shape[1], settings, device=self.device)
            model.load_state(state)
            return model
        self.misses += 1
        model = self.learn(sequence, frame, object_id, settings)
        with atomic_path(path) as tmp:  # several ranks may learn the same model: the last rename wins
            torch.save(model.state(), tmp)
        return model

    def learn(self, sequence, frame: str, object_id: int, settings: TargetModelSettings) -> TargetModel:
        image, mask = read_frame(sequence, frame, object_id, tuple(self.config.frame_size))
        samples = augment_first_frame(image, mask, self.config.cache_samples, self.config.seed)
        with torch.no_grad():
            features = torch.cat([self.backbone(image_to_tensor(s.image, self.device))[16] for s in samples])
        labels = torch.from_numpy(np.stack([s.mask for s in samples])).float().to(self.device)
        weights = torch.from_numpy(initial_sample_weights(len(samples))).float().to(self.device)
        model = TargetModel(features.shape[1], settings, seed=self.config.seed, device=self.device)
        model.initialise(features, labels, weights)
        memory = SampleMemory(self.config.cache_memory_capacity, 0.1)
        projected = model.project(features)
        memory.initialise([(projected[k], labels[k]) for k in range(len(labels))], weights.tolist())
        model.update(memory.stacked(0), memory.stacked(1), memory.filled_weights().float().to(self.device))
        return model


# --- training loop ----------------------------------------------------------------------------------
def _distributed() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device(config: TrainingConfig, rank: int) -> torch.device:
    if config.device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", rank % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(config.device)


def train(config: TrainingConfig, out: str | Path, progress: bool = True,
          stop_after_epochs: int | None = None, discard_other_settings: bool = False) -> dict:
    """Train the head and write it to `out` (atomically); resumes from `<out>.work/checkpoint.pt`.

    A checkpoint written with other settings is refused, or, with discard_other_settings (the workflow,
    which reruns a training exactly when its settings changed), deleted so that training starts over.
    """
    rank, world = _distributed()
    device = _device(config, rank)
    out = Path(out)
    work = out.with_name(out.name + ".work")
    checkpoint_path = work / "checkpoint.pt"
    torch.manual_seed(config.seed)

    backbone = build_backbone(config.backbone, config.backbone_weights).to(device)
    head = build_head(config.head, backbone.channels).to(device)
    optimiser = torch.optim.Adam(head.parameters(), lr=config.learning_rate, betas=(0.9, 0.999),
                                 weight_decay=config.weight_decay, amsgrad=config.amsgrad)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=config.lr_step, gamma=config.lr_gamma)
    start_epoch, history = 0, []
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True) if checkpoint_path.is_file() else None
    if state is not None and state["config"] != json.dumps(asdict(config), sort_keys=True):
        if not discard_other_settings:
            raise ValueError(f"{checkpoint_path}: was written with other training settings; delete {work} "
                             "to start again, or restore the settings it was made with")
        if rank == 0:
            print(f"discarding {checkpoint_path}: written with other training settings", flush=True)
            checkpoint_path.unlink()
        if world > 1:
            dist.barrier()
        state = None
    if state is not None:
        head.load_state_dict(state["head"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"] + 1, json.loads(state["history"])
        if rank == 0:
            print(f"resuming from {checkpoint_path} after epoch {start_epoch}", flush=True)
    model = head
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(head, device_ids=[device.index] if device.type == "cuda" else None)

    sources = [(source, load_objects(source, config)) for source in config.sources]
    cache = None if config.head == "base_net" else TargetModelCache(config, backbone, device)
    size = tuple(config.frame_size)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        samples = epoch_samples(sources, config, epoch)
        batches = [samples[i : i + config.batch_size] for i in range(0, len(samples), config.batch_size)]
        losses = []
        model.train()
        for batch in tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or rank != 0):
            share = batch[rank::world]
            optimiser.zero_grad()
            loss_value = _batch_loss(model, head, share, cache, backbone, size, device, len(batch))
            optimiser.step()
            losses.append(loss_value)
        scheduler.step()
        mean_loss = float(np.mean(losses)) if losses else float("nan")
        if world > 1:
            total = torch.tensor([mean_loss], device=device)
            dist.all_reduce(total)
            mean_loss = float(total) / world
        history.append({"epoch": epoch, "loss": mean_loss, "seconds": time.perf_counter() - started,
                        "processes": world, "samples": len(samples),
                        "cache_hits": cache.hits if cache else 0, "cache_misses": cache.misses if cache else 0})
        if rank == 0:
            print(json.dumps(history[-1]), flush=True)
            work.mkdir(parents=True, exist_ok=True)
            with atomic_path(checkpoint_path) as tmp:
                torch.save({"head": head.state_dict(), "optimiser": optimiser.state_dict(),
                            "scheduler": scheduler.state_dict(), "epoch": epoch, "history": json.dumps(history),
                            "config": json.dumps(asdict(config), sort_keys=True)}, tmp)
        if world > 1:
            dist.barrier()
        if stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs:
            return {"stopped_after_epoch": epoch, "history": history}
    if rank == 0:
        save_head(out, head, config.head, config.backbone,
                  extra={"training": json.dumps(asdict(config), sort_keys=True), "history": json.dumps(history)})
        atomic_write_text(out.with_suffix(".json"), json.dumps({"config": asdict(config), "history": history}, indent=1))
    if world > 1:
        dist.barrier()
    return {"history": history}


def _batch_loss(model, head, share, cache, backbone, size, device, batch_size) -> float:
    """Forward this rank's samples, one backward per target frame; returns the mean loss."""
    if not share:  # a short last batch may leave a rank empty: contribute zero gradients to keep DDP in step
        zero = sum(p.sum() * 0 for p in head.parameters())
        zero.backward()
        return 0.0
    references = [read_frame(o.sequence, ref, o.object_id, size) for o, ref, _ in share]
    with torch.no_grad():
        if cache is not None:
            target_models = [cache.get(o.sequence, ref, o.object_id) for o, ref, _ in share]
        else:
            ref_features = torch.cat([backbone(image_to_tensor(img, device))[16] for img, _ in references])
            ref_masks = torch.from_numpy(np.stack([m for _, m in references])).float().to(device)
    total = 0.0
    n_targets = len(share[0][2])
    for t in range(n_targets):
        frames = [read_frame(o.sequence, targets[t], o.object_id, size) for o, _, targets in share]
        images = torch.cat([image_to_tensor(img, device) for img, _ in frames])
        labels = torch.from_numpy(np.stack([m for _, m in frames])).float().to(device)
        with torch.no_grad():
            features = backbone(images)
        if cache is not None:
            with torch.no_grad():
                scores = torch.cat([tm.scores(features[16][i : i + 1]) for i, tm in enumerate(target_models)])
        else:
            encoder = head.target_encoder
            scores = encoder.scores(features[16], encoder.encode(ref_features, ref_masks))
        logits = model(features, scores, size)[:, 0]
        # mean over this rank's pixels, scaled so that DDP's average over ranks is the batch mean
        loss = F.binary_cross_entropy_with_logits(logits, labels) * len(share) / batch_size
        world = dist.get_world_size() if dist.is_initialized() else 1
        (loss * world / n_targets).backward()
        total += float(loss.detach()) * batch_size / len(share) / n_targets
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m methods.frtm.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="training settings as JSON text or a .json file")
    parser.add_argument("--out", required=True, type=Path, help="the trained head (.pt)")
    parser.add_argument("--stop-after-epochs", type=int, help="stop early (tests of resumption)")
    parser.add_argument("--discard-other-settings", action="store_true",
                        help="start over when the checkpoint was written with other settings (default: refuse)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    text = Path(args.config).read_text() if args.config.endswith(".json") else args.config
    try:
        config = TrainingConfig.from_dict(json.loads(text))
        train(config, args.out, progress=not args.quiet, stop_after_epochs=args.stop_after_epochs,
              discard_other_settings=args.discard_other_settings)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
