"""Backbones against the official code: LWL's Mask R-CNN ResNet-50 (keys, shapes, strides, BGR input) and
FRTM's ImageNet normalisation, checked on the official fixtures (skipped, saying why, without them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from methods.core.backbone_names import MASK_RCNN_URL, PRETRAINED_WEIGHTS
from methods.core.backbones import (
    MRCNN_RELEASED_PREFIX,
    MaskRCNNResNet50Backbone,
    build_backbone,
    pretrained_weights,
)
from methods.rows import backbone_weights_of_preset, load_preset, preset_names
from tests.official_fixtures import load_official, official_dir
from vos_datasets.download import sha256_of


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


def test_mrcnn_resnet50_without_its_file_names_the_file_and_where_the_authors_publish_it(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ValueError) as error:
        build_backbone("resnet50_mrcnn")
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "checkpoints" / "e2e_mask_rcnn_R_50_FPN_1x_converted.pkl") in message
    assert MASK_RCNN_URL in message and "backbone_weights_file" in message


def test_mrcnn_resnet50_reads_its_file_from_the_weights_folder(tmp_path, monkeypatch):
    """pytracking's lwl_stage1.py: net.feature_extractor.load_state_dict(torch.load(<the .pkl>))."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    state = MaskRCNNResNet50Backbone(pretrained=False).state_dict()
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "e2e_mask_rcnn_R_50_FPN_1x_converted.pkl")
    backbone = build_backbone("resnet50_mrcnn")
    assert all(torch.equal(value, state[key]) for key, value in backbone.state_dict().items())
    record = backbone.weights_record()
    assert record["weights"] == "MASK_RCNN_R50_FPN_1X"
    assert record["file"] == str(tmp_path / "checkpoints" / "e2e_mask_rcnn_R_50_FPN_1x_converted.pkl")
    assert record["sha256"] == sha256_of(record["file"])


# --- the named pretrained weights ---------------------------------------------------------------------
def test_the_file_names_are_those_torchvision_caches_its_enums_under():
    """No download: the enum's URL is metadata."""
    import torchvision

    for backbone, named in PRETRAINED_WEIGHTS.items():
        for name, weights in named.items():
            if weights.source == "torchvision":
                enum = torchvision.models.get_model_weights(backbone)[name]
                assert weights.file_name == Path(enum.url).name == Path(weights.url).name


def test_the_default_weights_are_v1_for_every_resnet():
    """frtm-vos `resnet101(pretrained=True)` / pytracking `model_urls['resnet50']`: V1, never "DEFAULT" (V2)."""
    assert pretrained_weights("resnet101").file_name == "resnet101-63fe2227.pth"
    assert pretrained_weights("resnet18").file_name == "resnet18-f37072fd.pth"
    assert pretrained_weights("resnet50").file_name == "resnet50-0676ba61.pth"
    assert pretrained_weights("resnet50_mrcnn").file_name == "e2e_mask_rcnn_R_50_FPN_1x_converted.pkl"
    assert pretrained_weights("resnet101", "IMAGENET1K_V2").file_name == "resnet101-cd907fc2.pth"
    with pytest.raises(ValueError, match=r"backbone_weights='DEFAULT' is not a weights name of resnet18"):
        pretrained_weights("resnet18", "DEFAULT")


@pytest.mark.parametrize(("name", "weights", "enum"), [("resnet101", None, "IMAGENET1K_V1"),
                                                       ("resnet18", None, "IMAGENET1K_V1"),
                                                       ("resnet50", None, "IMAGENET1K_V1"),
                                                       ("resnet101", "IMAGENET1K_V2", "IMAGENET1K_V2")])
def test_the_loader_asks_torchvision_for_the_named_enum(name, weights, enum, monkeypatch, tmp_path):
    import torchvision

    asked, small = [], torchvision.models.resnet18

    def builder(weights=None):
        asked.append(weights)
        return small(weights=None)  # a small random stand-in: nothing is downloaded

    monkeypatch.setattr(torchvision.models, name, builder)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    backbone = build_backbone(name, weights=weights)
    assert asked == [torchvision.models.get_model_weights(name)[enum]]
    assert backbone.weights_record()["weights"] == enum
    assert backbone.weights_record()["file_name"] == Path(asked[0].url).name


def _expected_file(entry: str, preset: str) -> str:
    """The weights file the released code loads for each paper row and training (docs/frtm.md, docs/lwl.md)."""
    if preset not in ("paper", "released"):  # `released`: the paper preset's released rows
        return "efficientnet-lite0-57934424.pth"  # the CPU presets' backbone
    if entry.startswith("rows.frtm-fast-released"):
        return "resnet18-f37072fd.pth"
    if "frtm" in entry:
        return "resnet101-63fe2227.pth"
    if "ytvos-only" in entry or "dv17-only" in entry:  # LWL §4.2: ImageNet for the dataset-only rows
        return "resnet50-0676ba61.pth"
    return "e2e_mask_rcnn_R_50_FPN_1x_converted.pkl"  # LWL: pytracking's lwl_stage1.py


@pytest.mark.parametrize("preset", preset_names())
def test_every_row_and_training_of_every_preset_resolves_to_the_released_codes_weights(preset):
    _, config = load_preset(preset)
    resolved = backbone_weights_of_preset(config)
    sessions = (config.get("interactive") or {}).get("sessions") or {}
    assert set(resolved) == ({f"trainings.{name}" for name in config.get("trainings", {})}
                             | {f"rows.{name}" for name in config["rows"]}
                             | {f"interactive.{name}" for name in sessions})
    for entry, weights in resolved.items():
        row = config["rows"][entry[5:]] if entry.startswith("rows.") else {}
        row = sessions[entry[12:]] if entry.startswith("interactive.") else row  # a session reads as a row
        if row.get("method") in ("first_frame_copy", "scribble_copy"):
            assert weights == "no pretrained backbone"
        elif row.get("method") == "lwl" and (row.get("released") or row.get("checkpoint")):
            assert weights == "the backbone the weights file carries"
        else:
            assert weights.file_name == _expected_file(entry, preset), entry


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
