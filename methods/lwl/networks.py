"""LWL's network (paper §3.4, Fig. 2; notes §2): feature extractor F, label generator E, weight predictor W,
few-shot learner A with its target model T_tau, segmentation decoder D, and the box encoder B of §3.7.

Each module has the released code's structure and parameter names where the released code has the module
(pytracking commit 7eb9e74; methods.lwl.released maps its state dict onto this class, and
tests/test_official_lwl.py checks every module against what the released code computed):

- F: the backbone's stride-16 features (ResNet-50 layer3; EfficientNet-Lite0 on CPU presets) through a 3x3
  conv to C = 512 channels (no bias), then instance L2-normalised (released `InstanceL2Norm`): scaled by
  sqrt(1 / (C 9)) x sqrt(C h w / (sum x^2 + 1e-5)), so a 3x3 patch has unit norm on average and the
  learner's step sizes do not depend on the backbone's feature scale.
- E and W (released `ResidualDS16SW`, no BatchNorm): a shared mask feature extractor, 3x3 stride-2
  conv(1->16) + ReLU, 3x3 stride-2 max-pool, two residual blocks 16->32 and 32->64 of stride 2 whose
  shortcut is a 3x3 stride-2 conv with bias (stride 16 overall); E: 3x3 conv(64->D) + ReLU; W: 3x3
  conv(64->D) initialised to output 1 (zero weights, bias 1). Convs He-normal (fan-out, the released init).
- T_tau: a linear 3x3 conv C->D (methods.lwl.learner), tau^0 = 0.
- D: the shared refinement network (methods.core.refinement) taking the D-channel encoding, LWL's widths,
  1x1 projections between levels and LWL's upsampler (released `LWTLDecoder`).
- B (released `ResidualDS16FeatSWBoxCatMultiBlock`): the box as a mask, bilinearly resized to stride 16,
  concatenated with the C features, two residual blocks (513->64, 64->64, shortcut 3x3 conv with bias),
  3x3 conv(64->D) + ReLU.

Table 1 rows are switches of this one class (`NetworkConfig`): Baseline has no E (D = 1, the label is the
mask area-averaged onto the feature grid) and no W (weights 1) and learns no gradient through the learner
(`end_to_end: false`); "+ End-to-end" turns that on; "+ Label generator" adds E (D = 16); "+ Weight
predictor" adds W (the full LWL).
"""

from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from methods.core.backbones import Backbone, build_backbone
from methods.core.checkpoints import read_payload
from methods.core.refinement import RefinementNetwork
from methods.lwl.learner import FewShotLearner
from methods.lwl.settings import DECODER_INITS, PYRAMID, NetworkConfig  # noqa: F401 (kept without torch)


def he_normal_fan_out(module: nn.Module, zero_bias: bool = False) -> None:
    """The released code's He init: conv weights ~ N(0, 2 / (k_h k_w out_channels)). The label encoder and
    box encoder keep PyTorch's default biases there; the target-model feature conv has none."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_bias and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ResidualBlock(nn.Module):
    """The released label encoders' residual block: torchvision's BasicBlock without BatchNorm (conv1 3x3
    stride s, ReLU, conv2 3x3, both without bias) whose shortcut is a 3x3 stride-s conv WITH bias (released
    `ds1`, `ds2`), summed, then ReLU. BasicBlock's computation and parameter names (conv1, conv2, downsample),
    its parameters drawn in the same order (the shortcut first), written out here so that an LWL job does not
    import torchvision (about 1.4 s of CPU at each job's start; tests/test_lwl.py)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        shortcut = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.downsample = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        out += self.downsample(x)
        return self.relu(out)


def _conv_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """Released `conv_block(..., batch_norm=False)`: 3x3 conv with bias, ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1), nn.ReLU())


class TargetFeatures(nn.Module):
    """F's last part: stride-16 backbone features -> C channels, instance L2-normalised (released
    `residual_basic_block(final_conv=True, num_blocks=0)` = conv + InstanceL2Norm)."""

    def __init__(self, in_channels: int, channels: int, filter_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        self.scale = (1.0 / (channels * filter_size * filter_size)) ** 0.5
        he_normal_fan_out(self.conv)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.conv(features)
        squares = (x * x).view(x.shape[0], 1, 1, -1).sum(dim=3, keepdim=True)
        return x * (self.scale * (x[0].numel() / (squares + 1e-5)).sqrt())


class MaskEncoder(nn.Module):
    """E and W on a shared mask feature extractor (released `ResidualDS16SW`, parameter names kept):
    masks (N, 1, H, W) -> labels, weights (N, D, H/16, W/16)."""

    def __init__(self, channels: int, weight_predictor: bool, dims: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        self.conv_block = _conv_relu(1, dims[0], stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res1 = ResidualBlock(dims[0], dims[1], 2)
        self.res2 = ResidualBlock(dims[1], dims[2], 2)
        self.label_pred = _conv_relu(dims[2], channels)  # E
        self.samp_w_pred = nn.Conv2d(dims[2], channels, 3, padding=1) if weight_predictor else None  # W
        self.apply(he_normal_fan_out)
        if self.samp_w_pred is not None:  # W starts as 1 everywhere: the plain loss
            nn.init.zeros_(self.samp_w_pred.weight)
            nn.init.ones_(self.samp_w_pred.bias)

    def forward(self, masks: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.res2(self.res1(self.pool(self.conv_block(masks))))
        if x.shape[-2:] != size:  # crop sizes that are not multiples of 16: align with the feature grid
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        weights = self.samp_w_pred(x) if self.samp_w_pred is not None else None
        return self.label_pred(x), weights


class BoxEncoder(nn.Module):
    """B (§3.7; released `ResidualDS16FeatSWBoxCatMultiBlock`, parameter names kept): the box rasterised as a
    mask, resized to the C features' grid and concatenated with them -> a D-channel encoding."""

    def __init__(self, feature_channels: int, channels: int, dims: tuple[int, int] = (64, 64)) -> None:
        super().__init__()
        self.res = nn.Sequential(ResidualBlock(feature_channels + 1, dims[0], 1), ResidualBlock(dims[0], dims[1], 1))
        self.label_pred = _conv_relu(dims[1], channels)
        self.apply(he_normal_fan_out)

    def forward(self, features: torch.Tensor, box_masks: torch.Tensor) -> torch.Tensor:
        small = box_masks
        if small.shape[-2:] != features.shape[-2:]:
            small = F.interpolate(box_masks, size=features.shape[-2:], mode="bilinear", align_corners=False)
        return self.label_pred(self.res(torch.cat([features, small], dim=1)))


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
                                         widths=config.decoder_widths, project_between_levels=True,
                                         upsampler="lwl")
        if config.decoder_init == "he":
            self.decoder.apply(lambda module: he_normal_fan_out(module, zero_bias=True))
        self.box_encoder = (BoxEncoder(config.feature_channels, config.encoding_channels)
                            if config.box_encoder else None)

    # Set by a training that lets the decoder's BatchNorm layers use batch statistics (a CPU-preset deviation)
    decoder_batch_statistics = False
    # Set by the box encoder's training: everything but B stays in eval mode (released LWTLBoxNet.train)
    train_only_box_encoder = False

    def train(self, mode: bool = True) -> LWLNet:
        """Training mode for everything but BatchNorm: LWL trains with every BatchNorm layer in eval mode
        (released `disable_all_bn=True`), so the decoder's statistics stay those it was built with; with
        `decoder_batch_statistics` the decoder's layers use batch statistics instead (as FRTM's R).
        With `train_only_box_encoder` only B is in training mode (released LWTLBoxNet.train)."""
        super().train(mode)
        if mode and self.train_only_box_encoder:
            for module in self.children():
                if module is not self.box_encoder:
                    module.eval()
            return self
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
        """E(y) and W(y) for masks (N, 1, H, W) at the feature size; the Baseline's are the mask area-averaged
        onto the feature grid (each cell: the fraction of its pixels that are target) and 1."""
        labels = weights = None
        if self.mask_encoder is not None:
            labels, weights = self.mask_encoder(masks, size)
        if not self.config.label_encoder:
            labels = F.adaptive_avg_pool2d(masks, size)
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
                      weights: torch.Tensor, sample_weights: torch.Tensor, iterations: int,
                      trace: dict | None = None) -> torch.Tensor:
        """`learn` with the masks' E(y) and W(y) given (N, D, h, w): inference keeps them with each stored
        sample, since they depend on the mask alone (the notes' "recomputed at every update" gives the same)."""
        with torch.autocast(features.device.type, enabled=False):  # steepest descent in float32 (mixed precision)
            tau = self.learner(None if tau is None else tau.float(), features.float(), labels.float(),
                               weights.float(), sample_weights.float(), iterations, trace=trace)
        return tau if self.config.end_to_end else tau.detach()

    def training_sample_weights(self, n: int, device: torch.device) -> torch.Tensor:
        """gamma of the n training-time samples (released LWTLNet.forward): none besides W (1 each); without
        W the released residual weighs each sample by sqrt(1 / n) (LWTLResidual's default)."""
        value = 1.0 if self.config.weight_predictor else (1.0 / n) ** 0.5
        return torch.full((n,), value, device=device)

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

        Returns the logits (S (Q-1), 1, H, W) of the test frames (sequence-major), learned as inference
        learns (§3.6; released LWTLNet.forward): tau from the first frame (init_iterations steps from zero);
        after each test frame's prediction, its detached probability joins the few-shot set and
        update_iterations steps follow (none with 0: the released training, see TrainingConfig
        .predict_with_updated_model). Frame t of every sequence is decoded in ONE decoder call, so a decoder
        with batch statistics sees the S images together, as the released network does.
        With box_masks (S, Q, 1, H, W): the box encoder's logits of every frame instead (§3.7 training).
        """
        sequences, frames = images.shape[:2]
        pyramid, features = self.features(images.flatten(0, 1))
        pyramid = {k: v.unflatten(0, (sequences, frames)) for k, v in pyramid.items()}
        return self.forward_features(pyramid, features.unflatten(0, (sequences, frames)), masks,
                                     tuple(images.shape[-2:]), init_iterations, update_iterations, box_masks)

    def forward_features(self, pyramid: dict[int, torch.Tensor], features: torch.Tensor, masks: torch.Tensor,
                         size: tuple[int, int], init_iterations: int = 5, update_iterations: int = 2,
                         box_masks: torch.Tensor | None = None) -> torch.Tensor:
        """`forward` from the backbone pyramid {stride: (S, Q, C, h, w)} and the target-model features
        (S, Q, C, h, w) of the frames; `size` is the crops' (H, W)."""
        sequences, frames = features.shape[:2]
        if box_masks is not None:
            flat = {k: v.flatten(0, 1) for k, v in pyramid.items()}
            return self.box_mask_logits(flat, features.flatten(0, 1), box_masks.flatten(0, 1), size)
        taus, memory_masks = [], [[masks[s, 0]] for s in range(sequences)]
        for s in range(sequences):
            taus.append(self.learn(None, features[s, :1], masks[s, :1],
                                   self.training_sample_weights(1, features.device), init_iterations))
        outputs = []
        for t in range(1, frames):
            encodings = torch.cat([self.learner.predict(taus[s], features[s, t : t + 1]) for s in range(sequences)])
            logits = self.segment({k: v[:, t] for k, v in pyramid.items()}, encodings, size)  # (S, 1, H, W)
            outputs.append(logits)
            if t == frames - 1 or update_iterations == 0:  # 0: every frame predicted by the first model
                continue
            for s in range(sequences):
                memory_masks[s].append(torch.sigmoid(logits[s]).detach())
                n = t + 1
                taus[s] = self.learn(taus[s], features[s, :n], torch.stack(memory_masks[s]),
                                     self.training_sample_weights(n, features.device), update_iterations)
        return torch.stack(outputs, dim=1).flatten(0, 1)  # (S, Q-1, 1, H, W) -> sequence-major


def save_network(path: str | Path, net: LWLNet, extra: dict | None = None) -> None:
    from vos_datasets.fileio import atomic_path

    payload = {"method": "lwl", "network": asdict(net.config), "state_dict": net.state_dict(), **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_network(path: str | Path) -> LWLNet:
    """A trained LWL network from its file (data only: weights_only=True); its config and its backbone's
    weights (fine-tuned in stage 2) come with it, except in a fixed copy that left out a pretrained backbone
    (methods.core.checkpoints), whose backbone is built from its pretrained weights. An authors' released
    file (lwl_stage2.pth, lwl_boxinit.pth) is read by methods.lwl.released."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trained LWL weights not found; run the training rule first "
                                f"(snakemake ... {path}) or set the variant's `checkpoint`")
    try:
        payload = read_payload(path)
    except pickle.UnpicklingError:  # not plain data: a released pytracking file pickles its constructor
        payload = None
    if payload is None or ("net" in payload and "state_dict" not in payload):
        from methods.lwl.released import load_released_network

        return load_released_network(path)
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
