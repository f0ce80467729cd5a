"""The refinement network R of FRTM (paper section 3.2), also the decoder of LWL.

R turns a coarse target score map ``s`` (FRTM: the 1-channel output of the target model at stride 16; LWL: a
16-channel mask encoding at stride 16) and backbone features at several levels (deepest first, e.g. strides
32, 16, 8, 4) into full-resolution segmentation logits. Per level, deepest to shallowest:

    TSE (target segmentation encoder) -> RRB (residual refinement block) -> CAB (channel attention block,
    fusing the "deeper" map) -> RRB

and an upsampler at the end. The deeper map of the deepest level is the global average pool of its own TSE
output; every other level gets the previous level's output. LWL's variant (score_channels=16, per-level
``widths``, a 1x1 conv + ReLU projection of the deeper map between levels) is the same class with other
constructor options.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


def _resize(x: torch.Tensor, size: Sequence[int], mode: str = "bilinear") -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


class TargetSegmentationEncoder(nn.Module):
    """TSE: fuses one level's backbone features with the coarse target scores.

    features -> 1x1 conv(C->W) -> ReLU -> 1x1 conv(W->W); concatenated with the scores bilinearly resized to
    the level's size (W+S channels); -> three 3x3 convs with ReLU (W+S -> W+S -> W+S -> W).
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

    def forward(self, features: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        x = self.reduce(features)
        if x.shape[0] != scores.shape[0]:
            x = x.expand(scores.shape[0], -1, -1, -1)
        return self.mix(torch.cat([x, _resize(scores, x.shape[-2:])], dim=1))


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


class Upsampler(nn.Module):
    """The upsampler closing R: x2 bicubic -> 3x3 conv(W->W/2) -> ReLU -> x2 bicubic -> bilinear resize to
    the image size -> 3x3 conv(W/2->1), giving logits.

    FRTM uses its own bicubic kernel (a = -0.75, replicate padding). We use F.interpolate(mode="bicubic",
    align_corners=False), also a = -0.75; it clamps source indices at the border, which we checked equals
    replicate padding at half-pixel sample positions. Any remaining difference from the official op (sample
    phase at the border) is small but means official weights may give slightly different outputs.
    """

    def __init__(self, in_channels: int, mid_channels: int | None = None) -> None:
        super().__init__()
        mid_channels = mid_channels or max(in_channels // 2, 1)
        self.conv1 = _conv(in_channels, mid_channels, 3)
        self.conv2 = _conv(mid_channels, 1, 3)

    def forward(self, x: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        x = F.relu(self.conv1(x))
        x = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        return self.conv2(_resize(x, image_size))


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
    """

    def __init__(
        self,
        level_channels: Sequence[int],
        score_channels: int = 1,
        widths: Sequence[int] | None = None,
        project_between_levels: bool = False,
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
        self.upsampler = Upsampler(self.widths[-1])

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
            x = self.tse[i](level, scores)
            if i == 0:
                deeper = x.mean((2, 3), keepdim=True)
            elif self.project is not None:
                deeper = self.project[i - 1](deeper)
            x = self.cab[i](self.rrb_in[i](x), deeper)
            deeper = self.rrb_out[i](x)
        return self.upsampler(deeper, image_size)
