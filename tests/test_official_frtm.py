"""FRTM against the released code (andr345/frtm-vos e994ac2): the official fixtures in
../shared/fixtures/official (README there), reproduced through the project's own code.

Target model D: the float64 routes of the fixture README (with `upsampling="interpolate"`, the released op):
the objectives before a step to float64 rounding and one joint GN step within what it makes of a last-bit
difference (~5e-12 relative, from the official replays: a semantic difference fails there at any thread
count); the w2-only passes, whose 10-iteration CG solves amplify a difference in the last bit to 1e-2 and more
(measured below), within that spread; the float32 routes within ROUNDING_MARGIN x our own float32 error
(tests/official_fixtures.py), measured against the same route in float64 and under last-bit input changes.
Merging and
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
from tests.official_fixtures import (
    REPLAY_MARGIN,
    U32,
    U64,
    assert_within,
    float32_tolerance,
    load_official,
)

F64 = torch.float64

# float64 routes. One joint GN step amplifies a last-bit difference: the official float32 replays move it by up to
# 6.5e-4 relative (w1; w2 9.5e-5) from a difference of u32 (fixture README), a factor of 1.1e4. w1 and w2 move
# together (the data term is unchanged by w1 -> Q w1, w2 -> w2 Q^-1, README "Surprises"), so the larger factor
# holds for both: on u64 it gives 1.2e-13, times REPLAY_MARGIN.
JOINT_STEP64 = REPLAY_MARGIN * (6.5e-4 / U32) * U64
# The objective before a step: a float64 sum of squares of residuals from a 256-term (w1) and an 864-term (w2)
# convolution; their rounding, lambda sqrt(K) u64 with lambda = 10 (Higham & Mary's probabilistic bound, failure
# below 1e-20), is 3.3e-14 relative on a residual, twice that on its square, at most 1e-13 with the sum's own.
OBJECTIVE64 = 1e-13
# The loss after the joint step moves with the step (w1, w2 within JOINT_STEP64): the loss is first-order in
# them, with a gradient of the size of the loss (|dL/dw| |w| / L <= 2 sqrt(L_data / L) <= 2 at a step from the
# initial weights): 2 x JOINT_STEP64.
JOINT_STEP64_LOSS = 2 * JOINT_STEP64


def relative(ours: torch.Tensor, official: torch.Tensor) -> float:
    return float((ours.double() - official.double()).abs().max() / official.double().abs().max())


def rel(ours, official) -> float:
    """Relative difference of scalars (or, elementwise, the largest of lists)."""
    ours, official = torch.as_tensor(ours, dtype=F64), torch.as_tensor(official, dtype=F64)
    return float(((ours - official).abs() / official.abs()).max())


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
    torch.testing.assert_close(ours, target["init_memory_weights"], rtol=2 * U32, atol=0)
    assert not torch.allclose(ours, torch.full((5,), 0.2))


def test_pixel_weights_of_the_initial_samples(target):
    labels = target["init_labels"][:, 0].float()
    v = pixel_weights(labels, kappa_min=target["settings"]["pixel_weighting"]["tf"])
    official = target["init_pixel_weights"]
    fraction = labels.flatten(1).mean(1)
    torch.testing.assert_close(fraction, official["fg_fraction"], rtol=U32, atol=0)  # integer sum / n: one rounding
    # exact by construction: sqrt(w) of one IEEE division of a float32 fraction, the released op sequence, on
    # foreground (label 1: w_fg * 1 + w_bg * 0 = w_fg exactly) and background pixels alike
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
    # released float32: a division by 1 - eta, a 6-term sum and a normalising division (<= 8 roundings); ours
    # float64, rounded once
    torch.testing.assert_close(memory.filled_weights().float(), after, rtol=16 * U32, atol=0)
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
    assert_within("float64 joint step: w1", relative(model.w1, official["project_after_step0"]), JOINT_STEP64)
    assert_within("float64 joint step: w2", relative(model.w2, official["filter_after_step0"]), JOINT_STEP64)
    # the released loss is sum r^2 = 2 x ours (1/2 ||r||^2), regularisation included
    assert_within("float64 joint step: loss before", rel(2 * losses[0], official["loss"][0]), OBJECTIVE64)
    assert_within("float64 joint step: loss after", rel(2 * losses[1], official["loss"][1]), JOINT_STEP64_LOSS)


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
    # the same 1/K, 2/K and normalisation in float64 (numpy there, torch here): a 5-term sum may round in
    # another order, a division each (<= 6 roundings)
    torch.testing.assert_close(memory.filled_weights(), weights, rtol=8 * U64, atol=0)

    losses = model.update(memory.stacked(0), memory.stacked(1), memory.filled_weights())
    official = f64["init_update_gn"]["loss"]
    assert_within("init filter-only pass: loss before", rel(2 * losses[0], official[0]), OBJECTIVE64)
    assert_within("init filter-only pass: losses", rel([2 * v for v in losses], official), CG_LOSS)
    assert_within("init filter-only pass: w2", relative(model.w2, f64["learned"]["filter"]), CG_W2)
    scores = model.scores(target["later_features"].to(F64))
    assert_within("init filter-only pass: scores", relative(scores, f64["later_scores"]), CG_SCORES)


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
    assert_within("update: loss before", rel(2 * losses[0], official[0]), OBJECTIVE64)
    assert_within("update: losses", rel([2 * v for v in losses], official), UPDATE_LOSS)
    assert_within("update: w2", relative(model.w2, f64["update"]["filter_after"]), UPDATE_W2)
    scores = model.scores(target["later_features"].to(F64))
    assert_within("update: scores", relative(scores, f64["update"]["later_scores_after"]), UPDATE_SCORES)


def test_the_matrix_upsampling_gives_the_same_pass_to_rounding_amplified_by_cg(target):
    """Our default U (two matrix products) equals F.interpolate to 1e-16; ten CG iterations amplify that
    as they amplify any last-bit difference (CG_W2, CG_LOSS above)."""
    f64 = target["float64"]
    features, labels, weights = _inputs(target, F64)
    model = TargetModel(features.shape[1], _settings(target, upsampling="matrix"),
                        initial_weights=(f64["learned"]["project"], f64["init_gn"]["filter_after_step"][-1]))
    losses = model.update(model.project(features), labels, weights)
    assert_within("matrix U: w2", relative(model.w2, f64["learned"]["filter"]), CG_W2)
    assert_within("matrix U: loss after", rel(2 * losses[1], f64["init_update_gn"]["loss"][1]), CG_LOSS)


# --- D: float32 routes -------------------------------------------------------------------------------------
# Rule 2 for a chaotic route: one float32 result against its float64 twin is ONE sample of how far the route
# carries a rounding, and the next order may land farther. So our float32 error is also measured as the spread
# of the route under a last-bit change of its input (every feature times 1 + -2 u32, LAST_BIT_DRAWS draws), and
# the tolerance is ROUNDING_MARGIN x the largest of these.
LAST_BIT_DRAWS = 3


def last_bit(features: torch.Tensor, draw: int) -> torch.Tensor:
    sign = torch.randint(0, 2, features.shape, generator=torch.Generator().manual_seed(draw)) * 2 - 1
    return features * (1 + 2 * U32 * sign)


def chaotic_tolerance(route, target, pick) -> tuple[torch.Tensor, float]:
    """Our float32 value of `pick(route(target, dtype, draw))` and its rule-2 tolerance (see above)."""
    ours = pick(route(target, torch.float32))
    deviations = [float((ours.double() - pick(route(target, F64)).double()).abs().max())]
    for draw in range(1, LAST_BIT_DRAWS + 1):
        deviations.append(float((ours - pick(route(target, torch.float32, draw))).abs().max()))
    return ours, float32_tolerance(ours, ours + max(deviations))


def joint_step(target, dtype, draw: int = 0) -> TargetModel:
    features, labels, weights = _inputs(target, dtype)
    features = last_bit(features, draw) if draw else features
    initial = (target["init_weights"]["project"].to(dtype), target["init_weights"]["filter"].to(dtype))
    model = TargetModel(features.shape[1], _settings(target, init_cg_iterations=(5,), upsampling="matrix"),
                        initial_weights=initial)
    model.initialise(features, labels, weights)
    return model


def test_one_joint_step_in_float32(target):
    for name, official in (("w1", target["init_gn"]["project_after_step0"]),
                           ("w2", target["init_gn"]["filter_after_step"][0])):
        ours, tolerance = chaotic_tolerance(joint_step, target, lambda model, name=name: getattr(model, name))
        assert_within(f"float32 joint step: {name}", float((ours - official).abs().max()), tolerance)


def filter_only_pass(target, dtype, draw: int = 0):
    features, labels, weights = _inputs(target, dtype)
    features = last_bit(features, draw) if draw else features
    model = TargetModel(features.shape[1], _settings(target, upsampling="matrix"),
                        initial_weights=(target["learned"]["project"].to(dtype),
                                         target["init_gn"]["filter_after_step"][-1].to(dtype)))
    losses = model.update(model.project(features), labels, weights)
    return model.w2, torch.tensor(2 * losses[0], dtype=dtype), model.scores(target["later_features"].to(dtype))


def test_filter_only_pass_in_float32(target):
    for index, name, official in ((0, "w2", target["learned"]["filter"]),
                                  (1, "loss before", torch.tensor(target["init_update_gn"]["loss"][0])),
                                  (2, "scores", target["later_scores"])):
        ours, tolerance = chaotic_tolerance(filter_only_pass, target, lambda result, index=index: result[index])
        assert_within(f"float32 filter-only pass: {name}", float((ours.double() - official.double()).abs().max()),
                      tolerance)


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
        # elementwise sigmoid, clamp, min, odds and a softmax over <= 4 rows on values in [0, 1]: a few float32
        # roundings (u32 = 6e-8) each; 16 u32
        torch.testing.assert_close(merged, official[1:], rtol=0, atol=16 * U32)
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
        torch.testing.assert_close(label, official_label, rtol=0, atol=16 * U32)  # as the merged rows
        assert int((label > 0.5).sum()) == update["fg_pixels"]
        assert (not enough_foreground(label)) == bool(update["skipped"])
        v = pixel_weights(label[None], kappa_min=0.1)[0]
        # a fraction, a division and a sqrt (<= 4 float32 roundings), the released value stored as a float
        assert float(v[label > 0.5].unique()) == pytest.approx(update["pixel_weight_fg"], rel=8 * U32)
        assert float(v[label <= 0.5].unique()) == pytest.approx(update["pixel_weight_bg"], rel=8 * U32)


def test_too_small_labels_are_skipped():
    label = torch.zeros(20, 20)
    label[:3, :3] = 0.9  # 9 pixels
    assert not enough_foreground(label)
    label[3, 0] = 0.6
    assert enough_foreground(label)


# --- augmentation ------------------------------------------------------------------------------------
# Blur kernels: values <= 1 computed in float64 and rounded once to float32, by both: at most one unit in the
# last place apart (2 u32 at 1). Rotations: float64 cos and sin (<= 1 ulp each), 4 u64. Transforms: products of
# up to 5 float64 3x3 matrices whose entries reach the image size (128): ~45 roundings of values <= 128^2.
KERNEL_ATOL = 2 * U32
ROTATION_ATOL = 4 * U64
TRANSFORM_ATOL = 45 * U64 * 128**2
@pytest.fixture(scope="module")
def augmenter():
    return load_official("frtm_augmenter.pt")


def test_blur_kernels_are_the_released_ones(augmenter):
    assert len(augmenter["blur_kernels"]) == 23
    for case in augmenter["blur_kernels"]:
        ours = aug.blur_kernel(case["sx"], case["sy"], case["R"].numpy())
        official = case["kernel"].numpy()
        assert ours.shape == official.shape, case
        np.testing.assert_allclose(ours, official, rtol=0, atol=KERNEL_ATOL)
        ours_rotation = aug.rotate_matrix(case["angle_deg"] * np.pi / 180)[:2, :2]
        np.testing.assert_allclose(ours_rotation, case["R"].numpy(), rtol=0, atol=ROTATION_ATOL)
        if case["sy"] == pytest.approx(0.1):
            np.testing.assert_allclose(aug.motion_blur_kernel(case["sx"], case["angle_deg"]), official, atol=KERNEL_ATOL)


def test_primitives_are_the_released_ones(augmenter):
    primitives = augmenter["primitives"]
    np.testing.assert_array_equal(aug.scale_matrix(2, 3), primitives["scale_2_3"].numpy())
    np.testing.assert_allclose(aug.rotate_matrix(30 * np.pi / 180), primitives["rotate_30"].numpy(), atol=ROTATION_ATOL)
    np.testing.assert_array_equal(aug.translate_matrix(5, 7), primitives["translate_5_7"].numpy())
    np.testing.assert_allclose(aug.skew_matrix(0.1, 0.2), primitives["skew_01_02"].numpy(), atol=ROTATION_ATOL)


def test_box_and_transforms_are_the_released_ones(augmenter):
    mask = augmenter["mask"][0].numpy() > 0
    box = aug.centre_box(mask)
    assert list(box) == pytest.approx(augmenter["bbox_cxcywh"])
    size = tuple(mask.shape)
    for case in augmenter["transforms"]:
        spec = case["spec"]
        args = (spec["location"], spec["rotation"], spec["scale"], bool(spec["fliplr"]), tuple(spec["skew"]), box, size)
        transform, _ = aug.object_transform(*args)
        np.testing.assert_allclose(transform, case["T"].numpy(), rtol=0, atol=TRANSFORM_ATOL)
        free, _ = aug.object_transform(*args, limit_scale=False)
        np.testing.assert_allclose(free, case["T_no_scale_limit"].numpy(), rtol=0, atol=TRANSFORM_ATOL)
        if spec["blur_size"] > 0:
            np.testing.assert_allclose(aug.motion_blur_kernel(spec["blur_size"], spec["blur_angle"]),
                                       case["G"].numpy(), atol=KERNEL_ATOL)
        else:
            assert case["G"].shape == (1, 1)


def test_background_transform_is_the_released_one(augmenter):
    spec = augmenter["background"]["spec"]
    height, width = augmenter["image"].shape[-2:]
    transform, _ = aug.object_transform(spec["location"], spec["rotation"], spec["scale"], False, tuple(spec["skew"]),
                                        (width / 2, height / 2, width, height), (height, width), limit_scale=False)
    np.testing.assert_allclose(transform, augmenter["background"]["T"].numpy(), rtol=0, atol=TRANSFORM_ATOL)
    np.testing.assert_allclose(aug.motion_blur_kernel(spec["blur_size"], spec["blur_angle"]),
                               augmenter["background"]["G"].numpy(), atol=KERNEL_ATOL)


def test_filter_image_is_the_released_per_channel_correlation(augmenter):
    case = augmenter["filter_image"]
    kernel = augmenter["blur_kernels"][case["kernel_index"]]["kernel"].numpy()
    image = case["image"].numpy().transpose(1, 2, 0)
    ours = aug.filter_image(image, kernel).transpose(2, 0, 1)
    # two float32 orders of K-tap sums of uint8 values (<= 255) with a normalised kernel: each within K u32 x 255
    # (Higham's worst case for a sum of K terms)
    bound = 2 * kernel.size * U32 * float(np.abs(kernel).sum()) * 255
    assert_within("filter_image", float(np.abs(ours - case["out"].numpy()).max()), bound)
