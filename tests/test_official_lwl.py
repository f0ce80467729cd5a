"""LWL against the RELEASED code (pytracking 7eb9e74): the official fixtures (../shared/fixtures/official,
README there) hold the released modules' inputs, weights and outputs; each test loads the released state dict
through our own loader (methods.lwl.released) and compares our modules with float32 rounding allowed, by the
two rules of tests/official_fixtures.py: the decoder within REPLAY_MARGIN x the official code's own replay
difference between thread counts (fixture README, "Tolerances observed"); the parts the official replays
reproduce to the last bit (TM features, label encoder, learner, box encoder) within ROUNDING_MARGIN x our own
float32 error, measured against the same computation in float64. Fixture tensors are float16 where the
official run rounded them: cast with .float(). Without the fixtures every test skips, saying why."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.core.memory import SampleMemory
from methods.core.merging import merge_lwl
from methods.lwl.crops import box_mask
from methods.lwl.released import network_from_released_state
from methods.lwl.training import TrainingConfig
from tests.official_fixtures import (
    LWL_DECODER_ATOL,
    U32,
    assert_within,
    float32_rtol,
    float32_tolerance,
    float64_twin,
    load_official,
)


def flat(tree: dict, prefix: str = "") -> dict:
    """The fixture's nested dicts as "a.b.c" keys (the README's notation); state dicts stay whole."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("weights", "meta"):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


@pytest.fixture(scope="module")
def network_fixture():
    return flat(load_official("lwl_network.pt"))


@pytest.fixture(scope="module")
def net(network_fixture):
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    return network_from_released_state(network_fixture["weights"])


@pytest.fixture(scope="module")
def net64(net):
    return float64_twin(net)


def pyramid(fixture: dict, prefix: str) -> dict[int, torch.Tensor]:
    return {stride: fixture[f"{prefix}.layer{level}"].float() for level, stride in ((1, 4), (2, 8), (3, 16), (4, 32))}


def max_difference(ours, theirs) -> float:
    return float((torch.as_tensor(ours, dtype=torch.float64) - torch.as_tensor(theirs, dtype=torch.float64)).abs().max())


def assert_rounding_close(ours, ours64, theirs, what):
    """Rule 2, absolute: ours within ROUNDING_MARGIN x our own float32 error of the released values."""
    assert_within(what, max_difference(ours, theirs), float32_tolerance(ours, ours64))


def assert_rounding_relative(ours, ours64, theirs, what):
    """Rule 2, element by element relative (a loss or a norm per iteration)."""
    ours, theirs = torch.as_tensor(ours, dtype=torch.float64), torch.as_tensor(theirs, dtype=torch.float64)
    assert_within(what, float(((ours - theirs).abs() / theirs.abs()).max()), float32_rtol(ours, ours64))


# --- loading -----------------------------------------------------------------------------------------
def test_the_released_state_dict_loads_into_our_modules_and_a_foreign_one_is_refused(network_fixture, net):
    weights = network_fixture["weights"]
    assert net.config.label_channels == 16 and net.config.feature_channels == 512
    assert net.config.decoder_widths == [256, 128, 128, 64]
    # every released label-encoder key has a place in our mask encoder, with the same names below it
    ours = net.mask_encoder.state_dict()
    for key, value in weights.items():
        if key.startswith("label_encoder."):
            torch.testing.assert_close(ours[key[len("label_encoder."):]], value.float(), rtol=0, atol=0)
    assert float(net.learner.reg.detach()) == float(weights["target_model.filter_optimizer.residual_module.filter_reg"])
    broken = {k: v for k, v in weights.items() if k != "label_encoder.res1.downsample.bias"}
    with pytest.raises(ValueError, match="res1.downsample.bias"):
        network_from_released_state(broken)


# --- F, E, W -------------------------------------------------------------------------------------------
@torch.no_grad()
def test_target_model_features_are_the_released_ones(network_fixture, net, net64):
    features = torch.cat([network_fixture["backbone_features_init.layer3"].float(),
                          network_fixture["backbone_features_test.layer3"].float()])
    ours = net.target_features(features)
    assert_rounding_close(ours, net64.target_features(features.double()), network_fixture["tm_features"],
                          "TM features")


@torch.no_grad()
def test_label_encoder_and_weight_predictor_on_init_and_update_masks(network_fixture, net, net64):
    """Init: the first mask alone; update: both stored masks in one call (as the released tracker)."""
    size = network_fixture["tm_features"].shape[-2:]
    init_mask = network_fixture["crops.init.mask"].float()
    both_masks = torch.cat([init_mask, network_fixture["update.label"].float()])
    labels, weights = net.labels_and_weights(init_mask, size)
    both, both_weights = net.labels_and_weights(both_masks, size)
    labels64, weights64 = net64.labels_and_weights(init_mask.double(), size)
    both64, both_weights64 = net64.labels_and_weights(both_masks.double(), size)
    for ours, ours64, key in ((labels, labels64, "init.label_encoding"), (weights, weights64, "init.sample_weights"),
                              (both, both64, "update.label_encoding"),
                              (both_weights, both_weights64, "update.sample_weights")):
        assert_rounding_close(ours, ours64, network_fixture[key][:, 0], key)


# --- the few-shot learner ------------------------------------------------------------------------------
def learn_with_trace(net, tau, features, labels, weights, gammas, iterations):
    trace = {}
    with torch.no_grad():
        tau = net.learner(tau, features, labels, weights, gammas, iterations, trace=trace)
    return tau, trace


def learn_in_both_precisions(net, net64, tau, features, labels, weights, gammas, iterations):
    """The learner in float32 and its float64 twin on the same (float32-exact) inputs: (tau, trace) each."""
    ours = learn_with_trace(net, tau, features, labels, weights, gammas, iterations)
    as64 = [None if x is None else x.double() for x in (tau, features, labels, weights, gammas)]
    return ours, learn_with_trace(net64, *as64, iterations)


def iterate_scores(net, trace, test_features) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([net.learner.predict(tau, test_features) for tau in trace["iterates"]])


def check_learner_trace(net, net64, trace, trace64, fixture, prefix, test_features):
    assert len(trace["losses"]) == len(fixture[f"{prefix}.losses"])
    for name, what in (("losses", "losses"), ("ip_gg", "||g||^2"), ("ip_hh", "||h||^2")):
        assert_rounding_relative([float(x) for x in trace[name]], [float(x) for x in trace64[name]],
                                 fixture[f"{prefix}.{name}"], f"learner, {prefix}: {what}")
    assert_rounding_close(iterate_scores(net, trace, test_features),
                          iterate_scores(net64, trace64, test_features.double()),
                          fixture[f"{prefix}.test_scores_per_iter"][:, 0], f"learner, {prefix}: test scores per iteration")


def test_init_learner_losses_step_norms_scores_and_filter(network_fixture, net, net64):
    f = network_fixture
    (tau, trace), (tau64, trace64) = learn_in_both_precisions(
        net, net64, None, f["tm_features"][:1], f["init.label_encoding"][0], f["init.sample_weights"][0],
        torch.ones(1), f["init.num_iter"])
    check_learner_trace(net, net64, trace, trace64, f, "init", f["tm_features"][1:])
    assert_rounding_close(tau, tau64, f["init.filter"][0], "init filter")
    with torch.no_grad():
        encoding = net.learner.predict(f["init.filter"][0], f["tm_features"][1:])
        encoding64 = net64.learner.predict(f["init.filter"][0].double(), f["tm_features"][1:].double())
    assert_rounding_close(encoding, encoding64, f["test.mask_encoding"][0], "test mask encoding")


def test_update_learner_with_memory_weights_multiplying_the_residual(network_fixture, net, net64):
    """The update of frame 3: memory [init, frame 1] with gamma (0.917, 0.083); gamma multiplies the
    residual (W gamma, the fixture's `sample_weight_used`), so it enters the loss squared."""
    f = network_fixture
    gammas = f["update.memory_weights"].float()
    used = f["update.sample_weights"] * gammas.view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(used, f["update.sample_weight_used"], rtol=U32, atol=0)  # one float32 product
    (tau, trace), (tau64, trace64) = learn_in_both_precisions(
        net, net64, f["init.filter"][0], f["tm_features"], f["update.label_encoding"][:, 0],
        f["update.sample_weights"][:, 0], gammas, f["update.num_iter"])
    check_learner_trace(net, net64, trace, trace64, f, "update", f["tm_features"][1:])
    with torch.no_grad():
        encoding = net.learner.predict(tau, f["tm_features"][1:])
        encoding64 = net64.learner.predict(tau64, f["tm_features"][1:].double())
    assert_rounding_close(encoding, encoding64, f["update.test_mask_encoding_after"][0], "mask encoding after")


def test_the_memory_weights_of_the_update_are_the_released_ones(network_fixture):
    """lwl_ytvos: the first update divides the stored weights by (1 - eta) and gives the new sample eta."""
    settings = network_fixture
    memory = SampleMemory(settings["settings.sample_memory_size"], settings["settings.learning_rate"],
                          protect_first=True, first_weight_floor=settings["settings.init_samples_minimum_weight"],
                          rule="released")
    memory.initialise([(torch.zeros(1),)], [1.0])
    memory.add((torch.ones(1),))
    # released float32: a division by 1 - eta, a normalising sum and division, the first-frame floor (<= 8
    # roundings); ours float64, rounded once
    torch.testing.assert_close(memory.filled_weights().float(), settings["update.memory_weights"], rtol=16 * U32,
                               atol=0)


# --- the decoder ---------------------------------------------------------------------------------------
@torch.no_grad()
def test_decoder_logits_before_and_after_the_update(network_fixture, net):
    f = network_fixture
    features = pyramid(f, "backbone_features_test")
    size = tuple(f["test.logits"].shape[-2:])
    for encoding, key in ((f["test.mask_encoding"][0], "test.logits"),
                          (f["update.test_mask_encoding_after"][0], "update.test_logits_after")):
        logits = net.segment(features, encoding, size)
        assert_within(key, max_difference(logits, f[key]), LWL_DECODER_ATOL)


@torch.no_grad()
def test_training_forward_predictions(network_fixture, net):
    """Released LWTLNet.forward(num_refinement_iter=2): 5 steps on the train frame, then per test frame
    predict, label-encode the detached sigmoid, append, 2 more steps; but every test frame is decoded with the
    INITIAL filter (`filter_iter[-1]`), so the refinement never reaches a prediction (our default,
    TrainingConfig.predict_with_updated_model False). The test frames are the test crop twice."""
    f = network_fixture
    test = pyramid(f, "backbone_features_test")
    train = {stride: torch.zeros_like(level) for stride, level in test.items()}  # the decoder never reads it
    train[16] = f["backbone_features_init.layer3"].float()
    frames = {stride: torch.stack([train[stride], test[stride], test[stride]], dim=1) for stride in test}
    features = net.target_features(frames[16].flatten(0, 1)).unflatten(0, (1, 3))
    masks = f["crops.init.mask"].float()[:, None].expand(1, 3, 1, -1, -1)
    config = TrainingConfig(init_iterations=f["training.num_iter_init"],
                            update_iterations=f["training.num_refinement_iter"])
    logits = net.forward_features(frames, features, masks, tuple(masks.shape[-2:]), config.init_iterations,
                                  config.forward_update_iterations)
    assert_within("training.predictions", max_difference(logits, f["training.predictions"]), LWL_DECODER_ATOL)
    # the paper's reading (each test frame predicted by the model updated on the frames before it) differs
    # from the released predictions from the second test frame on
    updated = net.forward_features(frames, features, masks, tuple(masks.shape[-2:]), config.init_iterations,
                                   config.update_iterations)
    assert torch.equal(updated[0], logits[0])  # exact by construction: the same operations on the same inputs
    assert (updated[1] - f["training.predictions"][1]).abs().max() > 0.1


# --- box initialisation --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def box_fixture():
    return flat(load_official("lwl_boxinit.pt"))


@torch.no_grad()
def test_box_encoder_and_the_initial_mask(network_fixture, box_fixture):
    f = box_fixture
    net = network_from_released_state({**network_fixture["weights"], **f["weights"]})
    assert net.box_encoder is not None
    net64 = float64_twin(net)
    features = pyramid(f, "backbone_features")
    tm = net.target_features(features[16])
    assert_rounding_close(tm, net64.target_features(features[16].double()), f["tm_features"], "box: TM features")
    # the box rasterised from the mask (masks_to_bboxes + bbox_to_mask)
    rasterised = box_mask(f["mask"].numpy())
    np.testing.assert_array_equal(rasterised, f["box_mask"][0, 0].numpy().astype(np.uint8))
    encoding = net.box_encoder(f["tm_features"], f["box_mask"])
    encoding64 = net64.box_encoder(f["tm_features"].double(), f["box_mask"].double())
    assert_rounding_close(encoding, encoding64, f["mask_encoding"][0], "box: mask encoding")
    logits = net.segment(features, f["mask_encoding"][0], tuple(f["image"].shape[-2:]))
    assert_within("box: init mask logits", max_difference(logits, f["init_mask_logits"]), LWL_DECODER_ATOL)


# --- merging and the target box -------------------------------------------------------------------------
def scenario_logits(scenario: dict) -> torch.Tensor:
    """The merge's inputs: raw scores, or (in an object's first frame) its mask mapped to +-100."""
    logits = []
    for object_id in scenario["object_ids"]:
        given = scenario["inputs"][object_id]
        if "segmentation_raw" in given:
            logits.append(given["segmentation_raw"].float())
        else:
            logits.append((given["segmentation"].float() - 0.5) * 200.0)
    return torch.stack(logits)


def test_merge_labels_and_probabilities():
    fixture = load_official("lwl_merge.pt")
    for scenario in fixture["scenarios"]:
        labels, probs = merge_lwl(scenario_logits(scenario))
        ids = torch.tensor([0, *map(int, scenario["object_ids"])], dtype=torch.uint8)
        assert torch.equal(ids[labels], scenario["segmentation"]), scenario["n_objects"]
        for index, object_id in enumerate(scenario["object_ids"]):
            # elementwise: sigmoid, a product of <= 3, log-odds (|.| <= 16 after the clamp to 1e-7) and a softmax
            # over <= 4, a few roundings each, which exp carries into relative errors of up to 16 x a few u32
            torch.testing.assert_close(probs[index + 1], scenario["segmentation_raw"][object_id], rtol=1e-5,
                                       atol=16 * U32)


def test_target_boxes_from_the_merged_probabilities():
    """get_target_state ('var', 4 sigma, previous box under 100 pixels of mass) on each merged map."""
    from methods.lwl.crops import moments

    fixture = load_official("lwl_merge.pt")
    state = fixture["get_target_state"]
    for scenario in fixture["scenarios"]:
        for object_id in scenario["object_ids"]:
            probability = scenario["segmentation_raw"][object_id]
            if probability.sum() < state["min_mask_area"]:
                pos, size = state["fallback_pos"], state["fallback_target_sz"]
            else:
                pos, size = moments(probability)
            xywh = [float(pos[1] - (size[1] - 1) / 2), float(pos[0] - (size[0] - 1) / 2), float(size[1]),
                    float(size[0])]
            # both sides in float32 over 64 x 112 pixels (torch's cascade summation: relative error about
            # log2(7168) u32 = 13 u32 each) of coordinates up to 112: <= 1e-4 px apart
            np.testing.assert_allclose(xywh, scenario["target_bbox"][object_id], rtol=1e-5, atol=2e-4)


# --- the tracker's geometry ------------------------------------------------------------------------------
def test_the_tracker_crops_and_pastes_where_the_released_tracker_does(network_fixture, tmp_path, monkeypatch):
    """The released tracker on camel frames 0 and 4 at 80x144 crops (lwl_network.pt `crops.*`, `update.label`):
    our tracker, run on the same frames with the released logits of frame 4 in place of its decoder's,
    crops the first frame's mask and image (2x expanded crop around the rounded box centre, integer placement,
    inside_major shift) and, after the merge, the memory label of frame 4 (the search region from the 4-sigma
    box of frame 0's merged map with ONE scale clamped to 0.95, no half-cell shift on a 5x9 grid, nearest
    with zero padding) as the released tracker did. The fixture's init box used masks_to_bboxes (max - min
    + 1); the box our tracker reads (mask_box, as the released evaluation) is one pixel smaller, so the run
    is given the fixture's box."""
    from PIL import Image

    from methods.core.backbones import build_backbone
    from methods.lwl.networks import LWLNet, NetworkConfig, save_network
    from methods.runner import build_method
    from tests.test_lwl import ArraySequence
    from vos_datasets.shared import shared_dir

    f = network_fixture
    davis = shared_dir() / "data" / "davis2016" if shared_dir() is not None else None
    if davis is None or not (davis / "JPEGImages/480p/camel/00004.jpg").is_file():
        pytest.skip("needs ../shared/data/davis2016 (camel frames 0 and 4)")
    frames = [np.array(Image.open(davis / f"JPEGImages/480p/camel/{i:05d}.jpg").convert("RGB")) for i in (0, 4)]
    mask = (np.array(Image.open(davis / "Annotations/480p/camel/00000.png")) != 0).astype(np.uint8)
    torch.manual_seed(0)
    network = LWLNet(NetworkConfig(backbone="efficientnet_lite0", feature_channels=16, label_channels=4,
                                   decoder_widths=[16, 16, 16, 8]),
                     backbone=build_backbone("efficientnet_lite0", pretrained=False))
    save_network(tmp_path / "net.pt", network)
    method = build_method("lwl", {"device": "cpu", "crop_size": list(f["settings.image_sample_size_used"]),
                                  "init_iterations": 1, "update_iterations": 1, "checkpoint": str(tmp_path / "net.pt")})
    x, y, w, h = f["frames.init_bbox_xywh"]
    box = (x, y, w, h)
    assert box == (261.0, 85.0, 448.0, 345.0)
    monkeypatch.setattr("methods.lwl.tracker.mask_box", lambda _: box, raising=False)
    images, labels = [], []
    features, labels_and_weights = method.net.features, method.net.labels_and_weights

    def features_spy(batch):
        images.append(batch.clone())
        return features(batch)

    def labels_spy(masks, size):
        labels.append(masks.clone())
        return labels_and_weights(masks, size)

    method.net.features, method.net.labels_and_weights = features_spy, labels_spy
    method.net.segment = lambda pyramid, encoding, size: f["test.logits"].float()
    list(method.run_sequence(ArraySequence(frames, {0: mask})))
    assert torch.equal(labels[0], f["crops.init.mask"].float())
    bgr = images[0][:, [2, 1, 0]] - torch.tensor(f["settings.mean"]).view(1, 3, 1, 1)
    torch.testing.assert_close(bgr[..., :8, :8], f["crops.init.crop_image_bgr_normalised_patch"], rtol=0, atol=1e-4)
    torch.testing.assert_close(labels[1], f["update.label"].float(), rtol=0, atol=1e-6)


def test_the_target_state_of_the_second_frame_is_the_released_one(network_fixture):
    """crops.init / crops.test: the first state from the init box (pos = box centre, scale from 5x its area at
    80x144), the second from frame 0's merged map: 4-sigma centre, and its smaller 4-sigma area clamped as ONE
    scale to 0.95x, the size keeping the first box's aspect."""
    from methods.lwl.crops import Target

    f = network_fixture
    target = Target.from_box(tuple(f["frames.init_bbox_xywh"]), tuple(f["settings.image_sample_size_used"]))
    torch.testing.assert_close(target.pos, f["crops.init.pos"], rtol=0, atol=0)
    assert float(target.scale) == f["crops.init.target_scale"]
    torch.testing.assert_close(target.base_size, f["crops.init.base_target_sz"], rtol=1e-6, atol=0)
    assert torch.equal(f["crops.init.mask"].unique(), torch.tensor([0.0, 1.0]))
    from vos_datasets.shared import shared_dir

    davis = shared_dir() / "data" / "davis2016" if shared_dir() is not None else None
    if davis is None or not (davis / "Annotations/480p/camel/00000.png").is_file():
        pytest.skip("needs ../shared/data/davis2016 (camel frame 0)")
    from PIL import Image

    mask = torch.from_numpy((np.array(Image.open(davis / "Annotations/480p/camel/00000.png")) != 0).astype(np.float32))
    _, merged = merge_lwl(((mask - 0.5) * 200)[None])
    target.follow(merged[1])
    torch.testing.assert_close(target.pos, f["crops.test.pos"], rtol=1e-6, atol=1e-4)
    assert float(target.scale) == pytest.approx(f["crops.test.scale"], rel=1e-6)
    torch.testing.assert_close(target.size, f["crops.test.target_sz"], rtol=1e-6, atol=1e-4)
