"""The target model's optimiser: CG reaches the least-squares solution, Gauss-Newton lowers the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from methods.core.gauss_newton import GaussNewtonCG
from methods.frtm.target_model import TargetModel, TargetModelSettings, pixel_weights, upsample_bilinear


def _linear_problem(seed=0):
    generator = torch.Generator().manual_seed(seed)
    projected = torch.randn(3, 4, 6, 7, generator=generator, dtype=torch.float64)
    labels = (torch.rand(3, 12, 14, generator=generator, dtype=torch.float64) > 0.7).double()
    gammas = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    return projected, labels, gammas


def test_cg_on_the_linear_subproblem_reaches_the_least_squares_solution():
    projected, labels, gammas = _linear_problem()
    settings = TargetModelSettings(channels=4, update_cg_iterations=36)  # 36 = number of w2 parameters
    model = TargetModel(in_channels=5, settings=settings, seed=1)
    model.w2 = model.w2.double()
    model.update(projected, labels, gammas)

    # Closed form: the residual is affine in w2, r(w2) = J w2 + r0; minimise ||J w2 + r0||^2 explicitly.
    v = pixel_weights(labels).double()

    def residual(w2_flat):
        scores = F.conv2d(projected, w2_flat.view(1, 4, 3, 3), padding=1)
        up = F.interpolate(scores, size=(12, 14), mode="bilinear", align_corners=False)[:, 0]
        data = ((up - labels) * v * gammas.sqrt().view(-1, 1, 1)).flatten()
        return torch.cat([data, settings.regularisation[1] ** 0.5 * w2_flat])

    zero = torch.zeros(36, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(residual, zero)
    r0 = residual(zero)
    solution = torch.linalg.lstsq(jacobian, -r0[:, None]).solution[:, 0]
    assert torch.allclose(model.w2.flatten(), solution, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("low", "high"), [((15, 27), (240, 432)), ((6, 7), (12, 14)), ((5, 9), (23, 31)),
                                           ((12, 14), (5, 6))])
def test_matrix_upsampling_equals_torch_bilinear_in_value_and_gradient(low, high):
    """U as A_h s A_w^T gives F.interpolate's values and gradients (integer and odd ratios, and shrinking)."""
    generator = torch.Generator().manual_seed(4)
    scores = torch.randn(3, 1, *low, generator=generator, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, *high, generator=generator, dtype=torch.float64)
    reference = F.interpolate(scores, size=high, mode="bilinear", align_corners=False)[:, 0]
    ours = upsample_bilinear(scores, high)
    assert ours.shape == reference.shape
    assert torch.allclose(ours, reference, rtol=0, atol=1e-12)
    (expected,) = torch.autograd.grad((reference * weights).sum(), scores)
    (got,) = torch.autograd.grad((ours * weights).sum(), scores)
    assert torch.allclose(got, expected, rtol=0, atol=1e-10)


def test_cg_with_too_few_iterations_does_not_reach_it():
    """The test above can fail: two CG iterations stop short of the optimum."""
    projected, labels, gammas = _linear_problem()
    exact = TargetModel(5, TargetModelSettings(channels=4, update_cg_iterations=36), seed=1)
    short = TargetModel(5, TargetModelSettings(channels=4, update_cg_iterations=2), seed=1)
    for model in (exact, short):
        model.w2 = model.w2.double()
        model.update(projected, labels, gammas)
    assert not torch.allclose(exact.w2, short.w2, rtol=1e-3)


def test_conjugate_gradient_solves_a_small_spd_system():
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    matrix = a @ a.T + 6 * torch.eye(6, dtype=torch.float64)
    rhs = torch.randn(6, generator=generator, dtype=torch.float64)
    optimiser = GaussNewtonCG(residuals=lambda params: params[0])
    (x,) = optimiser.conjugate_gradient(lambda p: [matrix @ p[0]], [rhs], iterations=6)
    assert torch.allclose(x, torch.linalg.solve(matrix, rhs), atol=1e-9)


def test_gauss_newton_fits_a_nonlinear_curve_monotonically():
    t = torch.linspace(0, 1, 50, dtype=torch.float64)
    data = 2.0 * torch.exp(-1.5 * t)
    optimiser = GaussNewtonCG(lambda p: p[0] * torch.exp(-p[1] * t) - data)
    params = [torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)]
    losses = optimiser.run(params, [2] * 8)
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:], strict=False))
    assert float(params[0]) == pytest.approx(2.0, abs=1e-6) and float(params[1]) == pytest.approx(1.5, abs=1e-6)


def test_pixel_weights_give_small_objects_kappa_min_of_the_mass():
    labels = torch.zeros(2, 100, 100)
    labels[0, :10, :10] = 1  # 1 % of the image
    labels[1, :50, :] = 1  # 50 %: weights stay 1
    v = pixel_weights(labels, kappa_min=0.1)
    mass = v.square()
    foreground_share = (mass[0] * labels[0]).sum() / mass[0].sum()
    assert float(foreground_share) == pytest.approx(0.1, rel=1e-5)
    assert torch.allclose(v[1], torch.ones(100, 100))


@pytest.mark.shared
def test_gauss_newton_lowers_the_loss_at_every_step_on_real_features(shared):
    from methods.core.augmentation import augment_first_frame, initial_sample_weights
    from methods.core.backbones import build_backbone
    from vos_datasets.davis import DavisDataset

    sequence = DavisDataset(shared / "data/davis2016", split="val", year="2016", sequences=["blackswan"])
    sequence = next(iter(sequence))
    image = sequence.read_image(sequence.frames[0])[::2, ::2].copy()
    mask = sequence.read_mask(sequence.frames[0])[::2, ::2] == 1
    samples = augment_first_frame(image, mask, n_samples=5, seed=0)
    backbone = build_backbone("efficientnet_lite0")
    features = torch.cat([backbone.extract(s.image)[16] for s in samples])
    labels = torch.from_numpy(np.stack([s.mask for s in samples])).float()
    weights = torch.from_numpy(initial_sample_weights(len(samples))).float()

    model = TargetModel(features.shape[1], TargetModelSettings(channels=32), seed=0)
    losses = model.initialise(features, labels, weights)
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < 0.5 * losses[0]
    # The learned model separates the object from the background on the original frame.
    scores = F.interpolate(model.scores(features[:1]), size=mask.shape, mode="bilinear", align_corners=False)[0, 0]
    inside, outside = float(scores[torch.from_numpy(mask)].mean()), float(scores[~torch.from_numpy(mask)].mean())
    assert inside > outside + 0.3

    # Updates (w2 only) on new samples also lower the loss.
    projected = model.project(features)
    update_losses = model.update(projected, labels, weights)
    assert update_losses[1] <= update_losses[0]
