"""LWL inference (paper §3.5; notes §2.4): per object a search region, a few-shot-learned target model and a
sample memory; the decoder's logits pasted back into the frame; objects merged by soft aggregation.

Per frame, for every tracked object: crop the region around its previous estimate, extract features,
predict the mask encoding T_tau(x), decode it into logits at the crop size and paste them into the frame
(-100 outside). The objects' logits are merged (RGMP, methods.core.merging.merge_lwl). Each object then
adds (its crop's features, E and W of the merged probability map cropped to the same region) to its memory
and, every `update_interval` tracked frames, runs `update_iterations` steepest-descent steps from its
current tau over every stored sample; its next region comes from the merged probability map.

An object given in a frame gets its target model there: tau = A(first crop, mask) with `init_iterations`
steps from zero, its mask as the only memory sample. Box initialisation (§3.7) first turns the mask's
bounding box into a mask with the box encoder and uses that instead (the output of that frame then shows
the box-derived mask, not the annotation).
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
from methods.lwl.crops import Box, Region, box_from_probability, box_mask, crop, paste, search_region
from methods.lwl.networks import load_network
from methods.lwl.settings import LWLSettings
from vos_datasets.download import sha256_of
from vos_datasets.sequence import Sequence


class ObjectState:
    """One object's target model, memory and search region."""

    def __init__(self, object_id: int, box: Box) -> None:
        self.object_id = object_id
        self.box = box
        self.tau: torch.Tensor | None = None
        self.memory: SampleMemory | None = None
        self.region: Region | None = None
        self.features: torch.Tensor | None = None  # the current crop's target-model features
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
    def _crop_features(self, image: np.ndarray, region: Region):
        pyramid, features = self.net.features(image_to_tensor(crop(image, region), self.device))
        return pyramid, features

    def _mask_tensor(self, mask: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(mask.astype(np.float32)).to(self.device)[None]

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

    def _new_object(self, object_id: int, image: np.ndarray, mask: np.ndarray) -> tuple[ObjectState, np.ndarray]:
        """Initialise an object given by its mask; returns its state and the mask used (box-init: predicted)."""
        s = self.settings
        crop_size = tuple(s.crop_size)
        if s.box_init:
            mask = box_mask(mask)
        box = box_from_probability(mask.astype(np.float32))
        state = ObjectState(object_id, box)
        region = search_region(box, mask.shape, crop_size, s.search_area_scale)
        pyramid, features = self._crop_features(image, region)
        label = self._mask_tensor(crop(mask.astype(np.float32), region, nearest=True))
        if s.box_init:
            logits = self.net.box_mask_logits(pyramid, features, label[None], crop_size)[0]
            label = torch.sigmoid(logits)
            predicted = paste(logits[0].cpu().numpy(), region, mask.shape) > 0
            mask = predicted if predicted.any() else mask  # nothing found: the box itself is the first mask
            state.box = box_from_probability(mask.astype(np.float32))
        # the released tracker's weights (methods.core.memory, rule "released"): the first frame is protected
        # exactly when it has a floor
        state.memory = SampleMemory(s.memory_capacity, s.memory_learning_rate, rule="released",
                                    protect_first=s.first_weight_floor is not None,
                                    first_weight_floor=s.first_weight_floor, lower_init_weight=s.lower_init_weight)
        state.memory.initialise([self._sample(features[0], label)], [1.0])
        self._learn(state, s.init_iterations)
        return state, mask

    # --- the sequence ------------------------------------------------------------------------------
    @torch.no_grad()
    def run_sequence(self, sequence: Sequence) -> Iterator[tuple[str, np.ndarray]]:
        s = self.settings
        given = given_masks(sequence)
        height, width = sequence.size
        crop_size = tuple(s.crop_size)
        states: list[ObjectState] = []
        for frame in sequence.frames:
            image = read_frame_checked(sequence, frame)
            labels = np.zeros((height, width), np.uint8)
            probabilities = None
            if states:
                logits = []
                for state in states:
                    state.region = search_region(state.box, (height, width), crop_size, s.search_area_scale)
                    pyramid, state.features = self._crop_features(image, state.region)
                    encoding = self.net.learner.predict(state.tau, state.features)
                    crop_logits = self.net.segment(pyramid, encoding, crop_size)[0, 0]
                    logits.append(paste(crop_logits.cpu().numpy(), state.region, (height, width)))
                merged, probs = merge_lwl(torch.from_numpy(np.stack(logits)))
                ids = torch.tensor([0] + [st.object_id for st in states])
                labels = ids[merged].to(torch.uint8).numpy()
                probabilities = probs[1:].numpy()
            new_states = []
            for object_id, mask in sorted(given.get(frame, {}).items()):
                check_mask_size(sequence, frame, mask)
                state, used = self._new_object(object_id, image, mask)
                labels[used] = object_id
                if probabilities is not None:  # the given object enters the merge as certain (+-100 logits)
                    probabilities = probabilities * (1 - used)
                new_states.append(state)
            if probabilities is not None:
                for index, state in enumerate(states):
                    self._track(state, probabilities[index])
            states += new_states
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            yield frame, labels

    def _track(self, state: ObjectState, probability: np.ndarray) -> None:
        s = self.settings
        state.tracked_frames += 1
        label = self._mask_tensor(crop(probability, state.region))
        state.memory.add(self._sample(state.features[0], label))
        if s.update_iterations and state.tracked_frames % s.update_interval == 0:
            self._learn(state, s.update_iterations)
        state.box = box_from_probability(probability, state.box, s.min_box_mass, tuple(s.box_scale_change))

