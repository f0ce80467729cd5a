"""FRTM's target model D(x; w) = w2 * (w1 * x) and its online loss (paper §3.1, eq. 1, 2 and 4).

w1 is a 1x1 convolution from the backbone's stride-16 features to c channels, w2 a 3x3 convolution to one
score channel, no biases. The loss over the sample memory M = {(x_k, y_k, gamma_k)} is

    L(w) = sum_k gamma_k ||v_k . (U(D(x_k)) - y_k)||^2 + sum_j lambda_j ||w_j||^2

written as residuals for Gauss-Newton (methods.core.gauss_newton): sqrt(gamma_k) v_k (U(D(x_k)) - y_k)
and sqrt(lambda_j) w_j. U is bilinear upsampling (align_corners=False) to the label size.

U is applied as two matrix products, A_h s A_w^T (`upsample_bilinear`): bilinear interpolation is separable
and linear, and A_h, A_w are F.interpolate's own weights (read off by interpolating an identity matrix), so
the result equals F.interpolate to float rounding. Why: on the CPU, F.interpolate's backward at the label
size took about a fifth of FRTM's inference time (Gauss-Newton runs it twice per CG iteration over up to
80 full-resolution samples); with the matrix form Ours' updates cost 65 instead of 102 ms a frame and Ours
runs at 4.95 instead of 4.16 FPS (240x432, 2 CPU threads; benchmarks/RESULTS-speed.md). Setting
`upsampling: interpolate` uses F.interpolate itself, as the released code: the 10-iteration CG solves
amplify a rounding difference of 1e-16 to ~1e-3 (the released code itself differs by 1e-2 between thread
counts), so only that path reproduces the released float64 numbers to ~1e-15 (tests/test_official_frtm.py).

Decisions (see docs/frtm.md and METHODS.md §1.2):
- Pixel weights v: the paper prints kappa = min(kappa_min, kappa_hat), which would down-weight large
  objects and never help small ones, against its own stated aim; the released code uses
  max(kappa_hat, kappa_min), so small objects get at least kappa_min of the loss mass. We follow the code.
  v enters the residual as the square root of the mass ratio, so that ||v . r||^2 weighs each pixel by it.
- Regularisation: the released code puts lambda_j w_j (no square root) into the residuals with
  lambda = (1e-4, 1e-2); we keep the paper's sqrt(lambda_j) w_j and set lambda = (1e-8, 1e-4), the same loss.
- Initialisation (setting `init`): "code" (default), the released code's nn.Conv2d default,
  kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)); "kaiming_normal", the paper's words (§3.5). Either is
  drawn from our own generator seeded per object (deterministic runs); the released code draws from the
  global RNG before seeding it. Why the code's: Kaiming normal has sqrt(6) the spread per layer (first
  scores ~6x larger) and the five Gauss-Newton steps stop far from the optimum (blackswan, K=20, 240x432:
  loss 1407 against 1000 with the code's init; converged 955). `initial_weights` starts from given (w1, w2) instead.
- CG carries its state across Gauss-Newton steps and updates with the forgetting factor
  0.9^cg_forgetting_rate (methods.core.gauss_newton): 750 at inference (a restart in practice), 75 in the
  released training's target models.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from methods.core.gauss_newton import GaussNewtonCG, forgetting_factor
from methods.frtm.settings import TARGET_INITS, TargetModelSettings  # noqa: F401 (kept without torch)

MIN_FOREGROUND_PIXELS = 10  # below this the label counts as empty (released code)


def pixel_weights(labels: torch.Tensor, kappa_min: float = 0.1, validity: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (4): per-pixel weights v (B, H, W) for binary labels (B, H, W) so that the target keeps at least
    kappa_min of the loss mass. Large targets (fraction >= kappa_min) get v = 1 everywhere.

    validity (B, H, W), for sparse labels (the interactive tracker's scribbles): the fractions count the
    labelled pixels (validity > 0) only, so that the target's share is that of the labelled pixels; None:
    every pixel is labelled (the semi-supervised trackers)."""
    labels = (labels > 0.5).to(torch.float32)
    if validity is None:
        pixels = labels[0].numel()
        foreground = labels.flatten(1).sum(1)
    else:
        labelled = (validity > 0).to(torch.float32)
        pixels = labelled.flatten(1).sum(1).clamp(min=1)
        foreground = (labels * labelled).flatten(1).sum(1)
    fraction = foreground / pixels
    fraction = torch.where(foreground < MIN_FOREGROUND_PIXELS, torch.full_like(fraction, kappa_min), fraction)
    desired = torch.clamp(fraction, min=kappa_min)
    weight_foreground = (desired / fraction).view(-1, 1, 1)
    weight_background = ((1 - desired) / (1 - fraction).clamp(min=1e-12)).view(-1, 1, 1)
    return torch.sqrt(weight_foreground * labels + weight_background * (1 - labels))


@lru_cache(maxsize=32)
def _interpolation_matrix(size_in: int, size_out: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(size_out, size_in) weights of 1-D bilinear resizing (align_corners=False), taken from F.interpolate
    itself: resizing an identity matrix along one axis (the other keeps its size, where bilinear is exact)."""
    identity = torch.eye(size_in, dtype=dtype, device=device)[None, None]
    return F.interpolate(identity, size=(size_out, size_in), mode="bilinear", align_corners=False)[0, 0]


def upsample_bilinear(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """U: (B, 1, h, w) scores -> (B, H, W), equal to F.interpolate(scores, size, mode="bilinear",
    align_corners=False)[:, 0] up to float rounding, as A_h s A_w^T (see the module doc for why)."""
    h, w = scores.shape[-2:]
    rows = _interpolation_matrix(h, size[0], scores.dtype, scores.device)
    columns = _interpolation_matrix(w, size[1], scores.dtype, scores.device)
    # the cheaper association (multiply-adds per sample): resize the columns first, or the rows first
    if h * w * size[1] + size[0] * h * size[1] <= size[0] * h * w + size[0] * w * size[1]:
        return rows @ (scores[:, 0] @ columns.T)
    return (rows @ scores[:, 0]) @ columns.T




class TargetModel:
    """The online-trained target model of one object."""

    def __init__(self, in_channels: int, settings: TargetModelSettings, seed: int = 0,
                 device: torch.device | str = "cpu",
                 initial_weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """`initial_weights` (w1 (c, C, 1, 1), w2 (1, c, 3, 3)): start from these (any float dtype) instead
        of drawing them (e.g. the official fixture's); otherwise drawn per `settings.init` from a generator
        seeded with `seed`."""
        self.settings = settings
        self._update_optimiser: GaussNewtonCG | None = None  # created by the first update, then kept
        if initial_weights is not None:
            w1, w2 = (w.detach().clone() for w in initial_weights)
            if w1.shape != (settings.channels, in_channels, 1, 1) or w2.shape != (1, settings.channels, 3, 3):
                raise ValueError(f"initial weights of shapes {tuple(w1.shape)}, {tuple(w2.shape)} do not fit "
                                 f"c={settings.channels} and {in_channels} input channels")
            self.w1, self.w2 = w1.to(device), w2.to(device)
            return
        generator = torch.Generator().manual_seed(seed)
        w1 = torch.empty(settings.channels, in_channels, 1, 1)
        w2 = torch.empty(1, settings.channels, 3, 3)
        for w in (w1, w2):
            fan_in = w[0].numel()
            if settings.init == "code":  # nn.Conv2d's default: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
                w.uniform_(-fan_in**-0.5, fan_in**-0.5, generator=generator)
            elif settings.init == "kaiming_normal":  # fan_in, gain sqrt(2)
                w.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
            else:
                raise ValueError(f"target model init={settings.init!r}: choose one of {TARGET_INITS}")
        self.w1, self.w2 = w1.to(device), w2.to(device)

    # --- model -------------------------------------------------------------------------------------
    def project(self, features: torch.Tensor) -> torch.Tensor:
        """w1 * x: (B, C, h, w) -> (B, c, h, w)."""
        return F.conv2d(features * self.settings.feature_scale, self.w1)

    def scores_from_projection(self, projected: torch.Tensor) -> torch.Tensor:
        return F.conv2d(projected, self.w2, padding=1)

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """Coarse target scores s = D(x): (B, 1, h, w) at the feature resolution."""
        return self.scores_from_projection(self.project(features))

    # --- residuals ---------------------------------------------------------------------------------
    def _data_residuals(self, scores: torch.Tensor, labels: torch.Tensor, residual_weights: torch.Tensor) -> torch.Tensor:
        size = tuple(labels.shape[-2:])
        if self.settings.upsampling == "interpolate":  # the released code's op, rounding for rounding
            upsampled = F.interpolate(scores, size, mode="bilinear", align_corners=False)[:, 0]
        else:
            upsampled = upsample_bilinear(scores, size)
        return ((upsampled - labels) * residual_weights).flatten()

    def _regularisation(self, params: list[torch.Tensor], indices: tuple[int, ...]) -> list[torch.Tensor]:
        lambdas = self.settings.regularisation
        return [(lambdas[i] ** 0.5 * p).flatten() for i, p in zip(indices, params, strict=True)]

    def _prepare(self, labels: torch.Tensor, sample_weights: torch.Tensor, validity: torch.Tensor | None = None):
        """The samples of weight > 0 (the released code drops the others), their labels, and each pixel's
        residual weight sqrt(gamma_k) v_k (one tensor, so that Gauss-Newton multiplies once per pass).

        validity (K, H, W): each pixel's loss weight for sparse labels (0: unlabelled), entering the residual
        as its square root; v_k then balances over the labelled pixels (pixel_weights). None, or all ones,
        is the semi-supervised case, computed exactly as without it."""
        keep = sample_weights > 0
        labels = labels[keep]
        if validity is not None and bool((validity == 1).all()):
            validity = None
        if validity is not None:
            validity = validity[keep].to(labels.dtype)
        residual_weights = sample_weights[keep].to(labels.dtype).sqrt().view(-1, 1, 1)
        if self.settings.pixel_weighting:
            residual_weights = residual_weights * pixel_weights(labels, self.settings.kappa_min, validity)
        if validity is not None:
            residual_weights = residual_weights * validity.sqrt()
        return keep, labels, residual_weights

    # --- optimisation ------------------------------------------------------------------------------
    def initialise(self, features: torch.Tensor, labels: torch.Tensor, sample_weights: torch.Tensor,
                   validity: torch.Tensor | None = None) -> list[float]:
        """Learn w1 and w2 on the initial samples (K, C, h, w) / (K, H, W) with N_GN Gauss-Newton steps
        (validity: per-pixel loss weights of sparse labels, `_prepare`). Returns the loss before and after
        each step."""
        keep, labels, residual_weights = self._prepare(labels, sample_weights, validity)
        features = features[keep] * self.settings.feature_scale

        def residuals(params):
            w1, w2 = params
            scores = F.conv2d(F.conv2d(features, w1), w2, padding=1)
            return torch.cat([self._data_residuals(scores, labels, residual_weights),
                              *self._regularisation([w1, w2], (0, 1))])

        params = [self.w1, self.w2]
        optimiser = GaussNewtonCG(residuals, self.settings.preconditioner, self._forget_factor())
        losses = optimiser.run(params, self.settings.init_cg_iterations)
        self.w1, self.w2 = params
        return losses

    def _forget_factor(self) -> float:
        return forgetting_factor(self.settings.cg_forgetting_rate)

    def update(self, projected: torch.Tensor, labels: torch.Tensor, sample_weights: torch.Tensor,
               validity: torch.Tensor | None = None) -> list[float]:
        """One Gauss-Newton step on w2 only (w1 fixed) over the memory's projected features (K, c, h, w).
        The first call is the released code's filter-only pass at the end of init; its optimiser (and CG
        state) is kept for every later update, as the released Discriminator keeps `update_optimizer`."""
        keep, labels, residual_weights = self._prepare(labels, sample_weights, validity)
        projected = projected[keep]

        def residuals(params):
            (w2,) = params
            scores = F.conv2d(projected, w2, padding=1)
            return torch.cat([self._data_residuals(scores, labels, residual_weights),
                              *self._regularisation([w2], (1,))])

        params = [self.w2]
        if self._update_optimiser is None:
            self._update_optimiser = GaussNewtonCG(residuals, self.settings.preconditioner[1:], self._forget_factor())
        optimiser = self._update_optimiser
        optimiser.residuals = residuals  # the memory changed; the CG state carries over
        losses = optimiser.run(params, (self.settings.update_cg_iterations,))
        (self.w2,) = params
        return losses

    def state(self) -> dict[str, torch.Tensor]:
        return {"w1": self.w1.cpu(), "w2": self.w2.cpu()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.w1, self.w2 = state["w1"].to(self.w1.device), state["w2"].to(self.w2.device)
