"""The refinement network computes what the released networks compute: FRTM's R (frtm-vos SegNetwork,
ResNet-18 widths) and LWL's decoder (pytracking LWTLDecoder), loaded from weights named as in the released
checkpoints, on the official fixtures' stored features. Tolerances (tests/official_fixtures.py): logits within
REPLAY_MARGIN x the official code's own replay difference between thread counts (fixtures' README, "Tolerances
observed"); R's level outputs, which the replays do not report, within ROUNDING_MARGIN x our own float32 error
against the same network in float64."""

from __future__ import annotations

import pytest
import torch

from methods.core.refinement import RefinementNetwork, pyramid_up_bicubic
from tests.official_fixtures import (
    FRTM_REFINER_ATOL,
    LWL_DECODER_ATOL,
    U32,
    assert_within,
    float32_tolerance,
    float64_twin,
    load_official,
)

FRTM_LEVELS = ["layer5", "layer4", "layer3", "layer2"]  # frtm-vos names, deepest first (stride 32..4)
LWL_LEVELS = ["layer4", "layer3", "layer2", "layer1"]  # pytracking names, deepest first


def _without_prefix(weights: dict, prefix: str) -> dict:
    return {k[len(prefix):]: (v.float() if v.is_floating_point() else v)
            for k, v in weights.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def frtm():
    fixture = load_official("frtm_refiner.pt")
    weights = _without_prefix(fixture["weights"], "refiner.")
    channels = [fixture["features"][level].shape[1] for level in FRTM_LEVELS]
    net = RefinementNetwork(channels, score_channels=1, upsampler="frtm").eval()
    net.load_official_state_dict(weights, FRTM_LEVELS)
    return net, fixture


@pytest.mark.parametrize("frame", [0, 1])
def test_frtm_refiner_logits(frtm, frame):
    net, fixture = frtm
    features = [fixture["features"][level][frame : frame + 1].float() for level in FRTM_LEVELS]
    with torch.no_grad():
        logits = net(features, fixture["scores"][frame : frame + 1], tuple(fixture["image_size"]))
    expected = fixture["logits"][frame : frame + 1]
    assert logits.shape == expected.shape
    assert_within(f"R logits, frame {frame}", float((logits - expected).abs().max()), FRTM_REFINER_ATOL)


def test_frtm_refiner_level_outputs(frtm):
    """The deepest two levels' outputs (RRB2), to localise a mismatch before the upsampler."""
    net, fixture = frtm
    ours, ours64 = level_outputs(net, fixture, torch.float32), level_outputs(float64_twin(net), fixture, torch.float64)
    for out, out64, level in zip(ours, ours64, ["layer5", "layer4"], strict=True):
        difference = float((out - fixture["frame0_rrb2_out"][level]).abs().max())
        assert_within(f"R level output {level}", difference, float32_tolerance(out, out64))


def level_outputs(net, fixture, dtype) -> list[torch.Tensor]:
    """The outputs of R's deepest two levels (RRB2) on frame 0, computed in `dtype`."""
    outputs = []
    hooks = [net.rrb_out[i].register_forward_hook(lambda module, args, out: outputs.append(out)) for i in (0, 1)]
    with torch.no_grad():
        net([fixture["features"][level][:1].to(dtype) for level in FRTM_LEVELS], fixture["scores"][:1].to(dtype),
            tuple(fixture["image_size"]))
    for hook in hooks:
        hook.remove()
    return outputs


def test_frtm_refiner_two_objects_share_one_frame(frtm):
    """Two targets' scores on one frame's features (the released `multi_targets` path) = two single calls."""
    net, fixture = frtm
    features = [fixture["features"][level][:1].float() for level in FRTM_LEVELS]
    scores = torch.cat([fixture["scores"][:1], fixture["scores"][1:2]])
    size = tuple(fixture["image_size"])
    with torch.no_grad():
        both = net(features, scores, size)
        single = net(features, scores[1:2], size)
    # batch-size-dependent summation order only: bounded as another thread count's (rule 1)
    assert_within("one frame, two objects", float((both[1:2] - single).abs().max()), FRTM_REFINER_ATOL)


def test_released_weights_with_a_wrong_key_are_refused(frtm):
    net, fixture = frtm
    weights = _without_prefix(fixture["weights"], "refiner.")
    weights["TSE.layer6.reduce.0.weight"] = weights.pop("TSE.layer5.reduce.0.weight")
    with pytest.raises(ValueError, match="missing .*TSE.layer5.reduce.0.weight.*unexpected .*TSE.layer6"):
        net.load_official_state_dict(weights, FRTM_LEVELS)


def test_pyramid_up_bicubic_is_bicubic_inside_the_image():
    """Away from the border the released x2 kernel is plain bicubic (a = -0.75) at half-pixel centres, as
    F.interpolate computes it: output pixel j samples source position j/2 - 1/4."""
    x = torch.randn(2, 3, 9, 13, generator=torch.Generator().manual_seed(0))
    up = pyramid_up_bicubic(x)
    reference = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert up.shape == reference.shape == (2, 3, 18, 26)
    # two float32 orders of the same 16-tap sums: each within 16 u sum|w x| (Higham's worst case for a sum of 16
    # terms), with sum|w| = 1.28^2 for the a = -0.75 kernels at offsets 1/4 and 3/4
    bound = 2 * 16 * U32 * 1.28**2 * float(x.abs().max())
    assert_within("bicubic inside the image", float((up - reference)[..., 4:-4, 4:-4].abs().max()), bound)


@pytest.fixture(scope="module")
def lwl():
    fixture = load_official("lwl_network.pt")
    weights = _without_prefix(fixture["weights"], "decoder.")
    channels = [fixture["backbone_features_test"][level].shape[1] for level in LWL_LEVELS]
    widths = [weights[f"RRB1.{level}.conv1x1.weight"].shape[0] for level in LWL_LEVELS]
    net = RefinementNetwork(channels, score_channels=16, widths=widths, project_between_levels=True,
                            upsampler="lwl").eval()
    net.load_official_state_dict(weights, LWL_LEVELS)
    return net, fixture


@pytest.mark.parametrize(("encoding", "expected"), [("test.mask_encoding", "test.logits"),
                                                    ("update.test_mask_encoding_after", "update.test_logits_after")])
def test_lwl_decoder_logits(lwl, encoding, expected):
    net, fixture = lwl
    group, name = encoding.split(".")
    scores = fixture[group][name][0]  # (frames, sequences, D, h, w) -> (sequences, D, h, w)
    out_group, out_name = expected.split(".")
    target = fixture[out_group][out_name][0]
    features = [fixture["backbone_features_test"][level].float() for level in LWL_LEVELS]
    with torch.no_grad():
        logits = net(features, scores, tuple(target.shape[-2:]))
    assert_within(expected, float((logits - target).abs().max()), LWL_DECODER_ATOL)


def test_frtm_head_from_a_released_model_dict():
    """FRTM's head reads a released checkpoint's `model` dict as it is (keys `refiner.*`), tells ResNet-18
    from ResNet-101 as evaluate.py does, and computes the released logits."""
    from methods.frtm.networks import RefinerHead

    fixture = load_official("frtm_refiner.pt")
    model = {k: (v.float() if v.is_floating_point() else v) for k, v in fixture["weights"].items()}
    head, backbone = RefinerHead.from_released(model)
    assert backbone == "resnet18"
    pyramid = {stride: fixture["features"][level][:1].float()
               for stride, level in zip((32, 16, 8, 4), FRTM_LEVELS, strict=True)}
    with torch.no_grad():
        logits = head(pyramid, fixture["scores"][:1], tuple(fixture["image_size"]))
    assert_within("RefinerHead logits", float((logits - fixture["logits"][:1]).abs().max()), FRTM_REFINER_ATOL)
    with pytest.raises(ValueError, match="not a released FRTM refiner"):
        RefinerHead.from_released({"decoder.x": torch.zeros(1), **model})
