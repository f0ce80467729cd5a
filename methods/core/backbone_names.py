"""The backbones the methods can build and FRTM's feature scale per backbone, without torch: the settings
classes check names against these when the workflow builds its DAG (methods.registry). The networks
themselves are in methods.core.backbones."""

from __future__ import annotations

BACKBONES = ("resnet18", "resnet50", "resnet101", "resnet50_mrcnn", "efficientnet_lite0")

# Factor FRTM's target model applies to the stride-16 features before w1 (paper: none, i.e. 1 for the
# ResNets it was tuned on). EfficientNet-Lite0's stride-16 output is a linear bottleneck with an RMS of
# about 6.5 (measured on 46 DAVIS 2016 train frames at 240x432), so with Kaiming-initialised w1 and w2 the
# first scores are ~25x too large and five Gauss-Newton steps end far from the optimum (raw-threshold J
# 0.15-0.25 on blackswan instead of 0.65-0.8). Scaling the features to RMS ~1 fixes that; a deviation of
# the CPU presets, named in docs/frtm.md.
TARGET_FEATURE_SCALE = {"efficientnet_lite0": 1 / 6.5}


def target_feature_scale(name: str) -> float:
    return TARGET_FEATURE_SCALE.get(name, 1.0)
