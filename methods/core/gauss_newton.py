"""Gauss-Newton with conjugate gradient for least-squares problems given as residuals (FRTM eq. 3).

The loss is L(w) = 1/2 ||r(w)||^2 for a residual vector r (data rows and regularisation rows together).
One Gauss-Newton step minimises the quadratic model

    L(w + dw) ~ 1/2 dw^T J^T J dw + dw^T J^T r + 1/2 r^T r

over dw with a few conjugate-gradient iterations, then sets w <- w + dw (step length 1, as the released
code does). J is never formed: the products J^T g and J^T J p come from autograd (notes §1.3):

    u = J^T g          grad of r w.r.t. w with grad_outputs g, a detached copy of r that requires grad
    J p                grad of u w.r.t. g with grad_outputs p (double backward: u is linear in g)
    J^T (J p)          grad of r w.r.t. w with grad_outputs J p

CG is preconditioned with a constant per parameter block (FRTM: 1e-4 for w1, 1e-2 for w2), uses the
Polak-Ribiere beta clamped at zero, and starts from dw = 0 at every Gauss-Newton step (the released code
carries the previous direction divided by 0.9^750, which is the same as a restart).

The same optimiser serves any residual function of any parameters, so LWL's learner and tests can reuse
its matrix-free products.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Residuals = Callable[[Sequence[torch.Tensor]], torch.Tensor]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b, strict=True))


class GaussNewtonCG:
    """Minimise 1/2 ||residuals(params)||^2 in place.

    `residuals` maps the parameter list to one flat residual tensor (data and regularisation rows).
    `preconditioner` holds one positive constant per parameter block (None: identity).
    """

    def __init__(self, residuals: Residuals, preconditioner: Sequence[float] | None = None) -> None:
        self.residuals = residuals
        self.preconditioner = preconditioner

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
        """Solve product(x) = rhs from x = 0 with preconditioned CG (Polak-Ribiere, clamped >= 0)."""
        x = [torch.zeros_like(b) for b in rhs]
        r = [b.clone() for b in rhs]
        p: list[torch.Tensor] | None = None
        rho_prev = None
        z_prev = None
        for _ in range(iterations):
            z = self._apply_inverse_preconditioner(r)
            rho = _dot(r, z)
            if float(rho) <= 0.0:  # converged (or r vanished)
                break
            if p is None:
                p = [zi.clone() for zi in z]
            else:
                beta = ((rho - _dot(r, z_prev)) / rho_prev).clamp(min=0.0)
                p = [zi + beta * pi for zi, pi in zip(z, p, strict=True)]
            a_p = product(p)
            curvature = _dot(p, a_p)
            if float(curvature) <= 0.0:
                break
            alpha = rho / curvature
            x = [xi + alpha * pi for xi, pi in zip(x, p, strict=True)]
            r = [ri - alpha * api for ri, api in zip(r, a_p, strict=True)]
            rho_prev, z_prev = rho, z
        return x

    def _apply_inverse_preconditioner(self, r: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.preconditioner is None:
            return r
        return [ri / m for ri, m in zip(r, self.preconditioner, strict=True)]
