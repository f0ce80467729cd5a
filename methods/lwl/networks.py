"""LWL's network (paper §3.4, Fig. 2; notes §2): feature extractor F, label generator E, weight predictor W,
few-shot learner A with its target model T_tau, segmentation decoder D, and the box encoder B of §3.7.

- F: the backbone's stride-16 features (ResNet-50 layer3; EfficientNet-Lite0 on CPU presets) through a 3x3
  conv to C = 512 channels (no bias), then instance L2-normalised to a norm of sqrt(h w / 9) (released code:
  scale sqrt(1 / (C 9)) x sqrt(C h w)), so a 3x3 patch has unit norm on average and the learner's step
  sizes do not depend on the backbone's feature scale.
- E and W: conv nets on the mask sharing one mask feature extractor (no BatchNorm; torchvision's
  BasicBlock with identity normalisation): 3x3 stride-2 conv(1->16) + ReLU, 3x3 stride-2 max-pool,
  BasicBlock 16->32 stride 2, BasicBlock 32->64 stride 2 (stride 16 overall). E: 3x3 conv(64->D) + ReLU.
  W: 3x3 conv(64->D) initialised to output 1 (zero weights, bias 1). Other layers: He-normal.
- T_tau: a linear 3x3 conv C->D (methods.lwl.learner), tau^0 = 0.
- D: the shared refinement network (methods.core.refinement) taking the D-channel encoding, LWL's widths
  and 1x1 projections between levels.

Table 1 rows are switches of this one class (`NetworkConfig`): Baseline has no E (D = 1, the label is the
mask resized to the feature grid) and no W (weights 1) and learns no gradient through the learner
(`end_to_end: false`); "+ End-to-end" turns that on; "+ Label generator" adds E (D = 16); "+ Weight
predictor" adds W (the full LWL).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from methods.core.backbones import Backbone, build_backbone
from methods.core.checkpoints import read_payload
from methods.core.refinement import RefinementNetwork
from methods.core.settings import from_known_keys
from methods.lwl.learner import FewShotLearner

PYRAMID = (32, 16, 8, 4)  # decoder levels, deepest first


@dataclass
class NetworkConfig:
    backbone: str = "resnet50"
    feature_channels: int = 512  # C
    label_channels: int = 16  # D (with the label generator; 1 without)
    label_encoder: bool = True  # E (Table 1 "+ Label generator")
    weight_predictor: bool = True  # W (Table 1 "+ Weight predictor")
    end_to_end: bool = True  # gradients through the learner (Table 1 "+ End-to-end")
    decoder_widths: list[int] = field(default_factory=lambda: [256, 128, 128, 64])  # deepest first (notes §2.5)
    box_encoder: bool = False  # B of §3.7 (box initialisation)

    @classmethod
    def from_dict(cls, values: dict) -> NetworkConfig:
        config = from_known_keys(cls, values, "LWL network settings")
        if config.feature_channels < 1 or config.label_channels < 1 or len(config.decoder_widths) != len(PYRAMID):
            raise ValueError(f"LWL network: feature_channels and label_channels >= 1 and {len(PYRAMID)} "
                             f"decoder_widths (deepest first), got {asdict(config)}")
        return config

    @property
    def encoding_channels(self) -> int:
        return self.label_channels if self.label_encoder else 1


def _he_normal(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _basic_block(in_channels: int, out_channels: int, stride: int) -> BasicBlock:
    downsample = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
    return BasicBlock(in_channels, out_channels, stride=stride, downsample=downsample,
                      norm_layer=lambda channels: nn.Identity())


class TargetFeatures(nn.Module):
    """F's last part: stride-16 backbone features -> C channels, instance L2-normalised."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        _he_normal(self.conv)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.conv(features)
        height, width = x.shape[-2:]
        norm = x.flatten(1).norm(dim=1).clamp(min=1e-5).view(-1, 1, 1, 1)
        return x * ((height * width / 9) ** 0.5 / norm)


class MaskEncoder(nn.Module):
    """E and W on a shared mask feature extractor: masks (N, 1, H, W) -> labels, weights (N, D, H/16, W/16)."""

    def __init__(self, channels: int, weight_predictor: bool) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1),
            _basic_block(16, 32, 2), _basic_block(32, 64, 2),
        )
        self.label_head = nn.Sequential(nn.Conv2d(64, channels, 3, padding=1), nn.ReLU())
        self.weight_head = nn.Conv2d(64, channels, 3, padding=1) if weight_predictor else None
        self.apply(_he_normal)
        if self.weight_head is not None:  # W starts as 1 everywhere: the plain loss
            nn.init.zeros_(self.weight_head.weight)
            nn.init.ones_(self.weight_head.bias)

    def forward(self, masks: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.trunk(masks)
        if x.shape[-2:] != size:  # odd sizes: align with the feature grid
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        weights = self.weight_head(x) if self.weight_head is not None else None
        return self.label_head(x), weights


class BoxEncoder(nn.Module):
    """B (§3.7): the box rasterised as a mask, at stride 16, with the C features -> a D-channel encoding."""

    def __init__(self, feature_channels: int, channels: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            _basic_block(feature_channels + 1, 64, 1), _basic_block(64, 64, 1),
            nn.Conv2d(64, channels, 3, padding=1), nn.ReLU(),
        )
        self.apply(_he_normal)

    def forward(self, features: torch.Tensor, box_masks: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(box_masks, size=features.shape[-2:], mode="bilinear", align_corners=False)
        return self.blocks(torch.cat([features, small], dim=1))


class LWLNet(nn.Module):
    def __init__(self, config: NetworkConfig, backbone: Backbone | None = None, pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else build_backbone(config.backbone, pretrained=pretrained)
        channels = self.backbone.channels
        self.target_features = TargetFeatures(channels[16], config.feature_channels)
        self.mask_encoder = (MaskEncoder(config.label_channels, config.weight_predictor)
                             if config.label_encoder or config.weight_predictor else None)
        self.learner = FewShotLearner()
        self.decoder = RefinementNetwork([channels[s] for s in PYRAMID], score_channels=config.encoding_channels,
                                         widths=config.decoder_widths, project_between_levels=True)
        self.box_encoder = (BoxEncoder(config.feature_channels, config.encoding_channels)
                            if config.box_encoder else None)

    # Set by a training that lets the decoder's BatchNorm layers use batch statistics (a CPU-preset deviation)
    decoder_batch_statistics = False

    def train(self, mode: bool = True) -> LWLNet:
        """Training mode for everything but BatchNorm: LWL trains with every BatchNorm layer in eval mode
        (notes §2.6), so the decoder's statistics stay those it was built with; with
        `decoder_batch_statistics` the decoder's layers use batch statistics instead (as FRTM's R)."""
        super().train(mode)
        keep = set(self.decoder.modules()) if self.decoder_batch_statistics else set()
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module not in keep:
                module.eval()
        return self

    # --- pieces ------------------------------------------------------------------------------------
    def features(self, images: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """Backbone pyramid and the target model's C-channel features of images (B, 3, H, W) in [0, 255]."""
        pyramid = self.backbone(images)
        return pyramid, self.target_features(pyramid[16])

    def labels_and_weights(self, masks: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """E(y) and W(y) for masks (N, 1, H, W) at the feature size; the Baseline's are the resized mask and 1."""
        labels = weights = None
        if self.mask_encoder is not None:
            labels, weights = self.mask_encoder(masks, size)
        if not self.config.label_encoder:
            labels = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
        if weights is None:
            weights = torch.ones_like(labels)
        elif not self.config.label_encoder:  # W without E predicts D channels; the label has one
            weights = weights.mean(1, keepdim=True)
        return labels, weights

    def learn(self, tau: torch.Tensor | None, features: torch.Tensor, masks: torch.Tensor,
              sample_weights: torch.Tensor, iterations: int) -> torch.Tensor:
        """The few-shot learner on (features (N, C, h, w), masks (N, 1, H, W), gamma (N,)) from tau (or 0)."""
        labels, weights = self.labels_and_weights(masks, features.shape[-2:])
        return self.learn_encoded(tau, features, labels, weights, sample_weights, iterations)

    def learn_encoded(self, tau: torch.Tensor | None, features: torch.Tensor, labels: torch.Tensor,
                      weights: torch.Tensor, sample_weights: torch.Tensor, iterations: int) -> torch.Tensor:
        """`learn` with the masks' E(y) and W(y) given (N, D, h, w): inference keeps them with each stored
        sample, since they depend on the mask alone (the notes' "recomputed at every update" gives the same)."""
        tau = self.learner(tau, features, labels, weights, sample_weights, iterations)  # None: from tau^0 = 0
        return tau if self.config.end_to_end else tau.detach()

    def segment(self, pyramid: dict[int, torch.Tensor], encoding: torch.Tensor,
                size: tuple[int, int]) -> torch.Tensor:
        """Decoder: the target model's encoding (N, D, h, w) + backbone features -> logits (N, 1, H, W)."""
        return self.decoder([pyramid[s] for s in PYRAMID], encoding, size)

    def box_mask_logits(self, pyramid: dict[int, torch.Tensor], features: torch.Tensor, box_masks: torch.Tensor,
                        size: tuple[int, int]) -> torch.Tensor:
        """§3.7: the initial mask's logits from a box (rasterised, (N, 1, H, W))."""
        if self.box_encoder is None:
            raise ValueError("this LWL network has no box encoder: train a box-init variant (box_encoder: true)")
        return self.segment(pyramid, self.box_encoder(features, box_masks), size)


    # --- training forward (one call per batch, as DistributedDataParallel needs) ----------------------
    def forward(self, images: torch.Tensor, masks: torch.Tensor, init_iterations: int = 5,
                update_iterations: int = 2, box_masks: torch.Tensor | None = None) -> torch.Tensor:
        """Training pass over S mini-sequences: images (S, Q, 3, H, W) in [0, 255], masks (S, Q, 1, H, W).

        Returns the logits (S (Q-1), 1, H, W) of the test frames, learned as inference learns (§3.6): tau from
        the first frame (init_iterations steps from zero); after each test frame's prediction, its detached
        probability joins the few-shot set (uniform weights) and update_iterations steps follow.
        With box_masks (S, Q, 1, H, W): the box encoder's logits of every frame instead (§3.7 training).
        """
        size = tuple(images.shape[-2:])
        outputs = []
        for index in range(images.shape[0]):
            pyramid, features = self.features(images[index])
            if box_masks is not None:
                outputs.append(self.box_mask_logits(pyramid, features, box_masks[index], size))
                continue
            ones = torch.ones(1, device=features.device)
            tau = self.learn(None, features[:1], masks[index, :1], ones, init_iterations)
            memory_features, memory_masks = [features[0]], [masks[index, 0]]
            for t in range(1, images.shape[1]):
                logits = self.segment({k: v[t : t + 1] for k, v in pyramid.items()},
                                      self.learner.predict(tau, features[t : t + 1]), size)
                outputs.append(logits)
                if t < images.shape[1] - 1:
                    memory_features.append(features[t])
                    memory_masks.append(torch.sigmoid(logits[0]).detach())
                    n = len(memory_features)
                    tau = self.learn(tau, torch.stack(memory_features), torch.stack(memory_masks),
                                     torch.full((n,), 1.0 / n, device=features.device), update_iterations)
        return torch.cat(outputs)


def save_network(path: str | Path, net: LWLNet, extra: dict | None = None) -> None:
    from vos_datasets.fileio import atomic_path

    payload = {"method": "lwl", "network": asdict(net.config), "state_dict": net.state_dict(), **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_network(path: str | Path) -> LWLNet:
    """A trained LWL network from its file (data only: weights_only=True); its config and its backbone's
    weights (fine-tuned in stage 2) come with it, except in a fixed copy that left out a pretrained backbone
    (methods.core.checkpoints), whose backbone is built from its pretrained weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trained LWL weights not found; run the training rule first "
                                f"(snakemake ... {path}) or set the variant's `checkpoint`")
    payload = read_payload(path)
    if payload.get("method") != "lwl":
        raise ValueError(f"{path}: not an LWL network (holds {payload.get('method') or payload.get('head')!r})")
    config = NetworkConfig.from_dict(payload["network"])
    # a fixed copy (methods.core.checkpoints) may leave out a backbone that equals the pretrained one
    pretrained_backbone = payload.get("backbone_state") == "pretrained"
    backbone = build_backbone(config.backbone, pretrained=pretrained_backbone)
    net = LWLNet(config, backbone=backbone)
    missing, unexpected = net.load_state_dict(payload["state_dict"], strict=False)
    if unexpected or any(not (pretrained_backbone and key.startswith("backbone.")) for key in missing):
        raise ValueError(f"{path}: does not fit the network it describes (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return net.eval()
