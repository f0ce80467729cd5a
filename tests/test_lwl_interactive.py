"""LWL as an interactive method (methods/lwl/interactive.py): the equivalence with run_sequence for a dense
first-frame scribble, learning from sparse scribbles through W, propagation both ways and the settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.lwl.interactive import InteractiveLWL
from methods.lwl.settings import InteractiveLWLSettings, LWLSettings
from methods.lwl.tracker import LWL
from tests.test_frtm_interactive import (
    REPO,
    blackswan_with_truth,
    davis2016_val,
    frames_only,
    jaccard,
    stroke,
)

FIXED_LWL = REPO / "tests/regression/weights/lwl-weight-predictor.pt"
# the ci preset's LWL + W row (config/presets/ci.yaml, variant weight-predictor)
CI = {"checkpoint": str(FIXED_LWL), "device": "cpu", "crop_size": [240, 432],
      "network": {"label_encoder": True, "weight_predictor": True, "end_to_end": True}}


@pytest.fixture(scope="module")
def ci_sequences(shared):
    return davis2016_val(shared, ["blackswan", "car-shadow"], 4)


def test_a_dense_first_frame_scribble_gives_exactly_the_masks_of_run_sequence(ci_sequences):
    torch.set_num_threads(1)
    for sequence in ci_sequences:
        expected = np.stack([labels for _, labels in LWL(**CI).run_sequence(sequence)])
        method = InteractiveLWL(**CI)
        method.start(frames_only(sequence))
        masks = method.interact(0, sequence.read_mask(sequence.frames[0]).astype(np.int64))
        assert expected[1:].any()
        np.testing.assert_array_equal(masks, expected, err_msg=sequence.name)


@pytest.fixture(scope="module")
def blackswan(shared):
    return blackswan_with_truth(shared)


def test_a_sparse_scribble_marks_the_object_in_the_frames_after_it(blackswan):
    torch.set_num_threads(1)
    sequence, truth = blackswan
    method = InteractiveLWL(**CI)
    method.start(frames_only(sequence))
    masks = method.interact(0, stroke(truth[0]))
    scores = [jaccard(masks[k] == 1, truth[k]) for k in range(1, 5)]
    # measured with the fixed weights: J 0.312, 0.141, 0.099, 0.083 (mean 0.159); with the unlabelled pixels taken
    # as background (every weight 1) mean 0.012; with E shown the bare scribble raster (no nearest-label fill)
    # mean 0.010. LWL's label encoder never saw a scribble in training: far below FRTM's 0.565 here
    assert np.mean(scores) > 0.1, scores
    # W x the loss weights: the feature cells that no labelled pixel covers carry no loss
    method = InteractiveLWL(**CI, weak_negatives_box_scale=None)
    method.start(frames_only(sequence))
    method.interact(0, stroke(truth[0]))
    _, _, weights = method.annotations[1][0].sample
    assert float((weights == 0).float().mean()) > 0.3
    # the filled label trained as a dense one (every weight 1): measured mean 0.364
    method = InteractiveLWL(**CI, unlabelled_pixels="nearest_label")
    method.start(frames_only(sequence))
    masks = method.interact(0, stroke(truth[0]))
    assert np.mean([jaccard(masks[k] == 1, truth[k]) for k in range(1, 5)]) > 0.25


def test_propagation_runs_both_ways_and_keeps_the_interacted_frames_in_the_memory(blackswan, monkeypatch):
    torch.set_num_threads(1)
    sequence, truth = blackswan
    method = InteractiveLWL(**CI)
    method.start(frames_only(sequence))
    segmented = []
    segment = method._segment
    monkeypatch.setattr(method, "_segment", lambda state, frame: segmented.append(frame) or segment(state, frame))
    masks = method.interact(2, np.where(truth[2], 1, 0))  # dense: frame 2's logits are the given mask's
    frames = [next(i for i, f in method.frames.items() if f is frame) for frame in segmented]
    assert frames == [3, 4, 1, 0]  # forwards, then backwards
    # measured J 0.340, 0.387, -, 0.345, 0.305 (run_sequence from frame 0 with these weights: 0.32, 0.30, 0.32, 0.28)
    assert min(jaccard(masks[k] == 1, truth[k]) for k in (0, 1, 3, 4)) > 0.25
    segmented.clear()
    again = method.interact(4, np.where(truth[4], 1, 0))
    frames = [next(i for i, f in method.frames.items() if f is frame) for frame in segmented]
    assert frames == [3]  # back to frame 2, interacted before: frames 0-2 keep their masks
    np.testing.assert_array_equal(again[:3], masks[:3])
    memory = method.states[1].memory
    assert [a.frame for a in method.annotations[1]] == [2, 4] and memory.protected == len(memory) == 2


def test_a_correction_with_only_negatives_is_learned_where_the_object_was_estimated(blackswan):
    """A false positive corrected by a background scribble alone (no positive pixel of the object on that frame,
    previous masks not used): a sample of that frame, cropped at the object's estimate there, which lowers the
    object's score under the scribble."""
    torch.set_num_threads(1)
    sequence, truth = blackswan
    method = InteractiveLWL(**CI, previous_masks_weight=0.0)
    method.start(frames_only(sequence))
    masks = method.interact(0, stroke(truth[0]))
    wrong = (masks[3] == 1) & ~truth[3]
    assert wrong.sum() > 100  # the fixed weights leave false positives on frame 3
    negatives = np.full(truth[3].shape, -1, np.int64)
    negatives[wrong] = 0
    estimate = method.estimates[3][1]
    before = method._segment(method.states[1], method._frame(3))[torch.from_numpy(wrong)].mean()
    corrected = method.interact(3, negatives)
    assert [a.frame for a in method.annotations[1]] == [0, 3]
    assert torch.equal(method.annotations[1][1].target.pos, estimate.pos)  # cropped where it was estimated
    after = method._segment(method.states[1], method._frame(3))[torch.from_numpy(wrong)].mean()
    assert after < before and not (corrected[3][wrong] == 1).any()


def test_settings_refuse_unknown_keys_and_box_initialisation():
    base = {"checkpoint": "net.pt"}
    assert InteractiveLWLSettings.from_dict(base).weak_negatives_weight == 0.1
    with pytest.raises(ValueError, match="unknown interactive LWL settings"):
        InteractiveLWLSettings.from_dict({**base, "previous_mask_weight": 0.5})
    with pytest.raises(ValueError, match="box_init=true"):
        InteractiveLWLSettings.from_dict({**base, "box_init": True})
    with pytest.raises(ValueError, match="unlabelled_pixels='nearest'"):
        InteractiveLWLSettings.from_dict({**base, "unlabelled_pixels": "nearest"})
    with pytest.raises(ValueError, match="scribble_dilation=-1"):
        InteractiveLWLSettings.from_dict({**base, "scribble_dilation": -1})


def test_the_interactive_variant_validates_as_its_session_builds_it_and_no_semi_supervised_row_takes_it():
    from methods.rows import load_preset, load_variants, merged_settings

    variants = load_variants()
    defaults = load_preset("ci")[1]["method_defaults"]
    settings = merged_settings({"method": "lwl", "variant": "interactive"}, variants, defaults)
    built = InteractiveLWLSettings.from_dict({**settings, "checkpoint": str(FIXED_LWL)})
    assert built.crop_size == [240, 432] and built.network == variants["lwl"]["interactive"]["network"]
    with pytest.raises(ValueError, match="unknown LWL settings"):
        LWLSettings.from_dict({**settings, "checkpoint": str(FIXED_LWL)})
