"""The pre-flight of every training (methods.core.trainer): after the first batch's forward and backward, before
the optimiser's first step, a training whose gradient cannot move it stops with one line naming the setting
to change, instead of spending days on a network that does not learn (docs/lwl.md, "Decoder initialisation").

It stops when
- the gradient is zero: the largest gradient element of the trained parameters is below `ZERO_GRADIENT`. Both
  methods train with Adam (eps 1e-8), whose first step moves a weight by lr |g| / (|g| + eps): a gradient
  below 1e-11 moves every weight by less than a thousandth of a normal step (float32 underflow gives exactly 0);
- the gradient is not finite (nan or inf; not under float16 mixed precision, whose gradient scaler skips such
  steps by design);
- the decoder's output is saturated, where the loss reaches the logits only through the sigmoid's derivative
  (LWL's Lovasz-softmax on probabilities; not cross-entropy, whose gradient p - y does not vanish) and the
  network starts from its initialisation (a trained network may rightly be confident): at least
  `SATURATED_FRACTION` of the output pixels have |logit| > `SATURATED_LOGIT`. sigmoid'(20) = 2e-9, 1e-8 of its
  value at 0, and above 16.7 float32 rounds the sigmoid to exactly 1, so its gradient to exactly 0. With 99 %
  of the pixels saturated, under 1 % pass any gradient: a quarter of the area a target covers in LWL's
  search region (5x the target box: 1/25 of the crop).

It only reads (the outputs, detached, and the gradients): a training that passes trains exactly as without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

SATURATED_LOGIT = 20.0
SATURATED_FRACTION = 0.99
ZERO_GRADIENT = 1e-11  # Adam's eps (1e-8) x 1e-3


@dataclass
class OutputRecord:
    """The logits of the first step, summarised: pixel count, pixels with |logit| > SATURATED_LOGIT, sum and sum
    of squares (float64) for the mean and standard deviation."""

    count: int = 0
    saturated: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, logits: torch.Tensor) -> None:
        values = logits.detach().double()
        self.count += values.numel()
        self.saturated += int((values.abs() > SATURATED_LOGIT).sum())
        self.total += float(values.sum())
        self.squares += float((values * values).sum())

    def summed_over_processes(self, device: torch.device) -> OutputRecord:
        """The record of the whole batch under torch.distributed (every rank then decides alike)."""
        if not dist.is_initialized():
            return self
        sums = torch.tensor([self.count, self.saturated, self.total, self.squares], dtype=torch.float64, device=device)
        dist.all_reduce(sums)
        count, saturated, total, squares = sums.tolist()
        return OutputRecord(int(count), int(saturated), total, squares)

    @property
    def saturated_fraction(self) -> float:
        return self.saturated / self.count if self.count else 0.0

    @property
    def std(self) -> float:
        if not self.count:
            return 0.0
        mean = self.total / self.count
        return math.sqrt(max(self.squares / self.count - mean * mean, 0.0))


def largest_gradient(module: nn.Module) -> float:
    """The largest |gradient| element over the parameters that require gradients (nan or inf where any is);
    0.0 where none has a gradient."""
    largest = 0.0
    for parameter in module.parameters():
        if parameter.requires_grad and parameter.grad is not None and parameter.grad.numel():
            grad = parameter.grad.detach()
            if not bool(torch.isfinite(grad).all()):
                return math.nan
            largest = max(largest, float(grad.abs().max()))
    return largest


def gradient_norm(modules: list[nn.Module]) -> float:
    """The L2 norm of the gradients of the parameters of `modules` that have one (float64 sum of squares)."""
    squares = 0.0
    for module in modules:
        for parameter in module.parameters():
            if parameter.grad is not None:
                squares += float(parameter.grad.detach().double().pow(2).sum())
    return math.sqrt(squares)


def first_step_problem(outputs: OutputRecord, largest: float, check_saturation: bool,
                       check_finite: bool = True) -> str | None:
    """What stops the training after its first step (None: nothing). `largest`: largest_gradient (unscaled)."""
    problems = []
    if check_saturation and outputs.count and outputs.saturated_fraction >= SATURATED_FRACTION:
        problems.append(f"decoder output saturated ({100 * outputs.saturated_fraction:.1f} % of pixels "
                        f"|logit| > {SATURATED_LOGIT:g}, logit std {outputs.std:.3g})")
    if math.isnan(largest) or math.isinf(largest):
        if check_finite:
            problems.append("gradient not finite")
    elif largest < ZERO_GRADIENT:
        problems.append(f"zero gradient (largest element {largest:.3g})")
    return " and ".join(problems) or None
