"""FRTM as an interactive method (the DAVIS interactive track: interactive.session calls `start(sequence)` once
per sample, then `interact(frame_index, scribble_labels) -> masks` on the frame the user, or the robot,
scribbled on, up to 8 times).

Per interaction, on frame t:
1. Every object with a scribble on t, or with a target model already, gets a training sample from t: its
   label and per-pixel loss weights from the scribbles (and, from the second interaction on, the masks this
   tracker gave t before, where the scribbles do not contradict them), methods.core.scribbles. A fully
   labelled frame (a dense mask) gives the K augmented samples of a first frame, exactly as run_sequence; a
   sparse one gives the frame itself (cutting out and pasting a scribble as an object would teach nothing).
   A new sample of t replaces t's earlier one.
2. Each such object's D is learned (N_GN Gauss-Newton steps on w1 and w2, from its current weights after the
   first interaction) on the samples of every frame interacted so far, each frame's samples weighing alike;
   these samples are protected in its memory (never replaced), which holds them with D's projection and,
   with `update`, gets the released update pass.
3. Frame t is segmented by the new D and R, the scribbled pixels keeping their scribble's label; the
   tracker then runs forwards from t up to the nearest other interacted frame after t (or the end), and
   backwards from t down to the nearest one before t (or the start), each direction from its own copy of the
   objects' models and memories, tracking as run_sequence tracks (merge, memory, updates every t_s frames).
   The masks of frames beyond those keep what earlier interactions gave them.

The backbone's features of every frame are computed once per sample (`start`) and kept, so a round costs the
target models' work and R only. A "scribble" labelling every pixel of frame 0 and propagated forwards gives
exactly run_sequence's masks while the memory does not fill (tests/test_frtm_interactive.py); with a full
memory the protected samples differ by design (run_sequence replaces the first frame's once they are the
lightest).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields

import cv2
import numpy as np
import torch

from methods.core.augmentation import augment_first_frame, initial_sample_weights
from methods.core.backbones import image_to_tensor
from methods.core.memory import SampleMemory
from methods.core.scribbles import UNLABELLED, checked_scribbles, object_targets, propagation_ranges
from methods.frtm.settings import FRTMSettings, InteractiveFRTMSettings
from methods.frtm.target_model import TargetModel
from methods.frtm.tracker import FRTM, ObjectTracker, label_indices, merge_frame


@dataclass
class Annotation:
    """The training samples one interacted frame gives one object (K augmented copies of a dense label, or
    the frame itself): stride-16 features, labels, per-pixel loss weights, and the samples' weights."""

    frame: int
    features: torch.Tensor  # (K, C, h, w)
    labels: torch.Tensor  # (K, H, W) at the networks' size
    validity: torch.Tensor  # (K, H, W)
    weights: np.ndarray  # (K,), summing to one


class InteractiveFRTM(FRTM):
    name = "frtm"

    def __init__(self, **settings) -> None:
        interactive = InteractiveFRTMSettings.from_dict(settings)
        own = {f.name for f in fields(FRTMSettings)}
        super().__init__(**{key: value for key, value in settings.items() if key in own})
        self.settings = interactive
        self.sequence = None

    # --- the protocol ----------------------------------------------------------------------------------
    def start(self, sequence) -> None:
        """A new sample: `sequence` has name, frames, size (height, width), num_objects and read_image(index)."""
        self.sequence = sequence
        height, width = sequence.size
        self.size = tuple(self.settings.input_size) if self.settings.input_size else (height, width)
        self.masks = np.zeros((len(sequence.frames), height, width), np.uint8)
        self.interacted: list[int] = []
        self.annotations: dict[int, list[Annotation]] = {}
        self.trackers: dict[int, ObjectTracker] = {}
        self.inputs: dict[int, tuple[np.ndarray, dict[int, torch.Tensor]]] = {}  # per frame: image, pyramid

    def interact(self, frame_index: int, scribble_labels: np.ndarray) -> np.ndarray:
        scribbles = checked_scribbles("frtm", self.sequence, frame_index, scribble_labels)
        previous = self.masks[frame_index].astype(np.int64) if self.interacted else None
        seed = self.settings.seed + len(self.interacted)
        for object_id in range(1, self.sequence.num_objects + 1):
            if object_id not in self.trackers and not (scribbles == object_id).any():
                continue  # no model yet and nothing that shows the object
            label, weight = object_targets(scribbles, object_id, self.size, self.settings, previous)
            if not weight.any():
                continue
            annotation = self._annotation(frame_index, label, weight, seed)
            kept = [a for a in self.annotations.get(object_id, []) if a.frame != frame_index]
            self.annotations[object_id] = [*kept, annotation]
            self._train(object_id)
        forwards, backwards = propagation_ranges(self.interacted, frame_index, len(self.sequence.frames))
        if frame_index not in self.interacted:
            self.interacted.append(frame_index)
        self._segment_interacted(frame_index, scribbles)
        self._propagate(forwards)
        self._propagate(backwards)
        return self.masks.copy()

    # --- frames ----------------------------------------------------------------------------------------
    def _frame(self, index: int) -> tuple[np.ndarray, dict[int, torch.Tensor]]:
        """The frame at the networks' size (RGB) and its backbone pyramid, computed once per sample."""
        if index not in self.inputs:
            image = np.asarray(self.sequence.read_image(index))
            if image.shape[:2] != self.masks.shape[1:]:
                raise ValueError(f"{self.sequence.frames[index]}: frame is {image.shape[1]}x{image.shape[0]}, "
                                 f"the sequence {self.masks.shape[2]}x{self.masks.shape[1]}; all frames of a "
                                 "video must have one size")
            if image.shape[:2] != self.size:
                image = cv2.resize(image, self.size[::-1], interpolation=cv2.INTER_LINEAR)
            pixels = torch.from_numpy(np.array(image, copy=True)).to(self.device).permute(2, 0, 1)[None]
            with torch.no_grad():
                self.inputs[index] = image, self.backbone(pixels.float())
        return self.inputs[index]

    # --- learning --------------------------------------------------------------------------------------
    def _annotation(self, index: int, label: np.ndarray, weight: np.ndarray, seed: int) -> Annotation:
        image, pyramid = self._frame(index)
        mask = label > 0.5
        if (weight == 1).all() and mask.any():  # a dense label: the first frame's K augmented samples
            samples = augment_first_frame(image, mask, self.settings.augmented_samples, seed)
            with torch.no_grad():
                features = torch.cat([pyramid[16]] + [self.backbone(image_to_tensor(s.image, self.device))[16]
                                                      for s in samples[1:]])
            labels = torch.from_numpy(np.stack([s.mask for s in samples])).float().to(self.device)
            return Annotation(index, features, labels, torch.ones_like(labels),
                              initial_sample_weights(len(samples)))
        labels = torch.from_numpy(label).float().to(self.device)[None]
        validity = torch.from_numpy(weight).float().to(self.device)[None]
        return Annotation(index, pyramid[16], labels, validity, np.ones(1))

    def _train(self, object_id: int) -> None:
        """Learn the object's D on every interacted frame's samples (from its current weights when it has
        one) and rebuild its memory from them, protected, as run_sequence's initialisation does."""
        s = self.settings
        annotations = self.annotations[object_id]
        features = torch.cat([a.features for a in annotations])
        labels = torch.cat([a.labels for a in annotations])
        validity = torch.cat([a.validity for a in annotations])
        weights = torch.from_numpy(np.concatenate([a.weights for a in annotations])).float().to(self.device)
        old = self.trackers.get(object_id)
        start = (old.target_model.w1, old.target_model.w2) if old is not None else None
        model = TargetModel(features.shape[1], s.target_model(), seed=s.seed, device=self.device,
                            initial_weights=start)
        model.initialise(features, labels, weights, validity)
        tracker = ObjectTracker(object_id)
        tracker.target_model = model
        if s.update:
            count = len(labels)
            # the protected samples, and as many free slots as run_sequence has after its first frame's
            capacity = count + max(s.memory_capacity - s.augmented_samples, 1)
            tracker.memory = SampleMemory(capacity, s.memory_learning_rate, rule="released")
            projected = model.project(features)
            tracker.memory.initialise([(projected[k], labels[k], validity[k]) for k in range(count)],
                                      weights.tolist(), protected=count)
            self._update(tracker)  # the released update pass on the initial memory, as run_sequence
        self.trackers[object_id] = tracker

    def _update(self, tracker: ObjectTracker) -> None:
        memory = tracker.memory
        weights = memory.filled_weights().float().to(self.device)
        tracker.target_model.update(memory.stacked(0), memory.stacked(1), weights, memory.stacked(2))

    def _memory_sample(self, tracker: ObjectTracker, label: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tracker.projected[0], label, torch.ones_like(label)  # a tracked frame: every pixel labelled

    # --- segmenting ------------------------------------------------------------------------------------
    def _labels(self, trackers: list[ObjectTracker], index: int) -> torch.Tensor:
        """Segment frame `index` with the objects' models: the merged rows (networks' size); the frame's
        label image (frames' size) goes into `masks`."""
        _, pyramid = self._frame(index)
        probabilities, _ = self._predict(trackers, pyramid, self.size)
        merged = merge_frame(probabilities, [])
        indices = label_indices(probabilities, merged, [], self.masks.shape[1:], self.sequence.num_objects == 1)
        ids = torch.tensor([0] + [t.object_id for t in trackers], device=indices.device)
        self.masks[index] = ids[indices].to(torch.uint8).cpu().numpy()
        return merged

    def _segment_interacted(self, index: int, scribbles: np.ndarray) -> None:
        if self.trackers:
            self._labels([self.trackers[k] for k in sorted(self.trackers)], index)
        scribbled = scribbles != UNLABELLED
        self.masks[index][scribbled] = scribbles[scribbled]

    def _propagate(self, frames: range) -> None:
        """Track through `frames` in their order from a copy of the objects' models and memories."""
        if not self.trackers or not len(frames):
            return
        trackers = [copy.deepcopy(self.trackers[k]) for k in sorted(self.trackers)]
        for index in frames:
            merged = self._labels(trackers, index)
            if self.settings.update:
                self._remember(str(index), trackers, merged)
