"""R's x2 bicubic upsampler in its three forms, side by side (pytest-benchmark).

    pytest benchmarks/test_refinement_speed.py -o addopts= --benchmark-json=run.json
    python benchmarks/report.py run.json      # each shape's speed relative to the conv2d form

`conv2d_reference` is the form used until 2026-12-01 (single-channel conv2d over N*C images); the suite's
`pyramid_up_bicubic` computes the same sums as shifted weighted slices, differentiated by autograd until
2026-12-07 ("shifted sums, autograd") and since then with a written-out backward of the same bits. Each round is
a forward and a backward pass, as in R's training, at the sizes of R's upsampler on 240x432 frames."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from methods.core.refinement import _PYRAMID_UP_TAPS, _two_phases_autograd, pyramid_up_bicubic  # noqa: E402

SHAPES = [(2, 64, 30, 54), (2, 32, 60, 108), (2, 16, 120, 216)]


def conv2d_reference(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    t = F.pad(x, (2, 2, 2, 2), mode="replicate").reshape(n * c, 1, h + 4, w + 4)
    even, odd = (taps.to(x) for taps in _PYRAMID_UP_TAPS)
    rows = torch.stack([F.conv2d(t, k.view(1, 1, 4, 1)) for k in (even, odd)], dim=3)
    t = rows.reshape(n * c, 1, 2 * (h + 1), w + 4)
    columns = torch.stack([F.conv2d(t, k.view(1, 1, 1, 4)) for k in (even, odd)], dim=4)
    return columns.reshape(n, c, 2 * (h + 1), 2 * (w + 1))[:, :, 1:-1, 1:-1]


FORMS = {"conv2d (before)": conv2d_reference,
         "shifted sums, autograd": partial(pyramid_up_bicubic, two_phases=_two_phases_autograd),
         "shifted sums, written-out backward": pyramid_up_bicubic}


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize("form", list(FORMS))
def test_upsampler_forward_backward(benchmark, form, shape):
    benchmark.group = f"R's x2 bicubic upsampler, forward and backward: input {'x'.join(map(str, shape))}"
    benchmark.extra_info["label"] = form
    benchmark.extra_info["reference"] = form == "conv2d (before)"
    upsample = FORMS[form]
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    assert torch.allclose(upsample(x), conv2d_reference(x), atol=1e-5)

    def forward_backward():
        upsample(x).square().sum().backward()

    benchmark(forward_backward)
