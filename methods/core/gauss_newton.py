"""Gauss-Newton with conjugate gradient for least-squares problems given as residuals (FRTM eq. 3).

The loss is L(w) = 1/2 ||r(w)||^2 for a residual vector r (data rows and regularisation rows together).
One Gauss-Newton step minimises the quadratic model

    L(w + dw) ~ 1/2 dw^T J^T J dw + dw^T J^T r + 1/2 r^T r

over dw with a few conjugate-gradient iterations, then sets w <- w + dw (step length 1, as the released
code does). J is never formed: the products J^T g and J^T J p come from autograd (notes §1.3):

    u = J^T g          grad of r w.r.t. w with grad_outputs g, a detached copy of r that requires grad
    J p                grad of u w.r.t. g with grad_outputs p (double backward: u is linear in g)
    J^T (J p)          grad of r w.r.t. w with grad_outputs J p

CG follows the released code (andr345/frtm-vos model/optimizer.py, fletcher_reeves=False, standard_alpha):
- preconditioned with a constant per parameter block (FRTM: 1e-4 for w1, 1e-2 for w2): z = r / m;
- Polak-Ribiere beta = (rho - <r_prev, z>) / rho_prev, clamped at zero;
- the CG state (direction p, rho, r_prev) is CARRIED from one Gauss-Newton step to the next and from one
  `run` to the next, and at the start of every CG solve rho is divided by a forgetting factor
  (1 - 0.1)^CG_forgetting_rate, which shrinks the first beta. At inference (rate 750, factor 4.8e-35) this
  is a restart in practice (in float32 rho / factor overflows to inf and beta is exactly 0; in float64 beta
  is ~1e-35); in the released training (train.py, rate 75, factor 3.7e-4) the old direction still counts.
  A factor of 0 restarts every solve (the released code's "reset_state").
- each solve starts from dw = 0.
Two safeguards the released code does not have: a solve stops early when rho <= 0 (the residual has
vanished) or the curvature p^T A p <= 0; neither happens on a well-posed problem.

The same optimiser serves any residual function of any parameters; tests reuse its matrix-free products.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Residuals = Callable[[Sequence[torch.Tensor]], torch.Tensor]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    # flat vector products summed block by block, as the released ip_input (same rounding)
    return sum(x.reshape(-1) @ y.reshape(-1) for x, y in zip(a, b, strict=True))


def forgetting_factor(forgetting_rate: float, learning_rate: float = 0.1) -> float:
    """The released code's direction_forget_factor = (1 - precond_lr) ** CG_forgetting_rate."""
    return (1.0 - learning_rate) ** forgetting_rate


class GaussNewtonCG:
    """Minimise 1/2 ||residuals(params)||^2 in place.

    `residuals` maps the parameter list to one flat residual tensor (data and regularisation rows).
    `preconditioner` holds one positive constant per parameter block (None: identity).
    `direction_forget_factor`: see the module doc (0: restart CG at every Gauss-Newton step).
    The object keeps the CG state between `run` calls, as the released update optimiser does; swap
    `residuals` to optimise a changed problem (e.g. after a memory update) with the carried state.
    """

    def __init__(self, residuals: Residuals, preconditioner: Sequence[float] | None = None,
                 direction_forget_factor: float = 0.0) -> None:
        self.residuals = residuals
        self.preconditioner = preconditioner
        self.direction_forget_factor = direction_forget_factor
        self.reset_state()

    def reset_state(self) -> None:
        self.p: list[torch.Tensor] | None = None
        self.rho: torch.Tensor | None = None
        self.r_prev: list[torch.Tensor] | None = None

    def loss(self, params: Sequence[torch.Tensor]) -> float:
        with torch.no_grad():
            return 0.5 * float(self.residuals(params).square().sum())

    def run(self, params: list[torch.Tensor], cg_iterations: Sequence[int]) -> list[float]:
        """One Gauss-Newton step per entry of `cg_iterations` (its CG iteration count).

        Updates `params` in place and returns the loss before the first step and after each step.
        """
        losses = [self.loss(params)]
        for iterations in cg_iterations:
            self.step(params, iterations)
            losses.append(self.loss(params))
        return losses

    def step(self, params: list[torch.Tensor], cg_iterations: int) -> None:
        variables = [p.detach().requires_grad_(True) for p in params]
        with torch.enable_grad():
            residual = self.residuals(variables)
            g = residual.detach().requires_grad_(True)
            jt_g = torch.autograd.grad(residual, variables, g, create_graph=True)

            def normal_product(direction: list[torch.Tensor]) -> list[torch.Tensor]:
                j_p = torch.autograd.grad(jt_g, g, direction, retain_graph=True)[0]
                return list(torch.autograd.grad(residual, variables, j_p, retain_graph=True))

            rhs = [-u.detach() for u in jt_g]
            delta = self.conjugate_gradient(normal_product, rhs, cg_iterations)
        for param, d in zip(params, delta, strict=True):
            param.data.add_(d)

    def conjugate_gradient(self, product: Callable[[list[torch.Tensor]], list[torch.Tensor]],
                           rhs: list[torch.Tensor], iterations: int) -> list[torch.Tensor]:
        """Solve product(x) = rhs from x = 0 with preconditioned CG (Polak-Ribiere, clamped >= 0), continuing
        from the carried state as the released run_CG does."""
        if self.direction_forget_factor == 0:
            self.reset_state()
        elif self.p is not None:
            self.rho = self.rho / self.direction_forget_factor  # float32: overflows to inf -> beta = 0
        x = [torch.zeros_like(b) for b in rhs]
        r = [b.clone() for b in rhs]
        for _ in range(iterations):
            z = self._apply_inverse_preconditioner(r)
            rho_prev, rho = self.rho, _dot(r, z)
            if float(rho) <= 0.0:  # converged (or r vanished)
                break
            self.rho = rho
            if self.p is None:
                p = [zi.clone() for zi in z]
            else:
                beta = ((rho - _dot(self.r_prev, z)) / rho_prev).clamp(min=0.0)
                p = [zi + pi * beta for zi, pi in zip(z, self.p, strict=True)]
            self.p = p
            a_p = product(p)
            curvature = _dot(p, a_p)
            if float(curvature) <= 0.0:
                break
            alpha = rho / curvature
            self.r_prev = [ri.clone() for ri in r]
            x = [xi + pi * alpha for xi, pi in zip(x, p, strict=True)]
            r = [ri - api * alpha for ri, api in zip(r, a_p, strict=True)]
        return x

    def _apply_inverse_preconditioner(self, r: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.preconditioner is None:
            return r
        return [ri / m for ri, m in zip(r, self.preconditioner, strict=True)]
