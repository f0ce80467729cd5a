"""The refinement network R (methods.core.refinement): shapes, per-object batching, gradients, LWL options."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from methods.core.refinement import RefinementNetwork, _resize, _two_phases_autograd, pyramid_up_bicubic

LITE0 = (320, 112, 40, 24)
RESNET = (2048, 1024, 512, 256)
STRIDES = (32, 16, 8, 4)


def make_features(channels, size, rounding=math.ceil, batch=1, strides=STRIDES, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = size
    return [
        torch.randn(batch, c, rounding(h / s), rounding(w / s), generator=g)
        for c, s in zip(channels, strides, strict=True)
    ]


def make_scores(size, batch=1, channels=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, math.ceil(size[0] / 16), math.ceil(size[1] / 16), generator=g)


@pytest.fixture(scope="module")
def lite0_net():
    torch.manual_seed(0)
    return RefinementNetwork(LITE0).eval()


@pytest.mark.parametrize("size", [(240, 432), (241, 433), (64, 96), (33, 47)])
@pytest.mark.parametrize("rounding", [math.ceil, math.floor])
def test_output_shape_lite0(lite0_net, size, rounding):
    feats = make_features(LITE0, size, rounding)
    with torch.no_grad():
        out = lite0_net(feats, make_scores(size), size)
    assert out.shape == (1, 1, *size)
    assert torch.isfinite(out).all()


def test_output_shape_resnet_batch2():
    torch.manual_seed(0)
    net = RefinementNetwork(RESNET).eval()
    size = (65, 97)
    with torch.no_grad():
        out = net(make_features(RESNET, size, batch=2), make_scores(size, batch=2), size)
    assert out.shape == (2, 1, *size)


def test_per_object_scores_expand_features(lite0_net):
    size = (97, 129)
    feats = make_features(LITE0, size)
    scores = make_scores(size, batch=3)
    with torch.no_grad():
        together = lite0_net(feats, scores, size)
        separate = torch.cat([lite0_net(feats, scores[i : i + 1], size) for i in range(3)])
    assert together.shape == (3, 1, *size)
    torch.testing.assert_close(together, separate, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(together[0], together[1])  # the scores matter


def test_bad_batch_raises(lite0_net):
    size = (64, 64)
    with pytest.raises(ValueError):
        lite0_net(make_features(LITE0, size, batch=2), make_scores(size, batch=3), size)
    with pytest.raises(ValueError):
        lite0_net(make_features(LITE0, size)[:3], make_scores(size), size)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = RefinementNetwork(LITE0).train()
    size = (64, 96)
    net(make_features(LITE0, size, batch=2), make_scores(size, batch=2), size).sum().backward()
    params = dict(net.named_parameters())
    assert params
    for name, p in params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_lwl_configuration():
    torch.manual_seed(0)
    levels = (1024, 512, 256, 64)  # LWL: strides 16, 8, 4, 2 of a ResNet
    strides = (16, 8, 4, 2)
    net = RefinementNetwork(levels, score_channels=16, widths=(256, 128, 64, 32), project_between_levels=True)
    net.eval()
    size = (61, 83)
    feats = make_features(levels, size, strides=strides)
    with torch.no_grad():
        out = net(feats, make_scores(size, batch=2, channels=16), size)
    assert out.shape == (2, 1, *size)
    assert net.upsampler.conv1.in_channels == 32


def test_differing_widths_need_projection():
    with pytest.raises(ValueError):
        RefinementNetwork(LITE0, widths=(128, 64, 64, 64))
    with pytest.raises(ValueError):
        RefinementNetwork(LITE0, widths=(64, 64))


def test_eval_is_deterministic(lite0_net):
    size = (120, 216)
    feats, scores = make_features(LITE0, size), make_scores(size)
    with torch.no_grad():
        a = lite0_net(feats, scores, size)
        b = lite0_net(feats, scores, size)
    assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_resizing_to_the_own_size_hands_back_what_interpolate_computes(mode):
    """At the input's own size interpolation weighs each pixel by 1 and its neighbours by 0: F.interpolate gives
    the input and passes the gradient through, bit for bit, so _resize skips it (R's last resize in training)."""
    x = torch.randn(2, 3, 20, 36, generator=torch.Generator().manual_seed(0), requires_grad=True)
    incoming = torch.randn(2, 3, 20, 36, generator=torch.Generator().manual_seed(1))
    interpolated = F.interpolate(x, size=(20, 36), mode=mode, align_corners=False)
    interpolated.backward(incoming)
    assert _resize(x, (20, 36), mode) is x
    assert torch.equal(interpolated, x) and torch.equal(x.grad, incoming)


@pytest.mark.parametrize("shape", [(1, 64, 40, 72), (2, 5, 7, 9), (3, 16, 30, 50)])
def test_upsamplers_written_out_backward_gives_autograds_bits(shape):
    """pyramid_up_bicubic's written-out forward and backward (_TwoPhases) compute the products and sums of the
    autograd form in the same order: the same bits, so R trains to the same weights as before it."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, requires_grad=True)
    incoming = torch.randn(shape[0], shape[1], 2 * shape[2], 2 * shape[3], generator=g)
    reference = pyramid_up_bicubic(x, two_phases=_two_phases_autograd)
    reference.backward(incoming)
    reference_grad, x.grad = x.grad, None
    upsampled = pyramid_up_bicubic(x)
    upsampled.backward(incoming)
    assert torch.equal(upsampled, reference) and torch.equal(x.grad, reference_grad)
