"""FRTM against the released code (andr345/frtm-vos e994ac2): the official fixtures in
../shared/fixtures/official (README there), reproduced through the project's own code.

Target model D: the float64 routes of the fixture README (with `upsampling="interpolate"`, the released op):
the objectives and a joint GN step to 1e-11 or better; the w2-only passes, whose 10-iteration CG solves amplify
a difference in the last bit to 1e-2 and more (measured below), within that spread; float32 routes at the
README's looser tolerances. Merging and
the labels given to D: the tracker's own functions (merge_frame, frame_labels, enough_foreground).
Augmentation: the blur kernels, primitives, box and transforms of the released ImageAugmenter (our
warp/paste/inpainting deliberately differ, see methods/core/augmentation.py; they are not compared).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from methods.core import augmentation as aug
from methods.core.augmentation import initial_sample_weights
from methods.core.memory import SampleMemory
from methods.frtm.target_model import TargetModel, TargetModelSettings, pixel_weights
from methods.frtm.tracker import enough_foreground, frame_labels, merge_frame
from tests.official_fixtures import load_official

F64 = torch.float64


def relative(ours: torch.Tensor, official: torch.Tensor) -> float:
    return float((ours.double() - official.double()).abs().max() / official.double().abs().max())


@pytest.fixture(scope="module")
def target():
    return load_official("frtm_target_model.pt")


def _settings(fixture, **changes) -> TargetModelSettings:
    s = fixture["settings"]
    base = TargetModelSettings(channels=s["c_channels"], regularisation=tuple(r * r for r in s["filter_reg"]),
                               preconditioner=tuple(s["precond"]), init_cg_iterations=tuple(s["init_iters"]),
                               update_cg_iterations=s["update_iters"][0], kappa_min=s["pixel_weighting"]["tf"],
                               cg_forgetting_rate=s["CG_forgetting_rate"], upsampling="interpolate")
    return dataclasses.replace(base, **changes)


def _inputs(fixture, dtype):
    features = fixture["init_features"].to(dtype)
    labels = fixture["init_labels"][:, 0].to(dtype)
    weights = torch.tensor(initial_sample_weights(len(labels)), dtype=dtype)
    return features, labels, weights


# --- D: sample and pixel weights -----------------------------------------------------------------------
def test_initial_memory_weights_are_the_released_ones(target):
    # (2, 1, 1, 1, 1) / 6; ours in float64 (as the float64 route), the fixture's float32: one rounding apart
    ours = torch.tensor(initial_sample_weights(target["num_aug"]), dtype=torch.float32)
    torch.testing.assert_close(ours, target["init_memory_weights"], rtol=1.2e-7, atol=0)
    assert not torch.allclose(ours, torch.full((5,), 0.2))


def test_pixel_weights_of_the_initial_samples(target):
    labels = target["init_labels"][:, 0].float()
    v = pixel_weights(labels, kappa_min=target["settings"]["pixel_weighting"]["tf"])
    official = target["init_pixel_weights"]
    fraction = labels.flatten(1).mean(1)
    torch.testing.assert_close(fraction, official["fg_fraction"], rtol=1e-6, atol=0)
    for k in range(len(labels)):
        assert torch.equal(v[k][labels[k] > 0.5].unique(), official["fg"][k : k + 1])
        assert torch.equal(v[k][labels[k] <= 0.5].unique(), official["bg"][k : k + 1])


def test_pixel_weights_of_the_update_label(target):
    label = target["update"]["label"][0]
    v = pixel_weights(label, kappa_min=0.1)[0]
    official = target["update"]["label_pixel_weights"]
    assert torch.equal(v[label[0] > 0.5].unique(), official["fg"])
    assert torch.equal(v[label[0] <= 0.5].unique(), official["bg"])


def test_memory_weights_after_the_first_update_are_the_released_ones(target):
    """The tracker's memory rule ("lwl" in methods/core/memory.py is the released update_sample_weights,
    the same in FRTM's model/memory.py): the first insert divides the others by 1 - eta and gets eta
    (0.0826 after normalising, not 0.1 as the plain decay rule gives)."""
    before, after = target["update"]["memory_weights_before"], target["update"]["memory_weights_after"]
    memory = SampleMemory(target["settings"]["memory_size"], target["settings"]["learning_rate"], rule="released")
    memory.initialise([(torch.zeros(1),)] * 5, before[:5].tolist())
    slot = memory.add((torch.zeros(1),))
    assert slot == target["update"]["replace_ind"] and len(memory) == target["update"]["memory_size_after"]
    torch.testing.assert_close(memory.filled_weights().float(), after, rtol=1e-6, atol=0)
    decay = SampleMemory(target["settings"]["memory_size"], target["settings"]["learning_rate"])
    decay.initialise([(torch.zeros(1),)] * 5, before[:5].tolist())
    decay.add((torch.zeros(1),))
    assert not torch.allclose(decay.filled_weights().float(), after, rtol=1e-3)


# --- D: Gauss-Newton, float64 routes ----------------------------------------------------------------
def test_one_joint_gauss_newton_step_from_the_released_initial_weights(target):
    official = target["float64"]["init_gn"]
    features, labels, weights = _inputs(target, F64)
    initial = (target["init_weights"]["project"].to(F64), target["init_weights"]["filter"].to(F64))
    model = TargetModel(features.shape[1], _settings(target, init_cg_iterations=(5,)), initial_weights=initial)
    losses = model.initialise(features, labels, weights)
    assert relative(model.w1, official["project_after_step0"]) < 1e-11  # measured 1.0e-13
    assert relative(model.w2, official["filter_after_step0"]) < 1e-11  # measured 2.1e-14
    # the released loss is sum r^2 = 2 x ours (1/2 ||r||^2), regularisation included
    assert 2 * losses[0] == pytest.approx(official["loss"][0], rel=1e-13)
    assert 2 * losses[1] == pytest.approx(official["loss"][1], rel=1e-11)


# The w2-only passes are solved by 10 CG iterations that amplify a difference in the last bit: features
# perturbed by 1e-16 (relative, 3 draws) move the init pass's w2 by up to 1.4e-2 relative, its loss by 4.6e-4
# and the later scores by 2.1e-2, and the update's w2 by up to 5.0e-2, its scores by 9.6e-2 (measured
# 2026-12-02 on an AMD EPYC, AVX512, MKL). So the released figures are met bit for bit only where the matrix
# kernels round as on the fixtures' machine (measured 0 there); on this EPYC ours differ by 6.7e-3 (w2, init)
# and 5.4e-4 (w2, update). The objective before each step is exact everywhere; after it, the bounds below are
# about twice the measured spread and still refuse a solver with half the CG iterations (w2 3.3e-1 after the
# update, scores 6.6e-1) or a wrong objective.
CG_W2, CG_SCORES, CG_LOSS = 3e-2, 5e-2, 2e-3  # init filter-only pass
UPDATE_W2, UPDATE_SCORES, UPDATE_LOSS = 1e-1, 2e-1, 2e-2  # the update (more samples, larger spread)


def released_memory(target, projected, labels) -> SampleMemory:
    """The released Memory.initialize: 1/K each, 2/K first, normalised ONCE (SampleMemory normalises what it
    gets; initial_sample_weights is already normalised, and a second division moves the last bit)."""
    memory = SampleMemory(target["settings"]["memory_size"], target["settings"]["learning_rate"], rule="released")
    k = len(labels)
    memory.initialise([(projected[i], labels[i]) for i in range(k)], [2.0 / k] + [1.0 / k] * (k - 1))
    return memory


def test_filter_only_pass_from_the_released_state(target):
    """The end of init: a w2-only GN step on the re-projected samples, from the stored state (float64)."""
    f64 = target["float64"]
    features, labels, weights = _inputs(target, F64)
    model = TargetModel(features.shape[1], _settings(target),
                        initial_weights=(f64["learned"]["project"], f64["init_gn"]["filter_after_step"][-1]))
    memory = released_memory(target, model.project(features), labels)
    assert torch.equal(memory.filled_weights(), weights)

    losses = model.update(memory.stacked(0), memory.stacked(1), memory.filled_weights())
    official = f64["init_update_gn"]["loss"]
    assert 2 * losses[0] == pytest.approx(official[0], rel=1e-13)  # the objective before the step: exact
    assert [2 * v for v in losses] == pytest.approx(official, rel=CG_LOSS)
    assert relative(model.w2, f64["learned"]["filter"]) < CG_W2
    assert relative(model.scores(target["later_features"].to(F64)), f64["later_scores"]) < CG_SCORES


def test_the_update_from_the_released_learned_state(target):
    """The later update with the tracker's label and the released memory weights, from the stored learned
    D and the memory rebuilt from the first-frame samples (the README's float64 route)."""
    f64 = target["float64"]
    features, labels, _ = _inputs(target, F64)
    model = TargetModel(features.shape[1], _settings(target),
                        initial_weights=(f64["learned"]["project"], f64["learned"]["filter"]))
    memory = released_memory(target, model.project(features), labels)
    memory.add((model.project(target["later_features"].to(F64))[0], target["update"]["label"][0, 0].to(F64)))
    torch.testing.assert_close(memory.filled_weights().float(), target["update"]["memory_weights_after"])

    losses = model.update(memory.stacked(0), memory.stacked(1), memory.filled_weights())
    official = f64["update"]["gn"]["loss"]
    assert 2 * losses[0] == pytest.approx(official[0], rel=1e-13)  # the objective before the step: exact
    assert [2 * v for v in losses] == pytest.approx(official, rel=UPDATE_LOSS)
    assert relative(model.w2, f64["update"]["filter_after"]) < UPDATE_W2
    scores = model.scores(target["later_features"].to(F64))
    assert relative(scores, f64["update"]["later_scores_after"]) < UPDATE_SCORES


def test_the_matrix_upsampling_gives_the_same_pass_to_rounding_amplified_by_cg(target):
    """Our default U (two matrix products) equals F.interpolate to 1e-16; ten CG iterations amplify that
    to 5e-3 (measured), about the released code's own spread between thread counts (README: 3e-3)."""
    f64 = target["float64"]
    features, labels, weights = _inputs(target, F64)
    model = TargetModel(features.shape[1], _settings(target, upsampling="matrix"),
                        initial_weights=(f64["learned"]["project"], f64["init_gn"]["filter_after_step"][-1]))
    losses = model.update(model.project(features), labels, weights)
    assert relative(model.w2, f64["learned"]["filter"]) < 3e-2
    assert 2 * losses[1] == pytest.approx(f64["init_update_gn"]["loss"][1], rel=1e-3)


# --- D: float32 routes (README tolerances) ----------------------------------------------------------
def test_one_joint_step_in_float32(target):
    features, labels, weights = _inputs(target, torch.float32)
    initial = (target["init_weights"]["project"].float(), target["init_weights"]["filter"].float())
    model = TargetModel(features.shape[1], _settings(target, init_cg_iterations=(5,), upsampling="matrix"),
                        initial_weights=initial)
    model.initialise(features, labels, weights)
    assert relative(model.w1, target["init_gn"]["project_after_step0"]) < 1e-2  # measured 1.8e-3; README ~1e-3
    assert relative(model.w2, target["init_gn"]["filter_after_step"][0]) < 1e-2  # measured 2.7e-4


def test_filter_only_pass_in_float32(target):
    features, labels, weights = _inputs(target, torch.float32)
    model = TargetModel(features.shape[1], _settings(target, upsampling="matrix"),
                        initial_weights=(target["learned"]["project"], target["init_gn"]["filter_after_step"][-1]))
    losses = model.update(model.project(features), labels, weights)
    assert relative(model.w2, target["learned"]["filter"]) < 5e-2  # measured 2.2e-3; README: ~1e-2
    assert 2 * losses[0] == pytest.approx(target["init_update_gn"]["loss"][0], rel=1e-5)
    assert relative(model.scores(target["later_features"].float()), target["later_scores"]) < 5e-2


def test_cg_state_is_a_restart_at_the_inference_forgetting_rate(target):
    """0.9^750 = 4.8e-35: in float32 rho / factor overflows and the carried direction drops out."""
    from methods.core.gauss_newton import forgetting_factor

    assert forgetting_factor(target["settings"]["CG_forgetting_rate"]) == pytest.approx(
        target["settings"]["direction_forget_factor"], rel=1e-12)
    rho = target["cg_state_after_init"]["rho"][0]
    assert torch.isinf(rho / forgetting_factor(750))


# --- merging and the labels given to D ---------------------------------------------------------------
@pytest.fixture(scope="module")
def merge_labels():
    return load_official("frtm_merge_labels.pt")


def _replay(scenario):
    """Frames 1.. of a scenario through the tracker's functions: merged rows, label images, updates."""
    n_objects = scenario["n_objects"]
    started = [i for i, start in enumerate(scenario["start_frames"]) if start == 0]
    results = []
    for f, logits in enumerate(scenario["logits"], start=1):
        probabilities = torch.stack([torch.sigmoid(logits[str(scenario["object_ids"][i])].float()) for i in started])
        new = [i for i, start in enumerate(scenario["start_frames"]) if start == f]
        init = scenario["init_labels"].get(str(f))
        new_masks = [(init == scenario["object_ids"][i]).float() for i in new]
        merged = merge_frame(probabilities, new_masks)
        results.append((started, merged, frame_labels(merged, n_objects == 1)))
        started = started + new
    return results


@pytest.mark.parametrize("index", [0, 1, 2])
def test_merged_rows_are_the_released_stored_labels(merge_labels, index):
    scenario = merge_labels["scenarios"][index]
    for (_, merged, _), official in zip(_replay(scenario), scenario["merged"], strict=True):
        torch.testing.assert_close(merged, official[1:], rtol=0, atol=1e-6)  # measured 0
        assert (merged > 0).sum() > 0


@pytest.mark.parametrize("index", [0, 1, 2])
def test_label_images_are_the_released_ones(merge_labels, index):
    scenario = merge_labels["scenarios"][index]
    ids = torch.tensor([0, *scenario["object_ids"]])
    for f, (_, _, indices) in enumerate(_replay(scenario), start=1):
        official = scenario["labels"][f].long()
        ours = ids[indices].reshape(official.shape) if scenario["n_objects"] > 1 else indices[None]
        assert torch.equal(ours, official)


def test_the_second_merge_makes_weak_winners_background(merge_labels):
    """README "Surprises": with several objects the label image is not the first merge's argmax."""
    scenario = merge_labels["scenarios"][1]
    (_, merged, labels) = _replay(scenario)[0]
    first_argmax_objects = (merged > 0).any(0)
    assert (first_argmax_objects & (labels == 0)).sum() > 100  # 140-162 pixels in the fixture


@pytest.mark.parametrize("index", [0, 1, 2])
def test_updates_receive_the_merged_rows_and_their_pixel_weights(merge_labels, index):
    scenario = merge_labels["scenarios"][index]
    replay = _replay(scenario)
    for update in scenario["updates"]:
        started, merged, _ = replay[update["frame"] - 1]
        row = started.index(scenario["object_ids"].index(update["obj"]))
        assert row + 1 == update["merged_row"]
        label = merged[row]
        official_label = scenario["merged"][update["frame"] - 1][update["merged_row"]]
        torch.testing.assert_close(label, official_label, rtol=0, atol=1e-6)
        assert int((label > 0.5).sum()) == update["fg_pixels"]
        assert (not enough_foreground(label)) == bool(update["skipped"])
        v = pixel_weights(label[None], kappa_min=0.1)[0]
        assert float(v[label > 0.5].unique()) == pytest.approx(update["pixel_weight_fg"], rel=1e-6)
        assert float(v[label <= 0.5].unique()) == pytest.approx(update["pixel_weight_bg"], rel=1e-6)


def test_too_small_labels_are_skipped():
    label = torch.zeros(20, 20)
    label[:3, :3] = 0.9  # 9 pixels
    assert not enough_foreground(label)
    label[3, 0] = 0.6
    assert enough_foreground(label)


# --- augmentation ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def augmenter():
    return load_official("frtm_augmenter.pt")


def test_blur_kernels_are_the_released_ones(augmenter):
    assert len(augmenter["blur_kernels"]) == 23
    for case in augmenter["blur_kernels"]:
        ours = aug.blur_kernel(case["sx"], case["sy"], case["R"].numpy())
        official = case["kernel"].numpy()
        assert ours.shape == official.shape, case
        np.testing.assert_allclose(ours, official, rtol=0, atol=1e-7)
        ours_rotation = aug.rotate_matrix(case["angle_deg"] * np.pi / 180)[:2, :2]
        np.testing.assert_allclose(ours_rotation, case["R"].numpy(), rtol=0, atol=1e-15)
        if case["sy"] == pytest.approx(0.1):
            np.testing.assert_allclose(aug.motion_blur_kernel(case["sx"], case["angle_deg"]), official, atol=1e-7)


def test_primitives_are_the_released_ones(augmenter):
    primitives = augmenter["primitives"]
    np.testing.assert_array_equal(aug.scale_matrix(2, 3), primitives["scale_2_3"].numpy())
    np.testing.assert_allclose(aug.rotate_matrix(30 * np.pi / 180), primitives["rotate_30"].numpy(), atol=1e-15)
    np.testing.assert_array_equal(aug.translate_matrix(5, 7), primitives["translate_5_7"].numpy())
    np.testing.assert_allclose(aug.skew_matrix(0.1, 0.2), primitives["skew_01_02"].numpy(), atol=1e-15)


def test_box_and_transforms_are_the_released_ones(augmenter):
    mask = augmenter["mask"][0].numpy() > 0
    box = aug.centre_box(mask)
    assert list(box) == pytest.approx(augmenter["bbox_cxcywh"])
    size = tuple(mask.shape)
    for case in augmenter["transforms"]:
        spec = case["spec"]
        args = (spec["location"], spec["rotation"], spec["scale"], bool(spec["fliplr"]), tuple(spec["skew"]), box, size)
        transform, _ = aug.object_transform(*args)
        np.testing.assert_allclose(transform, case["T"].numpy(), rtol=0, atol=1e-9)
        free, _ = aug.object_transform(*args, limit_scale=False)
        np.testing.assert_allclose(free, case["T_no_scale_limit"].numpy(), rtol=0, atol=1e-9)
        if spec["blur_size"] > 0:
            np.testing.assert_allclose(aug.motion_blur_kernel(spec["blur_size"], spec["blur_angle"]),
                                       case["G"].numpy(), atol=1e-7)
        else:
            assert case["G"].shape == (1, 1)


def test_background_transform_is_the_released_one(augmenter):
    spec = augmenter["background"]["spec"]
    height, width = augmenter["image"].shape[-2:]
    transform, _ = aug.object_transform(spec["location"], spec["rotation"], spec["scale"], False, tuple(spec["skew"]),
                                        (width / 2, height / 2, width, height), (height, width), limit_scale=False)
    np.testing.assert_allclose(transform, augmenter["background"]["T"].numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(aug.motion_blur_kernel(spec["blur_size"], spec["blur_angle"]),
                               augmenter["background"]["G"].numpy(), atol=1e-7)


def test_filter_image_is_the_released_per_channel_correlation(augmenter):
    case = augmenter["filter_image"]
    kernel = augmenter["blur_kernels"][case["kernel_index"]]["kernel"].numpy()
    image = case["image"].numpy().transpose(1, 2, 0)
    ours = aug.filter_image(image, kernel).transpose(2, 0, 1)
    np.testing.assert_allclose(ours, case["out"].numpy(), rtol=0, atol=1e-3)
