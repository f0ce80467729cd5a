"""End-to-end training of LWL (paper §3.6; notes §2.6), and of its box encoder (§3.7).

A sample is a mini-sequence of Q = 4 frames of one object: a train frame and 3 test frames drawn with
replacement from the frames where the object is visible among the Q' = 100 annotated frames after it, in
time order (released LWLSampler). As at inference, the few-shot learner builds tau from the train frame
(5 steepest-descent steps from zero); each test frame is then predicted (the frame's S sequences in one
decoder call), its detached prediction joins the few-shot training set (weighted by W alone, as the
released LWTLNet.forward) and 2 more steps update tau; with `predict_with_updated_model: false` (the
default, the released code) the updated tau predicts nothing, so those steps are skipped: every test frame
is predicted by the train frame's model. The Lovasz-softmax loss of the 3 predictions (on sigmoid probabilities, one class, pooled over
the batch; x100: the released code's LovaszSegLoss(per_image=False), see `lovasz_loss`; the ci and
davis2016 presets' `loss: bce` swaps in binary cross-entropy, see `bce_loss`) is back-propagated through
the decoder, the learner's steps, E, W, lambda and the feature conv (and, in the second stage, the
backbone's deeper levels). Table 1's Baseline cuts the graph at the learner
(network `end_to_end: false`).

Each frame is cropped around its object's bounding box (5x the box, released _get_jittered_box: each side
x exp(N(0, sigma)), sigma 0.25 for the train frame and 0.5 for test frames; centre shifted by
U(-1/2, 1/2) x 3 (train) or (5.5, 4.5) (test) x sqrt(area of the jittered box)) and augmented: rotation +-15 deg, scale x(1 +- 0.2), brightness x U[0.8, 1.2],
horizontal flip p = 0.5 (train frame, and one new draw for the test frames), grayscale p = 0.05.

Stages: `stage: 1` trains everything but the backbone (learning rates: lambda 1e-4, feature conv 2e-5,
decoder 1e-4, E/W 2e-4); `stage: 2` starts from stage 1's weights (`init_from`) and also trains the
backbone's levels below stride 4, every rate 2e-5. `box_encoder: true` trains only the box encoder B from
a trained network (Adam 1e-3, Lovasz x10; the decoder and every other module in eval mode, released
LWTLBoxNet.train): a sample is one frame and its object's bounding box.

Epochs, checkpoints, resumption and torchrun come from methods.core.trainer. With `validation` a held-out
set of mini-sequences (or box-encoder frames), drawn once with their crops' augmentation seeds, is scored
every few epochs through the training forward (the training's loss and J of the test frames' predictions).
The mini-sequences and their crops' seeds are drawn in the training process; DataLoader workers
(`num_workers`) decode, crop and augment them (`load_crops`).

    python -m methods.lwl.training --config training.json --out results/.../head.pt
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

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
from methods.lwl.crops import Box, box_mask, search_region
from methods.lwl.networks import LWLNet, NetworkConfig, load_network, save_network
from methods.lwl.training_settings import PAPER_LEARNING_RATES, TrainingConfig  # noqa: F401 (torch-free)
from vos_datasets.fileio import atomic_write_text


# --- data -------------------------------------------------------------------------------------------
@dataclass
class TrainingObject:
    sequence: object
    object_id: int
    frames: list[str]  # annotated frames, in order
    visible: list[int]  # indices into frames where the object has more than min_pixels


def load_objects(source: dict, config: TrainingConfig) -> list[TrainingObject]:
    from vos_datasets.build import build_dataset

    objects = []
    for sequence in build_dataset(source["dataset"]):
        frames = list(sequence.annotated_frames)
        for object_id, per_frame in sorted(object_areas(sequence).items()):
            visible = [i for i, f in enumerate(frames) if per_frame.get(f, 0) > config.min_pixels]
            if visible:
                objects.append(TrainingObject(sequence, object_id, frames, visible))
    if not objects:
        raise ValueError(f"training source {source['dataset']}: no object is visible in any frame")
    return objects


def draw_frames(obj: TrainingObject, config: TrainingConfig, rng: random.Random) -> list[str]:
    """A train frame where the object is visible, then Q-1 test frames drawn with replacement from the frames
    where it is visible within the Q' frames after it, in time order (released LWLSampler: the window widens
    by 5 frames until it holds a visible frame). The train frame is drawn among the visible frames that have
    a visible frame after them; an object visible in one frame only repeats that frame."""
    later = [i for i in obj.visible if i < obj.visible[-1]]  # visible frames with a visible frame after them
    if not later:
        return [obj.frames[obj.visible[0]]] * config.frames_per_sequence
    base = rng.choice(later)
    widen = 0
    while True:
        pool = [i for i in obj.visible if base < i <= base + config.window + widen]
        if pool:
            break
        widen += 5
    tests = sorted(rng.choice(pool) for _ in range(config.frames_per_sequence - 1))
    return [obj.frames[base]] + [obj.frames[i] for i in tests]


def bounding_box(mask: np.ndarray) -> Box:
    """The tight box of a mask's pixels (released training annotations: masks_to_bboxes), centre and size."""
    ys, xs = np.nonzero(mask > 0.5)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    return Box((x0 + x1) / 2, (y0 + y1) / 2, float(x1 - x0 + 1), float(y1 - y0 + 1))


def jittered_box(box: Box, rng: random.Random, sigma: float, offsets: tuple[float, float]) -> Box:
    """The crop's target box (released LWLProcessing._get_jittered_box): each side scaled by its own
    exp(N(0, sigma)); the centre moved by U(-1/2, 1/2) x offset x sqrt(area of the JITTERED box) per axis."""
    width = box.width * float(np.exp(rng.gauss(0, sigma)))
    height = box.height * float(np.exp(rng.gauss(0, sigma)))
    side = float(np.sqrt(width * height))
    return Box(box.cx + (rng.random() - 0.5) * offsets[0] * side,
               box.cy + (rng.random() - 0.5) * offsets[1] * side, width, height)


def _affine(region, rng: random.Random, config: TrainingConfig, flip: bool) -> np.ndarray:
    """Frame -> crop map: the region's crop, then rotation, scale and flip about the crop centre."""
    height, width = region.crop_size
    angle = rng.uniform(-config.rotation_degrees, config.rotation_degrees)
    scale = 1 + rng.uniform(-config.scale_jitter, config.scale_jitter)
    rotate = np.vstack([cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, scale), [0, 0, 1]])
    if flip:
        rotate = np.array([[-1, 0, width - 1], [0, 1, 0], [0, 0, 1]], np.float64) @ rotate
    return (rotate @ np.vstack([region.to_crop(), [0, 0, 1]]))[:2]


def sample_crops(obj: TrainingObject, frames: list[str], config: TrainingConfig,
                 rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Augmented crops of the mini-sequence: images (Q, H, W, 3) uint8 and masks (Q, H, W) float32."""
    crop_size = tuple(config.crop_size)
    flips = [rng.random() < config.flip_probability for _ in range(2)]  # train frame, test frames
    gray = rng.random() < config.grayscale_probability
    images, masks, train_box = [], [], None
    for index, frame in enumerate(frames):
        image = obj.sequence.read_image(frame)
        mask = (obj.sequence.read_mask(frame) == obj.object_id).astype(np.float32)
        box = bounding_box(mask) if mask.sum() > config.min_pixels else None
        box = box or train_box
        train_box = train_box or box
        sigma = config.size_jitter[0 if index == 0 else 1]
        offsets = (3.0, 3.0) if index == 0 else (5.5, 4.5)
        jittered = jittered_box(box, rng, sigma, offsets)
        region = search_region(jittered, mask.shape, crop_size, config.search_area_scale)
        matrix = _affine(region, rng, config, flips[0 if index == 0 else 1])
        size = (crop_size[1], crop_size[0])
        image = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask = cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        image = np.clip(image.astype(np.float32) * rng.uniform(1 - config.brightness_jitter,
                                                               1 + config.brightness_jitter), 0, 255)
        if gray:
            image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        images.append(image.astype(np.uint8))
        masks.append(mask)
    return np.stack(images), np.stack(masks)


def load_crops(sample: tuple[TrainingObject, list[str], int], config: TrainingConfig) -> dict:
    """A sample as the DataLoader's workers load it: sample_crops under the sample's own crop seed (drawn in
    the training process), as tensors: "images" uint8 (Q, H, W, 3), "masks" float32 (Q, H, W) and, for the
    box encoder, "boxes" (Q, H, W), each mask's bounding box."""
    obj, frames, seed = sample
    images, masks = sample_crops(obj, frames, config, random.Random(seed))
    loaded = {"images": torch.from_numpy(images), "masks": torch.from_numpy(masks)}
    if config.box_encoder:
        loaded["boxes"] = torch.from_numpy(np.stack([box_mask(m) for m in masks]))
    return loaded


# --- the loss ---------------------------------------------------------------------------------------
def lovasz_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """LWL's segmentation loss: the Lovasz-softmax loss (Berman et al. 2018, the paper's [2]) of the sigmoid
    probabilities for the one class "target", all pixels of the batch pooled (the released code's
    LovaszSegLoss(classes=[1], per_image=False)). Errors are |label - p|, so it is 0.5 for logits of 0.

    Not segmentation_models_pytorch's LovaszLoss("binary"): that is the Lovasz *hinge* on the logits, another
    surrogate (1 for logits of 0, unbounded). Its Lovasz-softmax routine is Berman's reference code, which
    takes a single sigmoid channel when given one class.
    """
    from segmentation_models_pytorch.losses.lovasz import _lovasz_softmax

    return _lovasz_softmax(torch.sigmoid(logits), labels.to(torch.long), classes=[1], per_image=False)


def bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the logits, all pixels of the batch averaged: the loss FRTM trains R with.
    Unlike the Lovasz loss its gradient does not vanish at "probability 0.5 everywhere", where a decoder
    trained for only a few hundred iterations stays (docs/lwl.md, "CPU-length trainings and the Lovasz plateau")."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


TRAINING_LOSSES = {"lovasz": lovasz_loss, "bce": bce_loss}


# --- the job ----------------------------------------------------------------------------------------
class LWLTrainingJob(TrainingJob):
    def __init__(self, config: TrainingConfig) -> None:
        self.config = config
        self.network_config = NetworkConfig.from_dict(config.network)
        if config.box_encoder:
            self.network_config.box_encoder = True
        self.settings_json = settings_text(asdict(config))
        self.seed, self.epochs = config.seed, config.epochs
        self.batch_size, self.num_workers, self.mixed_precision = config.batch_size, config.num_workers, config.mixed_precision
        self.validation_every = config.validation["every"] if config.validation else 0
        self.find_unused_parameters = True  # Baseline: lambda gets no gradient (the learner is cut off)
        self.preflight = config.preflight
        self.saturating_loss = config.loss == "lovasz"  # Lovasz-softmax on sigmoid probabilities
        self.starts_trained = bool(config.init_from)

    def build_backbone(self):
        """The backbone the network starts with; with init_from every weight, the backbone's included, comes
        from that network (load_initial_weights): no pretrained file is read, as pytracking's lwl_stage2.py /
        lwl_boxinit.py load only the earlier net."""
        from methods.core.backbones import build_backbone

        c = self.config
        pretrained = not c.init_from
        backbone = build_backbone(self.network_config.backbone, c.backbone_weights_file if pretrained else None,
                                  pretrained=pretrained, weights=c.backbone_weights)
        self.backbone_weights = (backbone.weights_record() if pretrained else
                                 {"backbone": backbone.name, "weights": None, "from": c.init_from})
        return backbone

    def build(self, device: torch.device) -> torch.nn.Module:
        self.device = device
        net = LWLNet(self.network_config, backbone=self.build_backbone()).to(device)
        net.decoder_batch_statistics = self.config.decoder_batch_statistics
        net.train_only_box_encoder = self.config.box_encoder  # released LWTLBoxNet.train: all else in eval
        self.sources = [(source, load_objects(source, self.config)) for source in self.config.sources]
        return net

    def load_initial_weights(self, module: LWLNet) -> None:
        if not self.config.init_from:
            return
        trained = load_network(self.config.init_from)
        missing, unexpected = module.load_state_dict(trained.state_dict(), strict=False)
        if unexpected or any(not key.startswith("box_encoder.") for key in missing):
            raise ValueError(f"{self.config.init_from}: its network does not match this training's "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")

    def optimiser(self, module: LWLNet):
        c = self.config
        rates = c.learning_rates
        if c.box_encoder:  # only B learns
            for parameter in module.parameters():
                parameter.requires_grad_(False)
            groups = [{"params": list(module.box_encoder.parameters()), "lr": rates["box_encoder"]}]
            for parameter in groups[0]["params"]:
                parameter.requires_grad_(True)
        else:
            parts = {"learner": module.learner, "target_features": module.target_features,
                     "decoder": module.decoder, "mask_encoder": module.mask_encoder}
            groups = [{"params": list(part.parameters()), "lr": rates[name] if c.stage == 1 else rates["backbone"]}
                      for name, part in parts.items() if part is not None]
            if c.stage == 2:
                groups.append({"params": module.backbone.unfreeze_deep_levels(), "lr": rates["backbone"]})
        optimiser = torch.optim.Adam(groups)
        return optimiser, torch.optim.lr_scheduler.MultiStepLR(optimiser, c.milestones, gamma=c.lr_gamma)

    def epoch_samples(self, epoch: int) -> list:
        """Mini-sequences (object, frames, per-sample crop seed) of one epoch, iterations_per_epoch x batch_size;
        seeded by (seed, epoch)."""
        c = self.config
        rng = random.Random(f"{c.seed}-{epoch}")
        weights = [float(source.get("weight", 1)) for source, _ in self.sources]
        samples = []
        for _ in range(c.iterations_per_epoch * c.batch_size):
            _, objects = rng.choices(self.sources, weights=weights)[0]
            samples.append(self.draw_sample(rng.choice(objects), rng))
        return samples

    def sample_loader(self):
        return partial(load_crops, config=self.config)

    def draw_sample(self, obj: TrainingObject, rng: random.Random) -> tuple[TrainingObject, list[str], int]:
        """(object, frames, crop seed): a mini-sequence, or the box encoder's one frame."""
        c = self.config
        frames = draw_frames(obj, c, rng) if not c.box_encoder else [obj.frames[rng.choice(obj.visible)]]
        return obj, frames, rng.getrandbits(32)

    def validation_samples(self) -> list:
        """`samples` of the validation dataset's objects (each once before any twice), drawn as the epochs'
        samples (their crops' augmentation included) from `held_out_generator`: the same samples at every
        measure and at every training seed, the epochs' draws untouched."""
        c = self.config
        rng = held_out_generator()
        objects = load_objects({"dataset": c.validation["dataset"]}, c)
        return [self.draw_sample(obj, rng) for obj in spread_draw(objects, c.validation["samples"], rng)]

    def validation_scores(self, module: LWLNet, share: list) -> list[tuple[float, float]]:
        """Per sample: the training loss of its predictions (test frames; box encoder: its frame) and their mean J."""
        scores = []
        for start in range(0, len(share), self.config.batch_size):
            chunk = share[start : start + self.config.batch_size]
            logits, labels = self.batch_predictions(module, chunk)
            per_sample = len(logits) // len(chunk)  # sequence-major
            ious = mask_iou(logits, labels).cpu()
            for i in range(len(chunk)):
                frames = slice(i * per_sample, (i + 1) * per_sample)
                scores.append((float(self.loss(logits[frames], labels[frames])), float(ious[frames].mean())))
        return scores

    def batch_predictions(self, model, share: list) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits of a share of a batch (sample descriptions, loaded here) and the labels they are scored against."""
        return self.predictions(model, [load_crops(sample, self.config) for sample in share])

    def predictions(self, model, loaded: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits of loaded samples (load_crops) and the labels they are scored against."""
        c, device = self.config, self.device
        images = torch.stack([image_batch(list(sample["images"]), device) for sample in loaded])
        masks = torch.stack([sample["masks"] for sample in loaded]).to(device, non_blocking=True)[:, :, None]
        with self.autocast():
            if c.box_encoder:
                boxes = torch.stack([sample["boxes"] for sample in loaded]).to(device, non_blocking=True)
                logits, labels = model(images, masks, box_masks=boxes[:, :, None]), masks.flatten(0, 1)
            else:
                logits = model(images, masks, c.init_iterations, c.forward_update_iterations)
                labels = masks[:, 1:].flatten(0, 1)
        return logits.float(), labels

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return TRAINING_LOSSES[self.config.loss](logits, labels) * self.config.loss_weight

    def batch_loss(self, model, module: LWLNet, share: list, batch_size: int) -> float:
        logits, labels = self.predictions(model, [loaded for _, loaded in share])
        self.record_outputs(logits)
        loss = self.loss(logits, labels)
        backward_share(loss, len(share), batch_size, self.precision)
        return float(loss.detach())

    def preflight_advice(self) -> str:
        if self.network_config.decoder_init == "he" and self.saturating_loss:
            return ("set network decoder_init: pytorch (the released code's init) in this training's settings "
                    "(docs/lwl.md, \"Decoder initialisation\")")
        return ("check network decoder_init, loss and learning_rates in this training's settings (docs/lwl.md, "
                "\"Decoder initialisation\")")

    def save(self, out: Path, module: LWLNet, history: list[dict]) -> None:
        save_network(out, module, extra={"training": self.settings_json, "history": json.dumps(history)})
        atomic_write_text(out.with_suffix(".json"), json.dumps({"config": asdict(self.config),
                                                                "backbone_weights": self.backbone_weights,
                                                                "history": history}, indent=1))


def train(config: TrainingConfig, out: str | Path, progress: bool = True,
          stop_after_epochs: int | None = None, discard_other_settings: bool = False,
          keep_checkpoint_on_code_change: bool = False, stop_at_epoch: int | None = None) -> dict:
    return run_training(LWLTrainingJob(config), out, progress=progress, stop_after_epochs=stop_after_epochs,
                        discard_other_settings=discard_other_settings, device_name=config.device,
                        keep_checkpoint_on_code_change=keep_checkpoint_on_code_change, stop_at_epoch=stop_at_epoch)


def main(argv: list[str] | None = None) -> int:
    return training_cli("methods.lwl.training", __doc__, train, TrainingConfig.from_dict, argv)


if __name__ == "__main__":
    sys.exit(main())
