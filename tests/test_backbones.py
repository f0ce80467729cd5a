"""Backbones against the official code: LWL's Mask R-CNN ResNet-50 (keys, shapes, strides, BGR input) and
FRTM's ImageNet normalisation, checked on the official fixtures (skipped, saying why, without them)."""

from __future__ import annotations

import json

import pytest
import torch

from methods.core.backbones import (
    MRCNN_RELEASED_PREFIX,
    MaskRCNNResNet50Backbone,
    build_backbone,
)
from tests.official_fixtures import load_official, official_dir


def _backbone_listing() -> dict:
    folder = official_dir()
    path = folder / "lwl_backbone_keys.json" if folder is not None else None
    if path is None or not path.is_file():
        load_official("lwl_backbone_keys.json")  # skips, saying why
    return json.loads(path.read_text())["keys"]


def test_mrcnn_resnet50_keys_and_shapes_equal_the_released_backbone():
    listing = _backbone_listing()
    state = MaskRCNNResNet50Backbone(pretrained=False).state_dict()
    ours = {MRCNN_RELEASED_PREFIX + key: [list(value.shape), str(value.dtype).removeprefix("torch.")]
            for key, value in state.items()}
    assert list(ours) == list(listing)
    assert ours == {key: [list(shape), dtype] for key, (shape, dtype) in listing.items()}


def test_mrcnn_resnet50_strides_and_channels():
    backbone = build_backbone("resnet50_mrcnn", pretrained=False)
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, 64, 96) * 255)
    assert {s: tuple(f.shape[1:]) for s, f in features.items()} == {
        4: (256, 16, 24), 8: (512, 8, 12), 16: (1024, 4, 6), 32: (2048, 2, 3)}
    # Detectron puts the stride in the first 1x1 conv of a block, torchvision in the 3x3
    assert backbone.layer2[0].conv1.stride == (2, 2) and backbone.layer2[0].conv2.stride == (1, 1)
    assert backbone.layer4[0].conv1.stride == (2, 2)


def test_mrcnn_resnet50_has_no_downloadable_weights():
    with pytest.raises(ValueError, match="weights_path"):
        build_backbone("resnet50_mrcnn")


def test_mrcnn_normalisation_equals_pytracking_bgr255():
    """NetWithBackbone.preprocess_image, image_format 'bgr255': RGB -> BGR, 0..255, minus the mean, std 1."""
    box = load_official("lwl_boxinit.pt")
    rgb = box["image"].float()[None]  # (1, 3, H, W) RGB uint8 as the tracker reads frames
    ours = MaskRCNNResNet50Backbone(pretrained=False).normalise(rgb)[..., :8, :8]
    assert torch.allclose(ours, box["image_bgr_normalised_patch"], atol=1e-5, rtol=0)


def test_mrcnn_load_released_refuses_a_foreign_state():
    backbone = MaskRCNNResNet50Backbone(pretrained=False)
    state = build_backbone("resnet18", pretrained=False).state_dict()
    with pytest.raises(ValueError, match="not a Mask R-CNN ResNet-50 state"):
        backbone.load_released(state)


@pytest.mark.parametrize("name", ["resnet18", "resnet101"])
def test_frtm_normalisation_equals_the_official_feature_extractor(name):
    """model/feature_extractor.py: x = rgb/255/std - mean/std (ImageNet mean and std), RGB order."""
    normalisation = load_official("frtm_refiner.pt")["normalisation"]
    backbone = build_backbone(name, pretrained=False)
    patch = normalisation["frame0_uint8_patch"].float()[None]
    ours = backbone.normalise(patch)
    assert torch.allclose(ours, normalisation["frame0_normalised_patch"], atol=1e-6, rtol=0)
    official = normalisation["norm_weight"] * patch + normalisation["norm_bias"]
    assert torch.allclose(ours, official, atol=1e-6, rtol=0)
