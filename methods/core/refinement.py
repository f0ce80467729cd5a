"""The refinement network R of FRTM (paper section 3.2), also the decoder of LWL.

R turns a coarse target score map ``s`` (FRTM: the 1-channel output of the target model at stride 16; LWL: a
16-channel mask encoding at stride 16) and backbone features at several levels (deepest first, e.g. strides
32, 16, 8, 4) into full-resolution segmentation logits. Per level, deepest to shallowest:

    TSE (target segmentation encoder) -> RRB (residual refinement block) -> CAB (channel attention block,
    fusing the "deeper" map) -> RRB

and an upsampler at the end. The deeper map of the deepest level is the global average pool of its TSE's
reduced features (the 1x1 convs, before the scores join: released SegNetwork / LWTLDecoder); every other
level gets the previous level's output. LWL's variant (score_channels=16, per-level ``widths``, a 1x1 conv
+ ReLU projection of the deeper map between levels, its own upsampler) is the same class with other
constructor options.

The module computes what the released networks compute (frtm-vos `model/seg_network.py: SegNetwork`,
pytracking `ltr/models/lwl/decoder.py: LWTLDecoder`), and `load_official_state_dict` takes their weights
by their own key names (tests/test_official_refinement.py checks both against the official fixtures).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn


def _conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


def _resize(x: torch.Tensor, size: Sequence[int], mode: str = "bilinear") -> torch.Tensor:
    """Bilinear or bicubic resizing (align_corners=False). At the input's own size both weigh each pixel by 1 and
    its neighbours by 0, so the input itself is what F.interpolate would compute, forward and backward, without
    the pass (R's last resize in training, the scores at stride 16: tests/test_refinement.py)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


class TargetSegmentationEncoder(nn.Module):
    """TSE: fuses one level's backbone features with the coarse target scores.

    features -> 1x1 conv(C->W) -> ReLU -> 1x1 conv(W->W) ("reduce"); concatenated with the scores bilinearly
    resized to the level's size (W+S channels); -> three 3x3 convs with ReLU (W+S -> W+S -> W+S -> W).
    Features of batch 1 are expanded to the batch of the scores after the 1x1 reduction (one frame, N objects).
    """

    def __init__(self, feature_channels: int, score_channels: int, width: int) -> None:
        super().__init__()
        self.reduce = nn.Sequential(_conv(feature_channels, width, 1), nn.ReLU(), _conv(width, width, 1))
        mixed = width + score_channels
        self.mix = nn.Sequential(
            *(_conv(mixed, mixed, 3), nn.ReLU(), _conv(mixed, mixed, 3), nn.ReLU()),
            *(_conv(mixed, width, 3), nn.ReLU()),
        )

    def forward(self, features: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused map (B, W, h, w) and the global context of the reduced features (B, W, 1, 1), which the
        deepest level's CAB reads (released TSE: `hpool` pools `reduce(ft)`, not the fused output)."""
        x = self.reduce(features)
        if x.shape[0] != scores.shape[0]:
            x = x.expand(scores.shape[0], -1, -1, -1)
        context = x.mean((2, 3), keepdim=True)
        return self.mix(torch.cat([x, _resize(scores, x.shape[-2:])], dim=1)), context


class ResidualRefinementBlock(nn.Module):
    """RRB: h = 1x1 conv(x); output = ReLU(h + [3x3 conv -> BatchNorm -> ReLU -> 3x3 conv without bias](h))."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1x1 = _conv(width, width, 1)
        self.residual = nn.Sequential(
            _conv(width, width, 3), nn.BatchNorm2d(width), nn.ReLU(), _conv(width, width, 3, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1x1(x)
        return F.relu(h + self.residual(h))


class ChannelAttentionBlock(nn.Module):
    """CAB: re-weights the channels of the shallow map using global context, then adds the deeper map.

    attention = sigmoid(1x1 conv(W->W)(ReLU(1x1 conv(2W->W)([GAP(shallow), GAP(deeper)]))));
    output = shallow * attention + bilinear upsampling of deeper to the shallow size.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            _conv(2 * width, width, 1), nn.ReLU(), _conv(width, width, 1), nn.Sigmoid()
        )

    def forward(self, shallow: torch.Tensor, deeper: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([shallow.mean((2, 3), keepdim=True), deeper.mean((2, 3), keepdim=True)], dim=1)
        return shallow * self.attention(pooled) + _resize(deeper, shallow.shape[-2:])


# Taps of the x2 bicubic kernel (a = -0.75) of the released FRTM upsampler (`PyrUpBicubic2d`): output pixels
# sit a quarter pixel from the source grid, on one side (even outputs) or the other (odd outputs).
def _bicubic_taps(offset: float) -> torch.Tensor:
    x = (offset + torch.arange(-1, 3, dtype=torch.float64)).abs()
    a = -0.75
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x))).float()


_PYRAMID_UP_TAPS = (_bicubic_taps(-0.25), _bicubic_taps(-0.75))


def _four_taps(t: torch.Tensor, taps: torch.Tensor, dim: int, length: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """sum_k taps[k] * t[..., i + k, ...] along `dim` for i < length: a 4-tap valid correlation (into `out` when
    given). Summed in place from the first term (not Python's sum(), which starts from 0 and adds a tensor more):
    the same additions in the same order, so the same bits, forward and backward, in less time."""
    total = torch.mul(taps[0], t.narrow(dim, 0, length), out=out)
    for k in range(1, 4):
        total.add_(taps[k] * t.narrow(dim, k, length))
    return total


def _two_phases_autograd(t: torch.Tensor, even: torch.Tensor, odd: torch.Tensor, dim: int, length: int) -> torch.Tensor:
    """Both phases' `_four_taps` along `dim`, stacked in a new dimension after it, differentiated by autograd: the
    form whose bits `_TwoPhases` reproduces (tests/test_refinement.py), and the before of its benchmark."""
    return torch.stack([_four_taps(t, taps, dim, length) for taps in (even, odd)], dim=dim + 1)


class _TwoPhases(torch.autograd.Function):
    """`_two_phases_autograd` with a written-out backward. Forward: each phase summed straight into its half of
    the output (no stacking copy). Backward: the gradient autograd computes for that form, the same products
    added in the same order (autograd's engine runs the last-made node first: the odd phase's taps 3, 2, 1, 0,
    then the even phase's), into one zero tensor, instead of a full-size zero tensor and a copy per tap: the x2
    upsampling's forward and backward in about 13 % less time (benchmarks/test_refinement_speed.py)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, even: torch.Tensor, odd: torch.Tensor, dim: int, length: int) -> torch.Tensor:
        ctx.save_for_backward(even, odd)
        ctx.dim, ctx.length, ctx.input_shape = dim, length, t.shape
        shape = list(t.shape)
        shape[dim] = length
        shape.insert(dim + 1, 2)
        out = t.new_empty(shape)
        for phase, taps in enumerate((even, odd)):
            _four_taps(t, taps, dim, length, out=out.select(dim + 1, phase))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        even, odd = ctx.saved_tensors
        dim, length = ctx.dim, ctx.length
        grad_t = grad.new_zeros(ctx.input_shape)
        for phase, taps in ((1, odd), (0, even)):
            phase_grad = grad.select(dim + 1, phase)
            for k in (3, 2, 1, 0):
                grad_t.narrow(dim, k, length).add_(phase_grad * taps[k])
        return grad_t, None, None, None, None


def pyramid_up_bicubic(x: torch.Tensor, two_phases=_TwoPhases.apply) -> torch.Tensor:
    """x2 bicubic upsampling as the released FRTM computes it (`PyrUpBicubic2d`): replicate padding by 2,
    the even- and odd-phase 4-tap kernels along each axis, phases interleaved, one pixel cropped per side.
    (N, C, H, W) -> (N, C, 2H, 2W). Written separably (rows, then columns) as shifted weighted sums; the
    released op convolves with the 4x4 outer products, the same sums in another order (within 1e-6). On the
    CPU the shifted sums are about 5x faster than single-channel conv2d, forward and backward (measured in
    benchmarks/test_refinement_speed.py), which is most of R's training time. `two_phases`: `_TwoPhases.apply`
    or `_two_phases_autograd` (the same bits; tests and the benchmark)."""
    n, c, h, w = x.shape
    t = F.pad(x, (2, 2, 2, 2), mode="replicate")
    even, odd = (taps.to(x) for taps in _PYRAMID_UP_TAPS)
    t = two_phases(t, even, odd, 2, h + 1).reshape(n, c, 2 * (h + 1), w + 4)  # rows: (N, C, H+1, 2, W+4)
    t = two_phases(t, even, odd, 3, w + 1).reshape(n, c, 2 * (h + 1), 2 * (w + 1))  # columns: (..., W+1, 2)
    return t[:, :, 1:-1, 1:-1]


UPSAMPLERS = ("frtm", "lwl")


class Upsampler(nn.Module):
    """The upsampler closing R: x2 upsampling -> 3x3 conv(W->W/2) -> ReLU -> upsampling -> 3x3 conv(W/2->1),
    giving logits at the image size. The two released networks upsample differently:

    - "frtm" (frtm-vos `BackwardCompatibleUpsampler`): `pyramid_up_bicubic` (x2), conv1, ReLU,
      `pyramid_up_bicubic` (x2), a BILINEAR resize to the image size, conv2;
    - "lwl" (pytracking `Upsampler`): F.interpolate bicubic to twice the size, conv1, ReLU, F.interpolate
      bicubic straight to the image size, conv2 (align_corners=False throughout).
    """

    def __init__(self, in_channels: int, mid_channels: int | None = None, kind: str = "frtm") -> None:
        super().__init__()
        if kind not in UPSAMPLERS:
            raise ValueError(f"upsampler {kind!r}: choose one of {UPSAMPLERS}")
        self.kind = kind
        mid_channels = mid_channels or max(in_channels // 2, 1)
        self.conv1 = _conv(in_channels, mid_channels, 3)
        self.conv2 = _conv(mid_channels, 1, 3)

    def forward(self, x: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        if self.kind == "frtm":
            x = F.relu(self.conv1(pyramid_up_bicubic(x)))
            return self.conv2(_resize(pyramid_up_bicubic(x), image_size))
        x = F.interpolate(x, size=(2 * x.shape[-2], 2 * x.shape[-1]), mode="bicubic", align_corners=False)
        x = F.relu(self.conv1(x))
        return self.conv2(_resize(x, image_size, mode="bicubic"))


class RefinementNetwork(nn.Module):
    """R: backbone features (deepest first) + coarse target scores -> full-resolution logits.

    level_channels: backbone channels per level, deepest first (EfficientNet-Lite0: 320, 112, 40, 24;
        ResNet-101: 2048, 1024, 512, 256).
    score_channels: channels S of the score map (FRTM 1, LWL 16).
    widths: internal width per level (default 64 everywhere, as FRTM). Consecutive widths may differ only
        with project_between_levels.
    project_between_levels: LWL's 1x1 conv + ReLU applied to the deeper map before each level after the
        first (width of the previous level -> width of this one); when on, it is there for every transition,
        equal widths included.
    upsampler: "frtm" or "lwl", the released networks' two upsamplers (see Upsampler).
    """

    def __init__(
        self,
        level_channels: Sequence[int],
        score_channels: int = 1,
        widths: Sequence[int] | None = None,
        project_between_levels: bool = False,
        upsampler: str = "frtm",
    ) -> None:
        super().__init__()
        self.level_channels = list(level_channels)
        n = len(self.level_channels)
        self.widths = list(widths) if widths is not None else [64] * n
        if n == 0 or len(self.widths) != n:
            raise ValueError(f"need one width per level: {n} levels, widths {self.widths}")
        if not project_between_levels and len(set(self.widths)) > 1:
            raise ValueError(f"widths {self.widths} differ between levels: set project_between_levels=True")
        self.score_channels = score_channels
        self.tse = nn.ModuleList(
            TargetSegmentationEncoder(c, score_channels, w)
            for c, w in zip(self.level_channels, self.widths, strict=True)
        )
        self.rrb_in = nn.ModuleList(ResidualRefinementBlock(w) for w in self.widths)
        self.cab = nn.ModuleList(ChannelAttentionBlock(w) for w in self.widths)
        self.rrb_out = nn.ModuleList(ResidualRefinementBlock(w) for w in self.widths)
        self.project = (
            nn.ModuleList(
                nn.Sequential(_conv(w_in, w_out, 1), nn.ReLU())
                for w_in, w_out in zip(self.widths[:-1], self.widths[1:], strict=True)
            )
            if project_between_levels
            else None
        )
        self.upsampler = Upsampler(self.widths[-1], kind=upsampler)

    def forward(
        self, features: Sequence[torch.Tensor], scores: torch.Tensor, image_size: tuple[int, int]
    ) -> torch.Tensor:
        """features deepest first (len == len(level_channels)); scores (B, S, h, w); returns logits (B, 1, H, W).

        Features of batch 1 with scores of batch N (FRTM: one target model per object on one frame) are
        expanded to batch N, giving one output per object. In training mode the BatchNorm statistics are
        then taken over the N objects, so only in eval mode does this equal N separate calls.
        """
        if len(features) != len(self.tse):
            raise ValueError(f"expected {len(self.tse)} feature levels, got {len(features)}")
        batches = {f.shape[0] for f in features}
        if len(batches) != 1 or not batches <= {1, scores.shape[0]}:
            raise ValueError(
                f"feature batches {sorted(batches)} must equal the score batch {scores.shape[0]} or be 1"
            )
        deeper = None
        for i, level in enumerate(features):
            x, context = self.tse[i](level, scores)
            if i == 0:
                deeper = context
            elif self.project is not None:
                deeper = self.project[i - 1](deeper)
            x = self.cab[i](self.rrb_in[i](x), deeper)
            deeper = self.rrb_out[i](x)
        return self.upsampler(deeper, image_size)

    # --- the released networks' weights ------------------------------------------------------------
    def load_official_state_dict(self, state: dict[str, torch.Tensor], level_names: Sequence[str]) -> None:
        """Load weights named as the released networks name them (frtm-vos SegNetwork, pytracking
        LWTLDecoder), without their `refiner.` / `decoder.` prefix, e.g. "TSE.layer5.reduce.0.weight".
        level_names: the released names of this network's levels, deepest first (FRTM: layer5..layer2,
        LWL: layer4..layer1). Every key must match, both ways; a mismatch names the keys."""
        if len(level_names) != len(self.tse):
            raise ValueError(f"{len(level_names)} level names for {len(self.tse)} levels")
        renamed = {_official_key(key, list(level_names)): key for key in self.state_dict()}
        missing = sorted(set(renamed) - set(state))
        unexpected = sorted(set(state) - set(renamed))
        if missing or unexpected:
            raise ValueError(f"released refinement weights do not fit this network: missing {missing[:4]}, "
                             f"unexpected {unexpected[:4]} ({len(missing)} / {len(unexpected)} in all)")
        self.load_state_dict({ours: state[theirs] for theirs, ours in renamed.items()})


@lru_cache(maxsize=1)
def _official_names() -> list[tuple[re.Pattern, str]]:
    """Our parameter paths -> the released ones ({L}: the level's released name, {P}: the level after the
    projection's)."""
    return [(re.compile(pattern), template) for pattern, template in [
        (r"tse\.(\d+)\.reduce\.(.+)", "TSE.{L}.reduce.{rest}"),
        (r"tse\.(\d+)\.mix\.(.+)", "TSE.{L}.transform.{rest}"),
        (r"rrb_in\.(\d+)\.conv1x1\.(.+)", "RRB1.{L}.conv1x1.{rest}"),
        (r"rrb_in\.(\d+)\.residual\.(.+)", "RRB1.{L}.bblock.{rest}"),
        (r"cab\.(\d+)\.attention\.(.+)", "CAB.{L}.convreluconv.{rest}"),
        (r"rrb_out\.(\d+)\.conv1x1\.(.+)", "RRB2.{L}.conv1x1.{rest}"),
        (r"rrb_out\.(\d+)\.residual\.(.+)", "RRB2.{L}.bblock.{rest}"),
        (r"project\.(\d+)\.(.+)", "proj.{P}.{rest}"),
        (r"upsampler\.()(.+)", "project.{rest}"),
    ]]


def _official_key(key: str, level_names: list[str]) -> str:
    for pattern, template in _official_names():
        match = pattern.fullmatch(key)
        if match:
            index = int(match.group(1)) if match.group(1) else 0
            names = level_names + [""]
            return template.format(L=names[index], P=names[index + 1], rest=match.group(2))
    raise KeyError(f"no released name for refinement parameter {key!r}")
