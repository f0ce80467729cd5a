"""LWL inference (paper §3.5; notes §2.4), as the released tracker runs it (pytracking `tracker/lwl/lwl.py`
through `evaluation/multi_object_wrapper.py`): per object a search region, a few-shot-learned target model and
a sample memory; the decoder's logits pasted back into the frame; objects merged by soft aggregation. The
search-region geometry is in methods/lwl/crops.py.

Per frame, for every tracked object: crop the region around its estimate, extract features, predict the
mask encoding T_tau(x), decode it into logits at the crop size and paste them into the frame (-100
outside). Objects given in the frame enter the same merge (RGMP, methods.core.merging.merge_lwl) with their
mask as +-100 logits, or with box initialisation (§3.7) with the logits the box encoder and decoder give on
the whole frame. Each tracked object then adds (its crop's features, E and W of the merged probability map
cropped to the same region) to its memory and runs `update_iterations` steepest-descent steps from its
current tau over every stored sample when the frame's number since its first (that one counted as 1) plus
one is a multiple of `update_interval`. Every object's next estimate comes from the merged probability map.

An object given in a frame gets its target model there: tau = A(first crop, mask) with `init_iterations`
steps from zero, its mask (box initialisation: the predicted probability) as the only memory sample; the
crop is placed from the ground-truth box in both cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import numpy as np
import torch

from methods.base import check_mask_size, given_masks, read_frame_checked
from methods.core.backbones import image_to_tensor
from methods.core.device import resolve_device
from methods.core.memory import SampleMemory
from methods.core.merging import merge_lwl
from methods.lwl.crops import (
    Patch,
    Target,
    crop,
    crop_initial,
    initial_sample,
    mask_box,
    paste,
    place_patch,
    rasterise_box,
)
from methods.lwl.networks import load_network
from methods.lwl.settings import LWLSettings
from vos_datasets.download import sha256_of
from vos_datasets.sequence import Sequence


class ObjectState:
    """One object's target model, memory and target estimate."""

    def __init__(self, object_id: int, target: Target) -> None:
        self.object_id = object_id
        self.target = target
        self.tau: torch.Tensor | None = None
        self.memory: SampleMemory | None = None
        self.patch: Patch | None = None  # the current frame's crop
        self.features: torch.Tensor | None = None  # the current crop's target-model features
        self.feature_size: tuple[int, int] | None = None  # the target model's grid on a crop
        self.tracked_frames = 0


class LWL:
    name = "lwl"

    def __init__(self, **settings) -> None:
        self.settings = LWLSettings.from_dict(settings)
        self.device = resolve_device(self.settings.device)
        self.net = load_network(self.settings.checkpoint).to(self.device)
        built = asdict(self.net.config)
        wrong = {key: built.get(key) for key, value in self.settings.network.items() if built.get(key) != value}
        if wrong:
            raise ValueError(f"{self.settings.checkpoint}: its network has {wrong}, but the variant needs "
                             f"{self.settings.network}; give a network trained with those switches")

    def describe(self) -> dict:
        return {"settings": asdict(self.settings), "network": asdict(self.net.config), "device": str(self.device),
                "checkpoint_sha256": sha256_of(self.settings.checkpoint)}  # the backbone's weights are in it

    # --- pieces ------------------------------------------------------------------------------------
    def _sample(self, features: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A memory sample: a crop's features (C, h, w) and E(y), W(y) of its mask y (1, H, W). E and W see
        the mask alone, so they are computed once here rather than on every stored mask at every update."""
        labels, weights = self.net.labels_and_weights(label[None], features.shape[-2:])
        return features, labels[0], weights[0]

    def _learn(self, state: ObjectState, iterations: int) -> None:
        memory = state.memory
        gammas = memory.filled_weights().to(self.device, torch.float32)
        state.tau = self.net.learn_encoded(state.tau, memory.stacked(0), memory.stacked(1), memory.stacked(2),
                                           gammas, iterations)

    def _new_object(self, object_id: int, frame: torch.Tensor, mask: np.ndarray) -> tuple[ObjectState, torch.Tensor]:
        """Initialise an object given by its mask (released LWL.initialize); returns its state and its logits
        for the frame's merge: the mask as +-100 or, with box initialisation, the decoder's logits."""
        s = self.settings
        size = tuple(frame.shape[-2:])
        box = mask_box(mask)
        if s.box_init:
            # the box encoder and decoder on the whole frame at its native size, from the ground-truth box
            pyramid, features = self.net.features(frame)
            box_masks = rasterise_box(box, size).to(self.device)
            logits = self.net.box_mask_logits(pyramid, features, box_masks, size)
            init_mask, logits = torch.sigmoid(logits), logits[0, 0].cpu()
        else:
            init_mask = torch.from_numpy(mask.astype(np.float32)).to(self.device)[None, None]
            logits = (torch.from_numpy(mask.astype(np.float32)) - 0.5) * 200.0
        # the search region comes from the box, also with box initialisation (not from the predicted mask)
        state = ObjectState(object_id, Target.from_box(box, tuple(s.crop_size), s.search_area_scale))
        sample = initial_sample(size, state.target)
        _, features = self.net.features(crop_initial(frame, sample))
        label = crop_initial(init_mask, sample, mask=True)[0]
        state.feature_size = tuple(features.shape[-2:])
        # the released tracker's weights (methods.core.memory, rule "released"): the first frame is protected
        # exactly when it has a floor
        state.memory = SampleMemory(s.memory_capacity, s.memory_learning_rate, rule="released",
                                    protect_first=s.first_weight_floor is not None,
                                    first_weight_floor=s.first_weight_floor, lower_init_weight=s.lower_init_weight)
        state.memory.initialise([self._sample(features[0], label)], [1.0])
        self._learn(state, s.init_iterations)
        return state, logits

    def _segment(self, state: ObjectState, frame: torch.Tensor) -> torch.Tensor:
        """The object's logits in the frame: its search region cropped, segmented and pasted back (-100 outside)."""
        s = self.settings
        height, width = frame.shape[-2:]
        target = state.target
        centre = target.centred_pos(state.feature_size, self.net.learner.filter_size)
        state.patch = place_patch((height, width), centre, target.scale * target.crop_size, tuple(s.crop_size))
        pyramid, state.features = self.net.features(crop(frame, state.patch))
        encoding = self.net.learner.predict(state.tau, state.features)
        crop_logits = self.net.segment(pyramid, encoding, tuple(s.crop_size))[0, 0]
        return paste(crop_logits.cpu(), state.patch, (height, width))

    # --- the sequence ------------------------------------------------------------------------------
    @torch.no_grad()
    def run_sequence(self, sequence: Sequence) -> Iterator[tuple[str, np.ndarray]]:
        s = self.settings
        given = given_masks(sequence)
        states: list[ObjectState] = []
        for frame_name in sequence.frames:
            frame = image_to_tensor(read_frame_checked(sequence, frame_name), self.device)
            logits = [self._segment(state, frame) for state in states]
            new_states = []
            for object_id, mask in sorted(given.get(frame_name, {}).items()):
                check_mask_size(sequence, frame_name, mask)
                state, init_logits = self._new_object(object_id, frame, mask)
                new_states.append(state)
                logits.append(init_logits)
            if not logits:  # no object yet
                yield frame_name, np.zeros(sequence.size, np.uint8)
                continue
            # every object's logits merged (released merge_results); a given mask enters as +-100
            merged, probabilities = merge_lwl(torch.stack(logits))
            ids = torch.tensor([0] + [state.object_id for state in states + new_states])
            labels = ids[merged].to(torch.uint8).numpy()
            for index, state in enumerate(states):
                self._track(state, probabilities[index + 1])
            states += new_states
            for index, state in enumerate(states):  # the next frame's estimate, new objects' too
                state.target.follow(probabilities[index + 1], s.min_box_mass, tuple(s.box_scale_change))
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            yield frame_name, labels

    def _track(self, state: ObjectState, probability: torch.Tensor) -> None:
        """The frame's sample joins the memory (its merged probability cropped as the frame was: nearest, zero
        outside) and, every `update_interval` frames counting the first, tau is updated: the released tracker
        updates after frames 4, 9, ... with an interval of 5 (the frame numbering starts at 1 there)."""
        s = self.settings
        state.tracked_frames += 1
        label = crop(probability[None, None], state.patch, mask=True)[0].to(self.device)
        state.memory.add(self._sample(state.features[0], label))
        if s.update_iterations and (state.tracked_frames + 1) % s.update_interval == 0:
            self._learn(state, s.update_iterations)
