"""LWL as an interactive method (the DAVIS interactive track: interactive.session calls `start(sequence)` once
per sample, then `interact(frame_index, scribble_labels) -> masks` on the frame the user, or the robot,
scribbled on, up to 8 times). The interactive FRTM (methods/frtm/interactive.py) does the same with its own
target model; what differs here:

1. Every object with a positive label on frame t (its scribble, or from the second interaction on the masks
   this tracker gave t before, where the scribbles do not contradict them: methods.core.scribbles) gets a
   training sample from t: the crop that run_sequence takes around a given mask, here around the box of the
   object's labelled pixels (an object with a model and only negatives on t, a corrected false positive: the
   search region it was estimated in on t); E and W of the label as the label encoder and weight predictor give them, W
   multiplied by the loss weights (0: unlabelled) averaged onto the feature grid, so that unlabelled pixels
   carry no loss. E is shown the label filled from the nearest labelled pixel: it was trained on masks, and
   on a bare scribble raster it encodes next to nothing (tests/test_lwl_interactive.py). Setting
   `unlabelled_pixels: nearest_label` trains on that filled label as on a dense one instead. A new sample of t
   replaces t's earlier one.
2. tau is learned with N_init steepest-descent steps over the samples of every frame interacted so far (from
   the object's current tau after the first interaction), which are protected in its memory (the released
   rule's first-frame floor, where set, covers them together).
3. Frame t's logits are the decoder's, with every scribbled pixel set to +-100 as a given mask enters the
   merge; the objects' search regions follow the merged map, and the tracker runs forwards and backwards up
   to the nearest other interacted frames as the interactive FRTM, as run_sequence tracks.

LWL's backbone runs on each object's search region, which depends on the estimate of the frame before, so
unlike the interactive FRTM's its features are not kept across interactions (only the decoded frames are).
A "scribble" labelling every pixel of frame 0 and propagated forwards gives exactly run_sequence's masks
(tests/test_lwl_interactive.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from methods.core.backbones import image_to_tensor
from methods.core.memory import SampleMemory
from methods.core.merging import merge_lwl
from methods.core.scribbles import UNLABELLED, checked_scribbles, object_targets, propagation_ranges
from methods.lwl.crops import Target, crop_initial, initial_sample, mask_box
from methods.lwl.settings import InteractiveLWLSettings, LWLSettings
from methods.lwl.tracker import LWL, ObjectState


@dataclass
class Annotation:
    """One interacted frame's training sample of one object: its crop's features, E(y), W(y) x the loss
    weights pooled to the feature grid, and the search region it was cropped from."""

    frame: int
    sample: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    target: Target
    feature_size: tuple[int, int]


class InteractiveLWL(LWL):
    name = "lwl"

    def __init__(self, **settings) -> None:
        interactive = InteractiveLWLSettings.from_dict(settings)
        own = {f.name for f in fields(LWLSettings)}
        super().__init__(**{key: value for key, value in settings.items() if key in own})
        self.settings = interactive
        self.sequence = None

    # --- the protocol ----------------------------------------------------------------------------------
    def start(self, sequence) -> None:
        """A new sample: `sequence` has name, frames, size (height, width), num_objects and read_image(index)."""
        self.sequence = sequence
        self.masks = np.zeros((len(sequence.frames), *sequence.size), np.uint8)
        self.interacted: list[int] = []
        self.annotations: dict[int, list[Annotation]] = {}
        self.states: dict[int, ObjectState] = {}  # each object's model and memory after the last interaction
        self.estimates: dict[int, dict[int, Target]] = {}  # frame -> object -> its search region there
        self.frames: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def interact(self, frame_index: int, scribble_labels: np.ndarray) -> np.ndarray:
        scribbles = checked_scribbles("lwl", self.sequence, frame_index, scribble_labels)
        previous = self.masks[frame_index].astype(np.int64) if self.interacted else None
        given: dict[int, torch.Tensor] = {}  # object -> its +-100 logits where scribbled, NaN elsewhere
        for object_id in range(1, self.sequence.num_objects + 1):
            if object_id not in self.states and not (scribbles == object_id).any():
                continue
            label, weight = object_targets(scribbles, object_id, scribbles.shape, self.settings, previous)
            if not weight.any() or (object_id not in self.states and not (label * weight).any()):
                continue  # nothing labelled, or no model and nothing of the object to crop around
            self._annotate(object_id, frame_index, label, weight)
            scribbled = torch.from_numpy(weight == 1)
            given[object_id] = torch.where(scribbled, (torch.from_numpy(label) - 0.5) * 200.0, torch.nan)
        forwards, backwards = propagation_ranges(self.interacted, frame_index, len(self.sequence.frames))
        if frame_index not in self.interacted:
            self.interacted.append(frame_index)
        self._segment_interacted(frame_index, given, scribbles)
        self._propagate(forwards)
        self._propagate(backwards)
        return self.masks.copy()

    def _frame(self, index: int) -> torch.Tensor:
        if index not in self.frames:
            image = np.asarray(self.sequence.read_image(index))
            if image.shape[:2] != self.masks.shape[1:]:
                raise ValueError(f"{self.sequence.frames[index]}: frame is {image.shape[1]}x{image.shape[0]}, "
                                 f"the sequence {self.masks.shape[2]}x{self.masks.shape[1]}; all frames of a "
                                 "video must have one size")
            self.frames[index] = image_to_tensor(image, self.device)
        return self.frames[index]

    # --- learning --------------------------------------------------------------------------------------
    def _annotate(self, object_id: int, index: int, label: np.ndarray, weight: np.ndarray) -> None:
        """The frame's sample of the object (cropped as run_sequence crops a given mask, around the box of its
        labelled pixels), then tau learned on every interacted frame's samples and the memory rebuilt."""
        s = self.settings
        frame = self._frame(index)
        size = tuple(frame.shape[-2:])
        if (label * weight).any():
            target = Target.from_box(mask_box(label * (weight > 0)), tuple(s.crop_size), s.search_area_scale)
        else:  # only negatives (a correction of a false positive): cropped where the object was estimated
            target = copy.deepcopy(self.estimates.get(index, {}).get(object_id, self.states[object_id].target))
        sample = initial_sample(size, target)
        _, features = self.net.features(crop_initial(frame, sample))
        if not (weight > 0).all():
            label = nearest_filled(label, weight > 0)  # E sees a mask-like raster, not bare scribbles
            if s.unlabelled_pixels == "nearest_label":
                weight = np.ones_like(weight)
        label_crop = crop_initial(torch.from_numpy(label).to(self.device)[None, None], sample, mask=True)[0]
        encoded = self._sample(features[0], label_crop)
        if not (weight == 1).all():  # W x the loss weights on the feature grid: unlabelled pixels carry none
            weight_crop = crop_initial(torch.from_numpy(weight).to(self.device)[None, None], sample, mask=True)
            pooled = F.adaptive_avg_pool2d(weight_crop, features.shape[-2:])[0]
            encoded = (encoded[0], encoded[1], encoded[2] * pooled)
        annotation = Annotation(index, encoded, target, tuple(features.shape[-2:]))
        kept = [a for a in self.annotations.get(object_id, []) if a.frame != index]
        self.annotations[object_id] = annotations = [*kept, annotation]
        old = self.states.get(object_id)
        state = ObjectState(object_id, copy.deepcopy(target))
        state.feature_size = annotation.feature_size
        count = len(annotations)
        state.memory = SampleMemory(count + s.memory_capacity - 1, s.memory_learning_rate, rule="released",
                                    protect_first=s.first_weight_floor is not None,
                                    first_weight_floor=s.first_weight_floor, lower_init_weight=s.lower_init_weight)
        state.memory.initialise([a.sample for a in annotations], [1.0] * count, protected=count)
        state.tau = None if old is None else old.tau
        self._learn(state, s.init_iterations)
        self.states[object_id] = state

    # --- segmenting ------------------------------------------------------------------------------------
    def _segment_interacted(self, index: int, given: dict[int, torch.Tensor], scribbles: np.ndarray) -> None:
        """The interacted frame: each object's logits (scribbled pixels +-100), merged; the search regions
        follow the merged map."""
        if self.states:
            frame = self._frame(index)
            logits = []
            for object_id, state in sorted(self.states.items()):
                if object_id in given and not given[object_id].isnan().any():
                    logits.append(given[object_id])  # a dense label, exactly as a given mask
                    continue
                if object_id not in given:  # an object not labelled here: from its estimate on this frame
                    state.target = copy.deepcopy(self.estimates.get(index, {}).get(object_id, state.target))
                own = self._segment(state, frame)
                logits.append(torch.where(given[object_id].isnan(), own, given[object_id])
                              if object_id in given else own)
            merged, probabilities = merge_lwl(torch.stack(logits))
            ids = torch.tensor([0] + sorted(self.states))
            self.masks[index] = ids[merged].to(torch.uint8).numpy()
            for position, (_, state) in enumerate(sorted(self.states.items())):
                state.target.follow(probabilities[position + 1], self.settings.min_box_mass,
                                    tuple(self.settings.box_scale_change))
        scribbled = scribbles != UNLABELLED
        self.masks[index][scribbled] = scribbles[scribbled]

    def _propagate(self, frames: range) -> None:
        """Track through `frames` in their order from a copy of the objects' models, memories and estimates,
        as run_sequence tracks; each frame's search regions are kept for a later interaction there."""
        if not self.states or not len(frames):
            return
        s = self.settings
        ordered = sorted(self.states)
        states = [copy.deepcopy(self.states[k]) for k in ordered]
        ids = torch.tensor([0] + ordered)
        for index in frames:
            frame = self._frame(index)
            self.estimates[index] = {k: copy.deepcopy(state.target) for k, state in zip(ordered, states, strict=True)}
            merged, probabilities = merge_lwl(torch.stack([self._segment(state, frame) for state in states]))
            self.masks[index] = ids[merged].to(torch.uint8).numpy()
            for position, state in enumerate(states):
                self._track(state, probabilities[position + 1])
            for position, state in enumerate(states):
                state.target.follow(probabilities[position + 1], s.min_box_mass, tuple(s.box_scale_change))


def nearest_filled(label: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """The label with every unlabelled pixel given the label of the nearest labelled one."""
    _, (rows, columns) = ndimage.distance_transform_edt(~labelled, return_indices=True)
    return label[rows, columns]
