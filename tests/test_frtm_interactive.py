"""FRTM as an interactive method (methods/frtm/interactive.py): the equivalence with run_sequence for a dense
first-frame scribble, learning from sparse scribbles, propagation both ways, the protected memory and the
settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from methods.core.scribbles import checked_scribbles, contradicted, object_targets, propagation_ranges
from methods.core.settings import ScribbleSettings
from methods.frtm.interactive import InteractiveFRTM
from methods.frtm.settings import FRTMSettings, InteractiveFRTMSettings
from methods.frtm.tracker import FRTM
from vos_datasets.build import build_dataset

REPO = Path(__file__).resolve().parents[1]
FIXED_REFINER = REPO / "tests/regression/weights/frtm-refiner.pt"
# the ci preset's FRTM (config/presets/ci.yaml) with a shorter optimisation and updates every 2nd frame, so
# that a 4-frame cut runs the memory's update path within seconds
CI = {"backbone": "efficientnet_lite0", "device": "cpu", "input_size": [240, 432], "checkpoint": str(FIXED_REFINER),
      "augmented_samples": 5, "init_cg_iterations": [5, 10], "update_interval": 2}


@dataclasses.dataclass(frozen=True)
class FramesOnly:
    """What interactive.session gives a method (interactive.dataset.InteractiveSequence): the frames only."""

    name: str
    frames: tuple[Path, ...]
    size: tuple[int, int]
    num_objects: int
    images: object  # the vos_datasets Sequence the frames are read from

    def read_image(self, index: int) -> np.ndarray:
        return self.images.read_image(self.images.frames[index])


def cut(sequence, frames: int):
    return dataclasses.replace(sequence, frames=sequence.frames[:frames])


def frames_only(sequence) -> FramesOnly:
    objects = len(sequence.object_first_frames())
    return FramesOnly(sequence.name, tuple(sequence.image_path(f) for f in sequence.frames), sequence.size, objects,
                      sequence)


def davis2016_val(shared: Path, names: list[str], frames: int) -> list:
    """DAVIS 2016 val sequences of the shared folder, cut to their first `frames` frames."""
    dataset = build_dataset({"kind": "davis", "root": str(shared / "data/davis2016"), "split": "val", "year": "2016",
                             "sequences": names})
    return [cut(sequence, frames) for sequence in dataset]


def blackswan_with_truth(shared: Path) -> tuple:
    """blackswan's first 5 frames and its ground-truth masks."""
    sequence = davis2016_val(shared, ["blackswan"], 5)[0]
    return sequence, np.stack([sequence.read_mask(f) == 1 for f in sequence.frames])


@pytest.fixture(scope="module")
def ci_sequences(shared):
    return davis2016_val(shared, ["blackswan", "car-shadow"], 4)


def test_a_dense_first_frame_scribble_gives_exactly_the_masks_of_run_sequence(ci_sequences):
    torch.set_num_threads(1)
    for sequence in ci_sequences:
        expected = np.stack([labels for _, labels in FRTM(**CI).run_sequence(sequence)])
        method = InteractiveFRTM(**CI)
        method.start(frames_only(sequence))
        dense = sequence.read_mask(sequence.frames[0]).astype(np.int64)
        masks = method.interact(0, dense)
        assert masks.shape == expected.shape and masks.dtype == np.uint8
        assert expected[1:].any()  # the guard compares tracked objects, not empty frames
        np.testing.assert_array_equal(masks, expected, err_msg=sequence.name)


def test_scribbles_become_labels_weights_previous_masks_and_weak_negatives():
    settings = ScribbleSettings(scribble_dilation=1, previous_masks_weight=0.5, weak_negatives_box_scale=1.5,
                                weak_negatives_weight=0.1)
    scribbles = np.full((40, 40), -1)
    scribbles[20, 18:23] = 1  # a short stroke on the object
    label, weight = object_targets(scribbles, 1, (40, 40), settings)
    assert label[19:22, 18:23].all() and label[20, 17] and label[20, 23]  # widened by one pixel
    assert weight[19:22, 18:23].min() == 1 and weight[19, 17] != 1  # (a Euclidean pixel: not the corners)
    assert weight[0, 0] == pytest.approx(0.1) and label[0, 0] == 0  # a weak negative far from the stroke
    assert weight[20, 25] == 0  # inside 1.5 x the stroke's box: unlabelled
    # the previous masks: an object at rows 10-29, columns 10-29, and a false positive the scribble corrects
    previous = np.zeros((40, 40), np.int64)
    previous[10:30, 10:30] = 1
    previous[0:6, 30:40] = 1
    scribbles = np.full((40, 40), -1)
    scribbles[3, 32:38] = 0  # background drawn on the false positive
    dropped = contradicted(scribbles, previous)
    assert dropped[3, 35] and not dropped[20, 20] and not dropped[8, 35]
    label, weight = object_targets(scribbles, 1, (40, 40), settings, previous)
    assert label[20, 20] == 1 and weight[20, 20] == 0.5  # the object kept from the previous mask
    assert label[3, 35] == 0 and weight[3, 35] == 1  # the scribble
    assert weight[5, 31] == 0  # the rest of the corrected blob: not trusted, not scribbled
    # a dense "scribble" is a given mask
    dense = previous.copy()
    label, weight = object_targets(dense, 1, (20, 20), settings)
    assert (weight == 1).all() and label[10, 10] == 1 and label[19, 0] == 0


def test_a_bad_interaction_is_refused_in_one_line_naming_the_method_and_sequence():
    """The protocol's input check both interactive trackers share (methods.core.scribbles.checked_scribbles)."""
    sequence = dataclasses.make_dataclass("Sample", ["name", "frames", "size", "num_objects"])(
        "dog", ("a", "b", "c"), (4, 6), 2)
    good = np.full((4, 6), -1)
    good[0, 0], good[1, 1] = 0, 2
    assert checked_scribbles("frtm", sequence, 2, good.tolist()).shape == (4, 6)
    with pytest.raises(RuntimeError, match="lwl interactive: interact\\(\\) before start"):
        checked_scribbles("lwl", None, 0, good)
    for frame, scribbles, message in [(3, good, "frame 3 of dog, which has 3"),
                                      (0, good[:3], "scribbles of size \\(3, 6\\) on dog, whose frames are \\(4, 6\\)"),
                                      (0, good + 2 * (good == 2), "scribble labels \\[-1, 0, 4\\] on dog")]:
        with pytest.raises(ValueError, match=f"frtm interactive: {message}"):
            checked_scribbles("frtm", sequence, frame, scribbles)


def test_an_interaction_tracks_again_up_to_the_nearest_other_interacted_frames():
    assert propagation_ranges([], 4, 10) == (range(5, 10), range(3, -1, -1))
    assert propagation_ranges([1, 4, 7], 4, 10) == (range(5, 7), range(3, 1, -1))  # its own frame is not a bound


def test_settings_refuse_unknown_keys_bad_values_and_the_base_net():
    base = {"checkpoint": "head.pt"}
    assert InteractiveFRTMSettings.from_dict(base).previous_masks_weight == 0.0  # scribbles only
    with pytest.raises(ValueError, match="unknown interactive FRTM settings \\['scribble_dilatoin'\\]"):
        InteractiveFRTMSettings.from_dict({**base, "scribble_dilatoin": 3})
    with pytest.raises(ValueError, match="previous_masks_weight=2"):
        InteractiveFRTMSettings.from_dict({**base, "previous_masks_weight": 2.0})
    with pytest.raises(ValueError, match="weak_negatives_box_scale=0.5"):
        InteractiveFRTMSettings.from_dict({**base, "weak_negatives_box_scale": 0.5})
    with pytest.raises(ValueError, match="head=base_net"):
        InteractiveFRTMSettings.from_dict({**base, "head": "base_net", "update": False})
    with pytest.raises(ValueError, match="update_interval=0"):  # FRTM's own settings are checked too
        InteractiveFRTMSettings.from_dict({**base, "update_interval": 0})


def jaccard(mask: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(mask, truth).sum()
    return float(np.logical_and(mask, truth).sum() / union) if union else 1.0


def stroke(truth: np.ndarray) -> np.ndarray:
    """A robot-like first scribble (davisinteractive's robot): the skeleton of the object opened by a disc."""
    from skimage.morphology import disk, opening, skeletonize

    scribbles = np.full(truth.shape, -1, np.int64)
    scribbles[skeletonize(opening(truth, disk(10)))] = 1
    return scribbles


@pytest.fixture(scope="module")
def blackswan(shared):
    return blackswan_with_truth(shared)


def test_a_sparse_scribble_segments_the_object_in_the_frames_after_it(blackswan):
    torch.set_num_threads(1)
    sequence, truth = blackswan
    scribbles = stroke(truth[0])
    assert (scribbles == 1).sum() < 0.05 * truth[0].sum()  # a scribble, not a mask
    method = InteractiveFRTM(**CI)
    method.start(frames_only(sequence))
    masks = method.interact(0, scribbles)
    scores = [jaccard(masks[k] == 1, truth[k]) for k in range(1, 5)]
    # measured with the fixed weights: J 0.635, 0.598, 0.498, 0.528 (mean 0.565); with the unlabelled pixels
    # taken as background (every weight 1) 0.442, 0.443, 0.419, 0.426 (mean 0.433)
    assert np.mean(scores) > 0.5, scores


def test_propagation_runs_both_ways_up_to_the_nearest_interacted_frames(blackswan, monkeypatch):
    torch.set_num_threads(1)
    sequence, truth = blackswan
    method = InteractiveFRTM(**CI)
    method.start(frames_only(sequence))
    segmented = []
    labels = method._labels
    monkeypatch.setattr(method, "_labels", lambda trackers, index: segmented.append(index) or labels(trackers, index))
    masks = method.interact(2, np.where(truth[2], 1, 0))
    assert segmented == [2, 3, 4, 1, 0]  # the interacted frame, forwards, then backwards
    assert min(jaccard(masks[k] == 1, truth[k]) for k in (0, 1, 3, 4)) > 0.5
    segmented.clear()
    again = method.interact(4, np.where(truth[4], 1, 0))
    assert segmented == [4, 3]  # back to frame 2, interacted before: frames 0-2 keep their masks
    np.testing.assert_array_equal(again[:3], masks[:3])


def test_interacted_frames_stay_in_the_memory_and_features_are_computed_once(blackswan, monkeypatch):
    torch.set_num_threads(1)
    sequence, truth = blackswan
    # a memory with one free slot, where a tracked sample soon outweighs the interacted frames' (eta 0.9: each new
    # sample weighs 10 times the one before), so that unprotected they would be replaced from the third frame on
    settings = {**CI, "memory_capacity": CI["augmented_samples"], "memory_learning_rate": 0.9}
    method = InteractiveFRTM(**settings)
    method.start(frames_only(sequence))
    calls = []
    backbone = method.backbone
    monkeypatch.setattr(method, "backbone", lambda images: calls.append(images.shape) or backbone(images))
    memories = []
    remember = method._remember
    monkeypatch.setattr(method, "_remember", lambda frame, trackers, merged: (
        remember(frame, trackers, merged), memories.append(trackers[0].memory)))
    method.interact(0, stroke(truth[0]))
    method.interact(4, stroke(truth[4]))
    assert len(calls) == 5  # each frame's pyramid once in two rounds (sparse scribbles: no augmented copies)
    annotations = method.annotations[1]
    assert [a.frame for a in annotations] == [0, 4]
    last = memories[-1]  # after tracking frames 3, 2, 1 back from frame 4, one free slot
    assert len(last) == last.capacity == 3 and last.protected == 2
    for slot, annotation in enumerate(annotations):
        assert torch.equal(last.slots[slot][1], annotation.labels[0])


def test_the_interactive_variant_validates_as_its_session_builds_it_and_no_semi_supervised_row_takes_it():
    from methods.rows import load_preset, load_variants, merged_settings

    variants = load_variants()
    defaults = load_preset("ci")[1]["method_defaults"]
    settings = merged_settings({"method": "frtm", "variant": "interactive"}, variants, defaults)
    built = InteractiveFRTMSettings.from_dict({**settings, "checkpoint": str(FIXED_REFINER)})
    assert built.scribble_dilation == variants["frtm"]["interactive"]["settings"]["scribble_dilation"]
    assert built.backbone == "efficientnet_lite0" and built.input_size == [240, 432]
    with pytest.raises(ValueError, match="unknown FRTM settings"):
        FRTMSettings.from_dict({**settings, "checkpoint": str(FIXED_REFINER)})
