"""FRTM's offline-trained networks: what turns target scores into a mask, one class per Table 1 row kind.

- RefinerHead ("Ours", "Ours - no update", fast, DV17, code): the refinement network R (paper §3.2)
  on the backbone pyramid and the target model's coarse scores s.
- ScaleOffsetHead ("D-only", Table 1): no R; the scores are upsampled bilinearly to the image and a
  learned scale and offset go before the sigmoid (two offline-trained parameters).
- BaseNet ("Base net", "Base net + F-T", Table 1): D replaced by an offline-trained target encoder
  (paper §4.1): two conv layers on the reference frame's stride-16 features and mask; the test frame's
  stride-16 features concatenated with that encoding go through two more conv layers, whose output
  enters R in place of s. Layer widths (64) and kernels (3x3) are not in the paper [unverified].

Every head maps (pyramid, scores) to full-resolution logits; checkpoints are plain state dicts plus a
description (`head_config`), saved with torch.save, loaded as data only (methods.core.checkpoints.read_payload, weights_only=True).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from methods.core.checkpoints import read_payload
from methods.core.refinement import RefinementNetwork
from methods.frtm.settings import HEADS  # noqa: F401 (kept without torch)

PYRAMID = (32, 16, 8, 4)  # deepest first, as RefinementNetwork reads them


def pyramid_list(features: dict[int, torch.Tensor]) -> list[torch.Tensor]:
    return [features[stride] for stride in PYRAMID]


RELEASED_LEVELS = ("layer5", "layer4", "layer3", "layer2")  # frtm-vos names of strides 32..4 (PYRAMID)
RELEASED_PREFIX = "refiner."


class RefinerHead(nn.Module):
    def __init__(self, channels: dict[int, int]) -> None:
        super().__init__()
        self.refiner = RefinementNetwork([channels[s] for s in PYRAMID], score_channels=1)

    def forward(self, features: dict[int, torch.Tensor], scores: torch.Tensor,
                image_size: tuple[int, int]) -> torch.Tensor:
        return self.refiner(pyramid_list(features), scores, image_size)

    @classmethod
    def from_released(cls, model_state: dict[str, torch.Tensor]) -> tuple[RefinerHead, str]:
        """R from a released frtm-vos checkpoint's `model` dict (every key `refiner.` + a SegNetwork key) and
        the backbone it was trained on, told apart as evaluate.py does: resnet18 or resnet101 by the input
        width of `refiner.TSE.layer4.reduce.0.weight` (256 or 1024)."""
        from methods.core.backbones import RESNET_CHANNELS, STRIDES

        state = {k[len(RELEASED_PREFIX):]: v for k, v in model_state.items() if k.startswith(RELEASED_PREFIX)}
        width = state.get("TSE.layer4.reduce.0.weight", torch.empty(0, 0)).shape[1]
        backbone = {256: "resnet18", 1024: "resnet101"}.get(width)
        if backbone is None or len(state) != len(model_state):
            raise ValueError("not a released FRTM refiner: expected only `refiner.` keys with TSE.layer4 reading "
                             f"256 (ResNet-18) or 1024 (ResNet-101) channels, got {width}")
        head = cls(dict(zip(STRIDES, RESNET_CHANNELS[backbone], strict=True)))
        head.refiner.load_official_state_dict(state, RELEASED_LEVELS)
        return head.eval(), backbone


class ScaleOffsetHead(nn.Module):
    """D-only: logits = scale * U(s) + offset. D is trained towards labels 0 and 1, so its scores cross
    0.5 at the object border; the parameters start where a logistic fit of such scores lands (scale 10,
    offset -5: probability 0.5 at s = 0.5, 0.007 at s = 0, 0.993 at s = 1) instead of at (1, 0), whose
    threshold s = 0 and flat sigmoid would call most of the background half foreground."""

    INITIAL_SCALE, INITIAL_OFFSET = 10.0, -5.0

    def __init__(self, channels: dict[int, int] | None = None) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(self.INITIAL_SCALE))
        self.offset = nn.Parameter(torch.tensor(self.INITIAL_OFFSET))

    def forward(self, features: dict[int, torch.Tensor], scores: torch.Tensor,
                image_size: tuple[int, int]) -> torch.Tensor:
        upsampled = F.interpolate(scores, size=image_size, mode="bilinear", align_corners=False)
        return self.scale * upsampled + self.offset


class TargetEncoder(nn.Module):
    """Base net's replacement of D: reference encoding from (features, mask), then test-frame scores."""

    def __init__(self, in_channels: int, width: int = 64) -> None:
        super().__init__()
        self.reference = nn.Sequential(
            nn.Conv2d(in_channels + 1, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True))
        self.test = nn.Sequential(
            nn.Conv2d(in_channels + width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 3, padding=1))

    def encode(self, features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w) of the reference frame, masks (B, H, W) -> encoding (B, width, h, w)."""
        small = F.interpolate(masks[:, None].float(), size=features.shape[-2:], mode="bilinear", align_corners=False)
        return self.reference(torch.cat([features, small], 1))

    def scores(self, features: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
        """Test-frame features (1 or B, C, h, w) and encodings (B, width, h, w) -> scores (B, 1, h, w)."""
        return self.test(torch.cat([features.expand(encoding.shape[0], -1, -1, -1), encoding], 1))


class BaseNet(nn.Module):
    def __init__(self, channels: dict[int, int]) -> None:
        super().__init__()
        self.target_encoder = TargetEncoder(channels[16])
        self.refiner = RefinementNetwork([channels[s] for s in PYRAMID], score_channels=1)

    def forward(self, features: dict[int, torch.Tensor], scores: torch.Tensor,
                image_size: tuple[int, int]) -> torch.Tensor:
        return self.refiner(pyramid_list(features), scores, image_size)


def build_head(kind: str, channels: dict[int, int]) -> nn.Module:
    if kind == "refiner":
        return RefinerHead(channels)
    if kind == "scale_offset":
        return ScaleOffsetHead(channels)
    if kind == "base_net":
        return BaseNet(channels)
    raise ValueError(f"unknown FRTM head {kind!r}; choose one of {HEADS}")


def save_head(path: str | Path, head: nn.Module, kind: str, backbone: str, extra: dict | None = None) -> None:
    from vos_datasets.fileio import atomic_path

    payload = {"head": kind, "backbone": backbone, "state_dict": head.state_dict(), **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_head(path: str | Path, kind: str, backbone: str, channels: dict[int, int]) -> nn.Module:
    """A trained head from its checkpoint (data only: weights_only=True), checked against the settings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trained FRTM weights not found; run the training rule first "
                                f"(snakemake ... {path}) or set the variant's `checkpoint`")
    try:
        payload = read_payload(path)
    except pickle.UnpicklingError:  # not plain data: a released frtm-vos file pickles its training statistics
        payload = None
    if payload is None or ("model" in payload and "state_dict" not in payload):
        return _released_head(path, kind, backbone)
    if payload.get("head") != kind or payload.get("backbone") != backbone:
        raise ValueError(f"{path}: holds a {payload.get('head')!r} head for backbone {payload.get('backbone')!r}, "
                         f"but the variant asks for {kind!r} on {backbone!r}")
    head = build_head(kind, channels)
    head.load_state_dict(payload["state_dict"])
    return head.eval()


def _released_head(path: Path, kind: str, backbone: str) -> RefinerHead:
    """R from an authors' released checkpoint (rn18_*.pth, rn101_*.pth), read as data only
    (methods.core.released), checked against the row's head and backbone."""
    from methods.core.released import read_released_checkpoint

    released = read_released_checkpoint(path)
    if released.kind != "frtm":
        raise ValueError(f"{path}: a released {released.kind.upper()} checkpoint, not an FRTM one")
    if kind != "refiner":
        raise ValueError(f"{path}: released FRTM weights hold the refinement network R, but the variant's head "
                         f"is {kind!r}; use a variant with head: refiner")
    head, trained_on = RefinerHead.from_released(released.state_dict)
    if trained_on != backbone:
        raise ValueError(f"{path}: released weights for {trained_on}, but the row runs backbone {backbone!r}; "
                         f"set `backbone: {trained_on}` in the row's settings")
    return head
