"""FRTM inference (paper Algorithm 1, §3.4): one online target model per object, one feature extraction
per frame, the offline-trained head (refinement network R, or a Table 1 ablation head), soft aggregation.

Per frame: extract the pyramid; for every tracked object predict coarse scores s = D(x) and refine them;
merge the objects as the released Tracker.track does (`merge_frame`): objects given in this frame enter
the merge with their given mask, and the tracked objects' probabilities are first multiplied by 1 - that
mask; then FRTM's softmax over the odds, each object keeping its value on its own argmax region. An
object's merged row (near binary) and its features go into its sample memory unless the row has fewer
than 10 pixels > 0.5 (then the frame neither inserts nor optimises, as released); every t_s-th tracked
frame D is updated (w2 only). The label image is `frame_labels` of the merged rows: p > 0.5 for a
one-object sequence, else the argmax of a second merge (released run_sequence). New objects get their
target model, trained on K augmented copies of the frame (Gauss-Newton, w1 and w2).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import asdict

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from methods.base import check_mask_size, given_masks, read_frame_checked
from methods.core.augmentation import augment_first_frame, initial_sample_weights
from methods.core.backbones import build_backbone, image_to_tensor
from methods.core.device import resolve_device
from methods.core.memory import SampleMemory
from methods.core.merging import merge_frtm
from methods.frtm.networks import load_head
from methods.frtm.settings import FRTMSettings
from methods.frtm.target_model import MIN_FOREGROUND_PIXELS, TargetModel
from vos_datasets.sequence import Sequence


class ObjectTracker:
    """One object's target model and sample memory (or, for Base net, its reference encoding and head)."""

    def __init__(self, object_id: int) -> None:
        self.object_id = object_id
        self.target_model: TargetModel | None = None
        self.memory: SampleMemory | None = None
        self.encoding: torch.Tensor | None = None  # Base net
        self.head: torch.nn.Module | None = None  # Base net + F-T: a fine-tuned copy of the head
        self.projected: torch.Tensor | None = None  # w1 * x of the current frame
        self.tracked_frames = 0


class FRTM:
    name = "frtm"

    def __init__(self, **settings) -> None:
        self.settings = FRTMSettings.from_dict(settings)
        s = self.settings
        self.device = resolve_device(s.device)
        self.backbone = build_backbone(s.backbone, s.backbone_weights_file, weights=s.backbone_weights).to(self.device)
        self.head = load_head(s.checkpoint, s.head, s.backbone, self.backbone.channels).to(self.device)
        self.score_maps: dict[tuple[str, int], np.ndarray] | None = {} if s.keep_score_maps else None
        # the runner's FPS protocol (methods.runner, "authors"): frames put on the device before the clock
        # (`preload`), labels left there until the sequence is done (no synchronise per frame)
        self.preloaded: dict[str, tuple[np.ndarray, torch.Tensor]] = {}
        self.labels_on_device = False

    def enable_score_maps(self) -> None:
        """Keep D's coarse scores of every (frame, object) in `score_maps` (the runner saves them)."""
        if self.score_maps is None:
            self.score_maps = {}

    def disable_score_maps(self) -> None:
        self.score_maps = None

    def preload(self, sequence: Sequence | None) -> None:
        """Read every frame of `sequence` and put it on the device, as frtm-vos's run_dataset does
        (`sequence.preload(device)`) before timing a sequence; None frees them."""
        self.preloaded = {} if sequence is None else {
            frame: self._frame_input(sequence, frame) for frame in sequence.frames}

    def _frame_input(self, sequence: Sequence, frame: str) -> tuple[np.ndarray, torch.Tensor]:
        """The frame at the size the networks run at, as an RGB array and as a uint8 tensor on the device."""
        if frame in self.preloaded:
            return self.preloaded[frame]
        image = read_frame_checked(sequence, frame)
        height, width = sequence.size
        size = tuple(self.settings.input_size) if self.settings.input_size else (height, width)
        if size != (height, width):
            image = cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR)
        return image, torch.from_numpy(np.array(image, copy=True)).to(self.device).permute(2, 0, 1)[None]

    def describe(self) -> dict:
        """What the timing record stores about this run."""
        return {"settings": asdict(self.settings), "device": str(self.device),
                "backbone_weights": self.backbone.weights_record()}

    # --- per-object initialisation ----------------------------------------------------------------
    def _augmented_features(self, features: dict[int, torch.Tensor], image: np.ndarray, mask: np.ndarray,
                            seed: int):
        """The K first-frame samples' pyramids and labels; sample 0 is the frame itself, whose pyramid
        `features` already is (no second backbone pass)."""
        samples = augment_first_frame(image, mask, self.settings.augmented_samples, seed)
        pyramids = [features] + [self.backbone(image_to_tensor(s.image, self.device)) for s in samples[1:]]
        labels = torch.from_numpy(np.stack([s.mask for s in samples])).float().to(self.device)
        return pyramids, labels

    def _initialise_target_model(self, tracker: ObjectTracker, frame_features: dict[int, torch.Tensor],
                                 image: np.ndarray, mask: np.ndarray, seed: int) -> None:
        s = self.settings
        pyramids, labels = self._augmented_features(frame_features, image, mask, seed)
        features = torch.cat([p[16] for p in pyramids])
        weights = torch.from_numpy(initial_sample_weights(len(pyramids))).float().to(self.device)
        model = TargetModel(features.shape[1], s.target_model(), seed=seed, device=self.device)
        model.initialise(features, labels, weights)
        tracker.target_model = model
        if s.update:
            # the released Memory.update_sample_weights (the same rule as LWL's released tracker: "released")
            memory = SampleMemory(s.memory_capacity, s.memory_learning_rate, rule="released")
            projected = model.project(features)
            memory.initialise([(projected[k], labels[k]) for k in range(len(labels))], weights.tolist())
            tracker.memory = memory
            self._update(tracker)  # the released code runs one update pass on the initial memory

    def _initialise_base_net(self, tracker: ObjectTracker, features: dict[int, torch.Tensor], image: np.ndarray,
                             mask: np.ndarray, seed: int) -> None:
        s = self.settings
        head = self.head
        mask_t = torch.from_numpy(mask).float().to(self.device)[None]
        if s.fine_tune_iterations > 0:
            head = copy.deepcopy(self.head)
            pyramids, labels = self._augmented_features(features, image, mask, seed)
            fine_tune(head, features, mask_t, pyramids, labels, s, seed)
            tracker.head = head
        with torch.no_grad():
            tracker.encoding = head.target_encoder.encode(features[16], mask_t)

    # --- tracking ---------------------------------------------------------------------------------
    def _update(self, tracker: ObjectTracker) -> None:
        memory = tracker.memory
        weights = memory.filled_weights().float().to(self.device)
        tracker.target_model.update(memory.stacked(0), memory.stacked(1), weights)

    def _remember(self, frame: str, trackers: list[ObjectTracker], merged: torch.Tensor) -> None:
        """Memory and updates of the objects tracked in this frame (released Discriminator.update): the
        merged row of each goes into its memory with the frame's projected features, unless it has fewer
        than 10 pixels > 0.5 (then neither the insert nor the optimisation happens); D is optimised on
        every `update_interval`-th tracked frame."""
        for index, tracker in enumerate(trackers):
            tracker.tracked_frames += 1  # counts every tracked frame (released frame_num)
            label = self._memory_label(frame, tracker.object_id, merged[index])
            if not enough_foreground(label):
                continue
            tracker.memory.add(self._memory_sample(tracker, label))
            if tracker.tracked_frames % self.settings.update_interval == 0:
                self._update(tracker)

    def _memory_sample(self, tracker: ObjectTracker, label: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A tracked frame's memory sample: its projected features and its label (the interactive tracker
        adds a per-pixel weight, methods.frtm.interactive)."""
        return tracker.projected[0], label

    def _memory_label(self, frame: str, object_id: int, soft_mask: torch.Tensor) -> torch.Tensor:
        """The label a tracked frame adds to an object's memory: its merged row (`merge_frame`, released
        Tracker.track). benchmarks/frtm_update_diagnosis.py overrides this to test the update with other labels."""
        return soft_mask

    def _predict(self, trackers: list[ObjectTracker], features: dict[int, torch.Tensor],
                 size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-object probabilities (N, H, W) and coarse scores (N, 1, h, w)."""
        with torch.no_grad():
            if self.settings.head == "base_net":
                probabilities, scores = [], []
                for tracker in trackers:
                    head = tracker.head or self.head
                    score = head.target_encoder.scores(features[16], tracker.encoding)
                    probabilities.append(torch.sigmoid(head(features, score, size))[:, 0])
                    scores.append(score)
                return torch.cat(probabilities), torch.cat(scores)
            # w1 * x once per object and frame: the scores and the memory sample both use it
            for tracker in trackers:
                tracker.projected = tracker.target_model.project(features[16])
            scores = torch.cat([t.target_model.scores_from_projection(t.projected) for t in trackers])
            return torch.sigmoid(self.head(features, scores, size))[:, 0], scores

    def run_sequence(self, sequence: Sequence) -> Iterator[tuple[str, np.ndarray]]:
        s = self.settings
        given = given_masks(sequence)
        single_object = len({i for masks in given.values() for i in masks}) == 1  # released: len(obj_ids) == 1
        height, width = sequence.size
        size = tuple(s.input_size) if s.input_size else (height, width)  # where the networks run
        trackers: list[ObjectTracker] = []
        for frame in sequence.frames:
            image, pixels = self._frame_input(sequence, frame)
            with torch.no_grad():
                features = self.backbone(pixels.float())
            given_here = sorted(given.get(frame, {}).items())
            for _, mask in given_here:
                check_mask_size(sequence, frame, mask)
            new_objects = {object_id: resize_mask(mask, size) for object_id, mask in given_here}
            if trackers:
                probabilities, scores = self._predict(trackers, features, size)
                new_masks = [torch.from_numpy(m).to(probabilities) for m in new_objects.values()]
                merged = merge_frame(probabilities, new_masks)
                native_masks = [torch.from_numpy(m).to(probabilities) for _, m in given_here]
                indices = label_indices(probabilities, merged, native_masks, (height, width), single_object)
                ids = torch.tensor([0] + [t.object_id for t in trackers] + list(new_objects), device=indices.device)
                labels = ids[indices].to(torch.uint8)
                if not self.labels_on_device:
                    labels = labels.cpu().numpy()
                if self.score_maps is not None:
                    for tracker, score in zip(trackers, scores, strict=True):
                        # kept on the device: copying to the CPU here would synchronise a GPU inside the timed loop
                        self.score_maps[(frame, tracker.object_id)] = score[0].detach().clone()
                if s.update and s.head != "base_net":
                    self._remember(frame, trackers, merged)
            else:
                labels = np.zeros((height, width), np.uint8)
                for object_id, mask in given_here:
                    labels[mask] = object_id
            for object_id, mask in new_objects.items():
                if not mask.any():
                    raise ValueError(f"{sequence.mask_path(frame)}: object {object_id} vanishes when the frame is "
                                     f"resized to input_size {list(size)}; use a larger input_size")
                tracker = ObjectTracker(object_id)
                seed = s.seed  # seeded per object as the released code (torch and numpy seeded with 0)
                if s.head == "base_net":
                    self._initialise_base_net(tracker, features, image, mask, seed)
                else:
                    self._initialise_target_model(tracker, features, image, mask, seed)
                trackers.append(tracker)
            if self.device.type == "cuda" and not self.labels_on_device:
                torch.cuda.synchronize(self.device)
            yield frame, labels


def merge_frame(probabilities: torch.Tensor, new_masks: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The released Tracker.track's merge: the tracked objects' probabilities (N, H, W) and the masks
    (H, W) of objects given in this frame -> merged rows (N + M, H, W), one per object in that order.

    The tracked objects' probabilities are multiplied by 1 - each new mask, the new objects enter with
    their mask, and all go through merge_frtm (softmax over the odds, each row kept on its argmax region).
    Row i is what object i's target model stores as this frame's label."""
    rows = probabilities
    for mask in new_masks or []:
        rows = rows * (1 - mask.to(rows.dtype))
    rows = torch.cat([rows, *[m.to(rows.dtype)[None] for m in new_masks or []]])
    _, soft = merge_frtm(rows)
    return soft


def label_indices(probabilities: torch.Tensor, merged: torch.Tensor, native_masks: list[torch.Tensor],
                  native_size: tuple[int, int], single_object: bool) -> torch.Tensor:
    """A frame's label image (H, W) of merged-row indices at its native size: from the merged rows where the
    networks ran at that size, else from the tracked objects' probabilities upsampled and merged again with
    the masks (native size) of the objects given in the frame."""
    if tuple(probabilities.shape[-2:]) == tuple(native_size):
        return frame_labels(merged, single_object)
    native = F.interpolate(probabilities[None], size=native_size, mode="bilinear", align_corners=False)[0]
    return frame_labels(merge_frame(native, native_masks), single_object)


def frame_labels(merged: torch.Tensor, single_object: bool) -> torch.Tensor:
    """The label image (H, W) int64 of indices 0..N (0 background, k the k-th merged row) as the released
    run_sequence makes it from the merged rows: merged > 0.5 for a one-object sequence; otherwise the
    argmax of a SECOND merge of the already merged rows, so a pixel whose winning row is below ~0.5 (common
    with three or more classes) becomes background."""
    if single_object:
        return (merged[0] > 0.5).long()
    labels, _ = merge_frtm(merged)
    return labels


def enough_foreground(label: torch.Tensor) -> bool:
    """Whether a memory label has at least 10 pixels > 0.5; below, the released update returns before
    inserting the sample and before optimising."""
    return int((label > 0.5).sum()) >= MIN_FOREGROUND_PIXELS


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A boolean mask at another size (area interpolation, then > 0.5)."""
    if mask.shape == size:
        return mask
    return cv2.resize(mask.astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA) > 0.5


def fine_tune(head: torch.nn.Module, reference: dict[int, torch.Tensor], reference_mask: torch.Tensor,
              pyramids: list[dict[int, torch.Tensor]], labels: torch.Tensor, settings: FRTMSettings,
              seed: int) -> None:
    """Base net + F-T (Table 1): fine-tune the target encoder and R on the augmented first frame (Adam,
    `fine_tune_iterations` iterations of batch `fine_tune_batch`), the backbone frozen."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(head.parameters(), lr=settings.fine_tune_learning_rate)
    head.train()
    for module in head.modules():  # BatchNorm keeps its offline statistics: a batch of one frame's copies
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):  # would overwrite them
            module.eval()
    size = labels.shape[-2:]
    for _ in range(settings.fine_tune_iterations):
        batch = torch.randint(len(pyramids), (settings.fine_tune_batch,), generator=generator).tolist()
        encoding = head.target_encoder.encode(reference[16], reference_mask)
        loss = 0.0
        for k in batch:
            score = head.target_encoder.scores(pyramids[k][16], encoding)
            logits = head(pyramids[k], score, size)[:, 0]
            loss = loss + F.binary_cross_entropy_with_logits(logits, labels[k : k + 1])
        optimiser.zero_grad()
        (loss / len(batch)).backward()
        optimiser.step()
    head.eval()
