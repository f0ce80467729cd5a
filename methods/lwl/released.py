"""The released LWL weights (pytracking, `ltr/models/lwl/lwl_net.py: LWTLNet` and `lwl_box_net.py: LWTLBoxNet`)
read into this suite's LWLNet.

A released checkpoint's `net` state dict names its modules as the released classes do:

| released key prefix                                     | ours                                        |
|---------------------------------------------------------|---------------------------------------------|
| `target_model.feature_extractor.0.`                     | `target_features.conv.` (F's 3x3 conv)      |
| `target_model.filter_optimizer.residual_module.filter_reg` | `learner.reg` (lambda = reg^2; shape [1] -> scalar) |
| `label_encoder.` (ResidualDS16SW: E and W)              | `mask_encoder.` (same names below it)       |
| `box_label_encoder.` (ResidualDS16FeatSWBoxCatMultiBlock) | `box_encoder.` (same names below it)      |
| `decoder.` (LWTLDecoder)                                | `decoder.` via RefinementNetwork.load_official_state_dict |
| `feature_extractor.` (Mask R-CNN ResNet-50)             | not read: see below                         |

The Detectron ResNet-50 puts each block's stride in its first 1x1 conv and expects BGR 0..255 minus the
Caffe means; torchvision's ResNet-50 (this suite's `resnet50`) has the same key names but strides in the 3x3
conv, so loading those weights into it would compute something else without complaint. They go into the
suite's own Mask R-CNN ResNet-50 (methods.core.backbones.MaskRCNNResNet50Backbone, with LWL's BGR
preprocessing). A state dict without them (the official fixtures store backbone features instead) gets a
stand-in backbone that only declares the released channel widths (`StoredFeatures`); callers then feed it
backbone features.

`load_released_network(path)` reads a downloaded file as data only (methods.core.released: the pickled
constructor becomes inert data, nothing from the file runs).
"""

from __future__ import annotations

from pathlib import Path

import torch

from methods.core.backbones import Backbone, MaskRCNNResNet50Backbone
from methods.lwl.networks import LWLNet, NetworkConfig

DECODER_LEVELS = ["layer4", "layer3", "layer2", "layer1"]  # released names, deepest first (strides 32..4)
_STRIDES = {"layer4": 32, "layer3": 16, "layer2": 8, "layer1": 4}


class StoredFeatures(Backbone):
    """A backbone that only declares its channels: the network reads features computed elsewhere."""

    name = "released-features"

    def __init__(self, channels: dict[int, int]) -> None:
        super().__init__()
        self.channels = dict(channels)

    def deep_levels(self) -> list:
        return []

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        raise RuntimeError("this LWL network was read from released weights without its Mask R-CNN backbone: "
                           "give it backbone features (segment / learn), not images")


def network_from_released_state(state: dict[str, torch.Tensor]) -> LWLNet:
    """An LWLNet holding the released state dict's weights (checkpoint["net"]); with the backbone's
    `feature_extractor.*` keys it runs on the Mask R-CNN ResNet-50 they describe, without them on stored
    features. Every other key must find its place and every parameter of the built network must be given, or
    a ValueError names the keys."""
    state = {key: value.float() if value.is_floating_point() else value for key, value in state.items()}
    with_backbone = any(key.startswith("feature_extractor.") for key in state)
    decoder = {key[len("decoder."):]: value for key, value in state.items() if key.startswith("decoder.")}
    label_pred = state["label_encoder.label_pred.0.weight"]
    tm_conv = state["target_model.feature_extractor.0.weight"]
    config = NetworkConfig(
        backbone=MaskRCNNResNet50Backbone.name if with_backbone else StoredFeatures.name,
        feature_channels=tm_conv.shape[0], label_channels=label_pred.shape[0],
        label_encoder=True, weight_predictor="label_encoder.samp_w_pred.weight" in state,
        decoder_widths=[decoder[f"TSE.{level}.reduce.0.weight"].shape[0] for level in DECODER_LEVELS],
        box_encoder=any(key.startswith("box_label_encoder.") for key in state), decoder_init="pytorch")
    channels = {_STRIDES[level]: decoder[f"TSE.{level}.reduce.0.weight"].shape[1] for level in DECODER_LEVELS}
    if channels[16] != tm_conv.shape[1]:
        raise ValueError(f"released weights: the target model reads {tm_conv.shape[1]} channels, the decoder's "
                         f"layer3 {channels[16]}")
    if with_backbone:
        backbone = MaskRCNNResNet50Backbone(pretrained=False)
        backbone.load_released(state)
        if backbone.channels != channels:
            raise ValueError(f"released weights: the decoder reads {channels}, the backbone gives {backbone.channels}")
    else:
        backbone = StoredFeatures(channels)
    net = LWLNet(config, backbone=backbone)
    net.decoder.load_official_state_dict(decoder, DECODER_LEVELS)

    ours = {"target_features.conv.weight": tm_conv,
            "learner.reg": state["target_model.filter_optimizer.residual_module.filter_reg"].reshape(())}
    renames = {"label_encoder.": "mask_encoder.", "box_label_encoder.": "box_encoder."}
    for key, value in state.items():
        for theirs, mine in renames.items():
            if key.startswith(theirs):
                ours[mine + key[len(theirs):]] = value
    expected = {key for key in net.state_dict() if not key.startswith(("decoder.", "backbone."))}
    missing, unexpected = sorted(expected - set(ours)), sorted(set(ours) - expected)
    known = ("feature_extractor.", "decoder.", "target_model.", *renames)
    unknown = sorted(key for key in state if not key.startswith(known))
    if missing or unexpected or unknown:
        raise ValueError(f"released LWL weights do not fit: missing {missing[:4]}, unexpected "
                         f"{(unexpected + unknown)[:4]}")
    net.load_state_dict(ours, strict=False)
    return net.eval()


def load_released_network(path: str | Path) -> LWLNet:
    """The network of a downloaded lwl_stage2.pth / lwl_boxinit.pth, read as data only."""
    from methods.core.released import read_released_checkpoint

    released = read_released_checkpoint(path)
    if released.kind != "lwl":
        raise ValueError(f"{path}: a released {released.kind.upper()} checkpoint, not an LWL one")
    if not any(key.startswith("feature_extractor.") for key in released.state_dict):
        raise ValueError(f"{path}: a released LWL checkpoint without its backbone (feature_extractor.*); "
                         "give the file as downloaded")
    return network_from_released_state(released.state_dict)
