"""LWL's few-shot learner: steepest descent with the exact step (eq. 4), differentiable end to end."""

from __future__ import annotations

import torch

from methods.lwl.learner import FewShotLearner


def small_problem(dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 3, 5, 6, generator=generator, dtype=dtype)
    labels = torch.randn(2, 2, 5, 6, generator=generator, dtype=dtype)
    weights = torch.rand(2, 2, 5, 6, generator=generator, dtype=dtype) + 0.5
    gammas = torch.tensor([0.7, 0.3], dtype=dtype)
    return features, labels, weights, gammas


@torch.no_grad()
def test_the_loss_falls_at_every_step_and_the_step_is_the_exact_line_minimum():
    learner = FewShotLearner().double()
    features, labels, weights, gammas = small_problem()
    tau = learner.zero_model(features, 2)
    losses = [float(learner.loss(tau, features, labels, weights, gammas))]
    for _ in range(10):
        new = learner(tau, features, labels, weights, gammas, iterations=1)
        losses.append(float(learner.loss(new, features, labels, weights, gammas)))
        # exact line search: moving a little further or less along the same step raises the loss
        step = new - tau
        for factor in (0.9, 1.1):
            assert float(learner.loss(tau + factor * step, features, labels, weights, gammas)) > losses[-1]
        tau = new
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses


def test_the_gradient_is_that_of_eq_3():
    """The explicit gradient (transposed convolution) equals autograd's gradient of the loss."""
    learner = FewShotLearner().double()
    features, labels, weights, gammas = small_problem(seed=1)
    tau = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    (autograd,) = torch.autograd.grad(learner.loss(tau, features, labels, weights, gammas), tau)
    # one step of size alpha along -g: recover g from the step and compare directions
    with torch.no_grad():
        step = learner(tau.detach(), features, labels, weights, gammas, iterations=1) - tau.detach()
    cosine = torch.nn.functional.cosine_similarity(-step.flatten(), autograd.flatten(), dim=0)
    assert float(cosine) > 1 - 1e-10


def test_the_learner_is_differentiable_in_features_labels_weights_and_lambda():
    """gradcheck of tau after 3 steps with respect to x, E(y), W(y) and lambda's parameter (float64)."""
    learner = FewShotLearner().double()
    features, labels, weights, gammas = small_problem(seed=2)

    def learned(features, labels, weights, reg):
        tau = learner.zero_model(features, labels.shape[1])
        return torch.func.functional_call(learner, {"reg": reg}, (tau, features, labels, weights, gammas, 3))

    inputs = tuple(x.clone().requires_grad_(True)
                   for x in (features, labels, weights, torch.tensor(0.3, dtype=torch.float64)))
    assert torch.autograd.gradcheck(learned, inputs, eps=1e-6, atol=1e-5)


def test_gradcheck_fails_when_the_graph_is_cut():
    """The check above can fail: a learner that detaches its step is caught."""
    learner = FewShotLearner().double()
    features, labels, weights, gammas = small_problem(seed=3)

    def cut(features):
        tau = learner.zero_model(features, labels.shape[1])
        return learner(tau, features.detach() + 0 * features, labels, weights, gammas, 2).detach() + 0 * features.sum()

    assert not torch.autograd.gradcheck(cut, (features.clone().requires_grad_(True),), eps=1e-6, atol=1e-5,
                                        raise_exception=False)


def direct_steepest_descent(learner, tau, features, labels, weights, gammas, iterations):
    """Eq. (4) as the released code writes it: x * tau recomputed at every iteration; gamma multiplies the
    residual (LWTLResidual), so it enters squared."""
    w = gammas.view(-1, 1, 1, 1) * weights
    for _ in range(iterations):
        residual = learner.predict(tau, features) - labels
        gradient = torch.nn.grad.conv2d_weight(features, tau.shape, w**2 * residual, padding=1)
        gradient = gradient + learner.regularisation * tau
        direction = w * learner.predict(gradient, features)
        alpha = gradient.pow(2).sum() / (direction.pow(2).sum() + learner.regularisation * gradient.pow(2).sum())
        tau = tau - alpha * gradient
    return tau


@torch.no_grad()
def test_the_scores_carried_between_iterations_give_the_released_codes_iterates():
    """The learner updates x * tau by linearity instead of convolving again: same iterates, from
    None (tau^0 = 0, scores start at 0), from an explicit zero tau and from a non-zero tau."""
    learner = FewShotLearner().double()
    features, labels, weights, gammas = small_problem(seed=4)
    zero = learner.zero_model(features, 2)
    for start in (None, zero, 0.1 * torch.randn(2, 3, 3, 3, dtype=torch.float64)):
        for iterations in (1, 3, 20):
            expected = direct_steepest_descent(learner, zero if start is None else start, features, labels, weights,
                                               gammas, iterations)
            torch.testing.assert_close(learner(start, features, labels, weights, gammas, iterations), expected,
                                       rtol=1e-10, atol=1e-12)
