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

Checkpoints, resumption after an interruption and several processes (torchrun, DDP) come from the loop
both methods share (methods.core.trainer); epoch sampling is seeded by (seed, epoch). With `validation`
a held-out set of samples like the epochs' (object, reference frame, target frames), drawn once, is scored
every few epochs (the training's loss and J of the head's target-frame predictions at the training size).
The samples (object, reference frame, target frames) are drawn in the training process; DataLoader workers
(`num_workers`) decode and resize their frames (`load_frames`); D is learned or read from the cache in the
training process, which holds the backbone.

    python -m methods.frtm.training --config training.json --out results/.../head.pt
    torchrun --nproc_per_node 4 -m methods.frtm.training --config ... --out ...
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from methods.core.augmentation import augment_first_frame, initial_sample_weights
from methods.core.backbones import build_backbone, image_to_tensor
from methods.core.code_digest import code_digest
from methods.core.memory import SampleMemory
from methods.core.trainer import (
    TrainingJob,
    backward_share,
    held_out_generator,
    image_batch,
    mask_iou,
    run_training,
    settings_text,
    spread_draw,
    training_cli,
)
from methods.core.training_data import object_areas
from methods.frtm.networks import build_head, save_head
from methods.frtm.target_model import TargetModel, TargetModelSettings
from methods.frtm.training_settings import TrainingConfig  # torch-free: the workflow checks it
from vos_datasets.fileio import atomic_path, atomic_write_text


# --- data -------------------------------------------------------------------------------------------
@dataclass
class TrainingObject:
    sequence: object  # vos_datasets Sequence
    object_id: int
    references: list[str]  # candidate reference frames
    frames: list[str]  # annotated frames (targets are drawn from these)


def load_objects(source: dict, config: TrainingConfig) -> list[TrainingObject]:
    from vos_datasets.build import build_dataset

    objects = []
    for sequence in build_dataset(source["dataset"]):
        frames = list(sequence.annotated_frames)
        areas = object_areas(sequence)
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
    return [draw_sample(o, config, rng) for o in pairs]


def draw_sample(o: TrainingObject, config: TrainingConfig, rng: random.Random) -> tuple[TrainingObject, str, list[str]]:
    """(object, reference frame, target frames): a reference among the object's candidates, then its targets."""
    reference = rng.choice(o.references)
    return o, reference, target_frames(o.frames, reference, config.target_frames, rng)


def validation_samples(config: TrainingConfig) -> list[tuple[TrainingObject, str, list[str]]]:
    """The held-out samples: `samples` of the validation dataset's objects (each once before any twice),
    with their reference and target frames, from `held_out_generator` (the epochs' draws are untouched): the
    same samples at every measure and at every training seed."""
    rng = held_out_generator()
    objects = load_objects({"dataset": config.validation["dataset"]}, config)
    return [draw_sample(o, config, rng) for o in spread_draw(objects, config.validation["samples"], rng)]


def target_frames(frames: list[str], reference: str, count: int, rng: random.Random) -> list[str]:
    """`count` target frames drawn without replacement from the annotated frames other than the reference
    (released lib/training_datasets.py: sample_random_image_set). A video with too few other frames
    (the released code would fail) draws with replacement, from the reference itself if it is alone."""
    others = [f for f in frames if f != reference] or [reference]
    if len(others) >= count:
        return rng.sample(others, count)
    return [rng.choice(others) for _ in range(count)]


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


def load_frames(sample: tuple[TrainingObject, str, list[str]], size: tuple[int, int], with_reference: bool) -> dict:
    """A sample's frames as the DataLoader's workers load them (read_frame: at the training size), as tensors:
    "targets", an (image uint8 (H, W, 3), mask bool (H, W)) pair per target frame, and "reference", the
    reference frame's pair where the head encodes it (Base net; D comes from the cache otherwise), or None."""
    o, reference, targets = sample

    def frame(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = read_frame(o.sequence, name, o.object_id, size)
        return torch.from_numpy(np.array(image)), torch.from_numpy(mask)

    return {"reference": frame(reference) if with_reference else None, "targets": [frame(t) for t in targets]}


# --- cached target models ---------------------------------------------------------------------------
LEARNING_CODE = ("methods/frtm/target_model.py", "methods/core/gauss_newton.py", "methods/core/augmentation.py",
                 "methods/core/memory.py", "methods/frtm/training.py")


def learning_code_digest() -> str:
    """Digest of the source that learns a cached target model (D's optimiser, the augmentation, the memory,
    this module): a change to it, even one that only rounds differently, must not reuse models it learned."""
    return code_digest(*LEARNING_CODE)


class TargetModelCache:
    """Target models learned on one reference frame, stored as
    <cache_dir>/<backbone>-c<c>/<sequence>/<frame>.<object>.<key>.pt, key = hash of every input
    (image and mask bytes, frame size, backbone and its weights, settings, seed, the learning code's
    source): an edit is never masked."""

    def __init__(self, config: TrainingConfig, backbone, device: torch.device) -> None:
        self.config = config
        self.backbone = backbone
        self.device = device
        self.root = Path(config.cache_dir) / f"{config.backbone}-c{config.cache_channels}"
        self.hits = self.misses = 0
        settings = {k: getattr(config, k) for k in ("cache_samples", "cache_channels", "cache_regularisation",
                                                    "cache_preconditioner", "cache_cg_forgetting_rate",
                                                    "cache_init_cg_iterations", "cache_memory_capacity",
                                                    "frame_size", "seed", "backbone")}
        settings["target_model"] = asdict(config.target_model_settings())  # every setting of D, scale included
        self.settings_key = json.dumps({**settings, "weights": backbone.weights_sha256(),
                                        "code": learning_code_digest()}, sort_keys=True)
        self._paths: dict[tuple, Path] = {}  # the input hash is computed once per run

    def path(self, sequence, frame: str, object_id: int) -> Path:
        files = (sequence.image_path(frame), sequence.mask_path(frame))
        stats = [os.stat(file) for file in files]  # an edited file gets hashed again
        key = (*map(str, files), object_id, *((st.st_mtime_ns, st.st_size) for st in stats))
        if key not in self._paths:
            digest = hashlib.sha256(self.settings_key.encode())
            for file in files:
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
        memory = SampleMemory(self.config.cache_memory_capacity, 0.1, rule="released")  # released weight rule
        projected = model.project(features)
        memory.initialise([(projected[k], labels[k]) for k in range(len(labels))], weights.tolist())
        model.update(memory.stacked(0), memory.stacked(1), memory.filled_weights().float().to(self.device))
        return model


# --- frozen-backbone features -------------------------------------------------------------------------
# The most a CPU training keeps (the embedded preset's R: about 70 MB for all its frames). GPU trainings keep
# none: there the backbone is fast, and the paper-size batches of random frames would rarely come again while
# holding GPU memory.
FEATURE_CACHE_BYTES = 2**30


class FeatureCache:
    """The backbone's features of the frames a training sees again, computed once and then reused: the backbone
    is frozen (fixed weights, always in eval mode), so a batch of frames gives the same features every epoch
    and at every held-out measure. A hit hands back the very tensors the first computation gave, so the
    training computes what it computed without the cache, bit for bit (tests/test_training_validation.py). Keyed by
    the batch's image files in order (a batch of several frames is one forward pass, as without the cache:
    its features are not assembled from single frames'); new batches are kept until `budget` bytes are held,
    then computed every time."""

    def __init__(self, backbone, budget: int) -> None:
        self.backbone = backbone
        self.budget, self.held = budget, 0
        self.entries: dict[tuple[str, ...], dict[int, torch.Tensor]] = {}
        self.computed = 0  # backbone forward passes run (tests)

    def get(self, files: list, images: Callable[[], torch.Tensor]) -> dict[int, torch.Tensor]:
        """The features of the batch of `files`; `images()` gives its image batch when they must be computed."""
        key = tuple(map(str, files))
        features = self.entries.get(key)
        if features is None:
            features = self.backbone(images())
            self.computed += 1
            size = sum(f.numel() * f.element_size() for f in features.values())
            if self.held + size <= self.budget:
                self.entries[key] = features
                self.held += size
        return features


# --- training loop ----------------------------------------------------------------------------------
class FRTMTrainingJob(TrainingJob):
    """The head is trained (backbone frozen); D comes from the cache (or, for Base net, the encoder)."""

    def __init__(self, config: TrainingConfig) -> None:
        self.config = config
        self.settings_json = settings_text(asdict(config))
        self.seed, self.epochs = config.seed, config.epochs
        self.batch_size, self.num_workers, self.mixed_precision = config.batch_size, config.num_workers, config.mixed_precision
        self.validation_every = config.validation["every"] if config.validation else 0
        self.preflight = config.preflight  # cross-entropy does not saturate: the gradient checks only
        self.cache: TargetModelCache | None = None
        self.features: FeatureCache | None = None

    def build(self, device: torch.device) -> torch.nn.Module:
        config = self.config
        self.device = device
        self.backbone = build_backbone(config.backbone, config.backbone_weights_file,
                                       weights=config.backbone_weights).to(device)
        head = build_head(config.head, self.backbone.channels).to(device)
        self.sources = [(source, load_objects(source, config)) for source in config.sources]
        self.features = FeatureCache(self.backbone, FEATURE_CACHE_BYTES if device.type == "cpu" else 0)
        if config.head != "base_net":
            self.cache = TargetModelCache(config, self.backbone, device)
        return head

    def optimiser(self, module):
        config = self.config
        optimiser = torch.optim.Adam(module.parameters(), lr=config.learning_rate, betas=(0.9, 0.999),
                                     weight_decay=config.weight_decay, amsgrad=config.amsgrad)
        return optimiser, torch.optim.lr_scheduler.StepLR(optimiser, step_size=config.lr_step, gamma=config.lr_gamma)

    def epoch_samples(self, epoch: int) -> list:
        return epoch_samples(self.sources, self.config, epoch)

    def sample_loader(self):
        return partial(load_frames, size=tuple(self.config.frame_size), with_reference=self.config.head == "base_net")

    def history_extra(self) -> dict:
        return {"cache_hits": self.cache.hits if self.cache else 0, "cache_misses": self.cache.misses if self.cache else 0}

    def target_predictions(self, model, module, share):
        """For each target frame in turn: the head's logits (S, H, W) for the share's samples and their labels,
        at the training size (D from the cache, or the Base net's encoder); share: (description, load_frames'
        frames) pairs. A generator: training runs one backward per target frame before the next frame's
        forward (released code). D works in float32 (under mixed precision too: the cache holds float32 models)."""
        size, device = tuple(self.config.frame_size), self.device

        def features_of(frames: list[tuple[TrainingObject, str]], images: list[torch.Tensor]) -> dict:
            with torch.no_grad(), self.autocast():
                return self.features.get([o.sequence.image_path(frame) for o, frame in frames],
                                         lambda: image_batch(images, device))

        with torch.no_grad():
            if self.cache is not None:
                target_models = [self.cache.get(o.sequence, ref, o.object_id) for (o, ref, _), _ in share]
            else:  # one image at a time, as the training always computed them
                ref_features = torch.cat([features_of([(o, ref)], [frames["reference"][0]])[16]
                                          for (o, ref, _), frames in share])
                ref_masks = torch.stack([frames["reference"][1] for _, frames in share]).to(device, non_blocking=True).float()
        for t in range(len(share[0][1]["targets"])):
            targets = [frames["targets"][t] for _, frames in share]
            features = features_of([(o, names[t]) for (o, _, names), _ in share], [image for image, _ in targets])
            labels = torch.stack([mask for _, mask in targets]).to(device, non_blocking=True).float()
            if self.cache is not None:
                with torch.no_grad():
                    scores = torch.cat([tm.scores(features[16][i : i + 1].float()) for i, tm in enumerate(target_models)])
            else:
                encoder = module.target_encoder
                with self.autocast():
                    scores = encoder.scores(features[16], encoder.encode(ref_features, ref_masks))
            with self.autocast():
                logits = model(features, scores, size)[:, 0]
            yield logits.float(), labels

    def batch_loss(self, model, module, share, batch_size) -> float:
        """One backward per target frame (released code); binary cross-entropy at the training size."""
        total = 0.0
        n_targets = len(share[0][0][2])
        for logits, labels in self.target_predictions(model, module, share):
            self.record_outputs(logits)
            loss = F.binary_cross_entropy_with_logits(logits, labels)
            backward_share(loss / n_targets, len(share), batch_size, self.precision)
            total += float(loss.detach()) / n_targets
        return total

    def preflight_advice(self) -> str:
        return "check learning_rate and head in this training's settings (docs/frtm.md, \"Offline training\")"

    def validation_samples(self) -> list:
        return validation_samples(self.config)

    def validation_scores(self, module, share: list) -> list[tuple[float, float]]:
        """Per sample: the mean over its target frames of the training loss and of J. The cache's hit and miss
        counts stay the training's (a held-out reference frame's D is learned at the first measure)."""
        counts = (self.cache.hits, self.cache.misses) if self.cache else None
        scores, load = [], self.sample_loader()
        for start in range(0, len(share), self.config.batch_size):
            chunk = share[start : start + self.config.batch_size]
            losses, ious = torch.zeros(len(chunk)), torch.zeros(len(chunk))
            for logits, labels in self.target_predictions(module, module, [(s, load(s)) for s in chunk]):
                losses += F.binary_cross_entropy_with_logits(logits, labels, reduction="none").flatten(1).mean(1).cpu()
                ious += mask_iou(logits, labels).cpu()
            n_targets = len(chunk[0][2])
            scores += [(float(loss) / n_targets, float(iou) / n_targets) for loss, iou in zip(losses, ious, strict=True)]
        if counts:
            self.cache.hits, self.cache.misses = counts
        return scores

    def save(self, out: Path, module, history: list[dict]) -> None:
        config = self.config
        save_head(out, module, config.head, config.backbone,
                  extra={"training": self.settings_json, "history": json.dumps(history)})
        atomic_write_text(out.with_suffix(".json"), json.dumps({"config": asdict(config),
                                                                "backbone_weights": self.backbone.weights_record(),
                                                                "history": history}, indent=1))


def train(config: TrainingConfig, out: str | Path, progress: bool = True,
          stop_after_epochs: int | None = None, discard_other_settings: bool = False,
          keep_checkpoint_on_code_change: bool = False, stop_at_epoch: int | None = None) -> dict:
    """Train the head and write it to `out` (atomically); resumes from `<out>.work/checkpoint.pt`."""
    return run_training(FRTMTrainingJob(config), out, progress=progress, stop_after_epochs=stop_after_epochs,
                        discard_other_settings=discard_other_settings, device_name=config.device,
                        keep_checkpoint_on_code_change=keep_checkpoint_on_code_change, stop_at_epoch=stop_at_epoch)


def main(argv: list[str] | None = None) -> int:
    return training_cli("methods.frtm.training", __doc__, train, TrainingConfig.from_dict, argv)


if __name__ == "__main__":
    sys.exit(main())
