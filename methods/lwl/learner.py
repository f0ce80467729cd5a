"""LWL's few-shot learner A (paper §3.3): steepest descent on the target model's loss, differentiable.

The target model T_tau(x) = x * tau is a linear K x K convolution from C feature channels to D channels.
Its loss over the few-shot training set {(x_t, y_t, gamma_t)} (eq. 3, with the per-frame weights gamma of
§3.5) is, as the released code writes it (LWTLResidual: the residual is gamma_t W(y_t) (x_t * tau - E(y_t)),
so gamma enters the loss squared),

    L(tau) = 1/2 sum_t ||gamma_t W(y_t) . (x_t * tau - E(y_t))||^2 + lambda/2 ||tau||^2

and each iteration (eq. 4) steps along the gradient with the exact line-search step of this quadratic
(released GNSteepestDescent; with w_t = gamma_t W(y_t)):

    g = sum_t x_t *^T (w_t^2 . (x_t * tau - E)) + lambda tau
    alpha = ||g||^2 / (sum_t ||w_t . (x_t * g)||^2 + lambda ||g||^2)
    tau <- tau - alpha g

Every operation is an ordinary differentiable tensor operation (the transposed convolution x *^T is
torch.nn.grad.conv2d_weight, itself differentiable), so tau after N iterations is differentiable with
respect to the features, the labels E, the weights W and lambda: LWL trains end to end through it.

Each iteration needs x * g for the step length; since x * tau' = x * tau - alpha (x * g), the scores of the
next iterate come from it without another convolution (two convolutions per iteration instead of three;
the same arithmetic up to float rounding; the released code recomputes x * tau every iteration).

lambda is learned. The released code puts `reg * tau` into its residuals with `reg` learned and
initialised to 0.01, which is lambda = reg^2 in the paper's form; we keep that parameterisation (lambda
stays non-negative) and its initial value. The step is clamped to a denominator of at least 1e-8 (code).
With a `trace` dict the learner records, per iteration, what the released optimiser reports: the loss
sum(r^2) / numel(r) over data and regulariser residuals together (before each step and after the last),
||g||^2 and ||h||^2 (the step's numerator and denominator), and every iterate tau.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIN_DENOMINATOR = 1e-8


class FewShotLearner(nn.Module):
    def __init__(self, filter_size: int = 3, regularisation_init: float = 0.01) -> None:
        super().__init__()
        self.filter_size = filter_size
        self.reg = nn.Parameter(torch.tensor(float(regularisation_init)))

    @property
    def regularisation(self) -> torch.Tensor:
        """lambda of eq. (3)."""
        return self.reg * self.reg

    def predict(self, tau: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """T_tau(x): features (N, C, h, w) -> (N, D, h, w)."""
        return F.conv2d(features, tau, padding=self.filter_size // 2)

    def zero_model(self, features: torch.Tensor, channels: int) -> torch.Tensor:
        """tau^0 = 0 (paper §3.5): (D, C, K, K)."""
        k = self.filter_size
        return features.new_zeros(channels, features.shape[1], k, k)

    def loss(self, tau: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
             sample_weights: torch.Tensor) -> torch.Tensor:
        """Eq. (3). features (N, C, h, w); labels and weights (N, D, h, w); sample_weights gamma (N,)."""
        residual = sample_weights.view(-1, 1, 1, 1) * weights * (self.predict(tau, features) - labels)
        return 0.5 * residual.pow(2).sum() + 0.5 * self.regularisation * tau.pow(2).sum()

    def forward(self, tau: torch.Tensor | None, features: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor, sample_weights: torch.Tensor, iterations: int,
                trace: dict | None = None) -> torch.Tensor:
        """tau after `iterations` steepest-descent steps (eq. 4) from `tau`, or from tau^0 = 0 for None.
        trace: a dict to fill with "losses", "ip_gg", "ip_hh" and "iterates" (see the module docstring)."""
        lam = self.regularisation
        w = sample_weights.view(-1, 1, 1, 1) * weights  # the data residual's weight, gamma W(y)
        w2 = w * w
        padding = self.filter_size // 2
        if tau is None:  # tau^0 = 0, whose scores are 0: no convolution needed
            tau, scores = self.zero_model(features, labels.shape[1]), torch.zeros_like(labels)
        else:
            scores = self.predict(tau, features)
        if trace is not None:
            trace.setdefault("losses", []), trace.setdefault("ip_gg", []), trace.setdefault("ip_hh", [])
            trace.setdefault("iterates", []).append(tau)
        for _ in range(iterations):
            residual = scores - labels
            if trace is not None:
                trace["losses"].append(self._released_loss(w * residual, tau))
            gradient = torch.nn.grad.conv2d_weight(features, tau.shape, w2 * residual, padding=padding) + lam * tau
            gradient_scores = self.predict(gradient, features)
            gradient_norm = gradient.pow(2).sum()
            denominator = (w2 * gradient_scores.pow(2)).sum() + lam * gradient_norm
            alpha = gradient_norm / denominator.clamp(min=MIN_DENOMINATOR)
            tau = tau - alpha * gradient
            scores = scores - alpha * gradient_scores  # = x * tau, by linearity
            if trace is not None:
                trace["ip_gg"].append(gradient_norm.detach())
                trace["ip_hh"].append(denominator.detach())
                trace["iterates"].append(tau)
        if trace is not None:
            trace["losses"].append(self._released_loss(w * (scores - labels), tau))
        return tau

    def _released_loss(self, data_residual: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """The loss GNSteepestDescent reports: sum r^2 / numel over data and regulariser residuals together."""
        squares = data_residual.pow(2).sum() + self.regularisation * tau.pow(2).sum()
        return (squares / (data_residual.numel() + tau.numel())).detach()
