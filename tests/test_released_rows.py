"""The authors' released weights run through the suite's own trackers on the CPU (the issue's "direct infer"):
a file in the released nesting, built from the official fixtures' state dict (the real files are unreachable
here), loaded by the method's usual `checkpoint` setting and tracked over a small sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.runner import build_method, run
from tests.official_fixtures import load_official
from vos_datasets.build import build_dataset
from vos_datasets.masks import read_label_png


def _released_frtm_file(path, model_state: dict):
    """lib/training.py Trainer.save_checkpoint's nesting (its pickled statistics objects: see
    tests/test_released_checkpoints.py)."""
    stats = {"stats/loss": {"avg": 0.25}}
    torch.save(dict(name="rn18_all", epoch=249, stats=stats, model=model_state,
                    optimizer={"state": {}, "param_groups": []}, scheduler={}), path)
    return path


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory):
    """A random ResNet-18 state dict standing in for torchvision's ImageNet download (unreachable here)."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("backbone") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def test_released_frtm_weights_track_a_sequence(small_embedded, tmp_path, resnet18_weights):
    fixture = load_official("frtm_refiner.pt")
    checkpoint = _released_frtm_file(tmp_path / "rn18_all.pth", dict(fixture["weights"]))
    settings = {"checkpoint": str(checkpoint), "backbone": "resnet18", "backbone_weights_file": str(resnet18_weights),
                "device": "cpu", "augmented_samples": 2, "init_cg_iterations": [2], "update_cg_iterations": 2}
    method = build_method("frtm", settings)
    dataset = build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})
    record = run(method, dataset, tmp_path / "out", progress=False)
    assert record["frames"] == 12
    for sequence in dataset:
        for object_id, frame in sequence.object_first_frames().items():
            given = read_label_png(tmp_path / "out" / sequence.name / f"{frame}.png") == object_id
            np.testing.assert_array_equal(given, sequence.read_mask(frame) == object_id)


def test_released_frtm_weights_refuse_another_backbone_or_head(tmp_path):
    from methods.frtm.networks import load_head

    fixture = load_official("frtm_refiner.pt")
    checkpoint = _released_frtm_file(tmp_path / "rn18_all.pth", dict(fixture["weights"]))
    channels = {4: 256, 8: 512, 16: 1024, 32: 2048}
    with pytest.raises(ValueError, match="released weights for resnet18.*set `backbone: resnet18`"):
        load_head(checkpoint, "refiner", "resnet101", channels)
    with pytest.raises(ValueError, match="head is 'scale_offset'"):
        load_head(checkpoint, "scale_offset", "resnet18", channels)


@pytest.mark.parametrize("variant", ["full", "box-init"])
def test_released_lwl_weights_track_a_sequence(small_embedded, tmp_path, variant):
    """lwl_stage2.pth / lwl_boxinit.pth nesting (pickled NetConstructor, from a module that is gone when the
    file is read) with the fixtures' weights and a random Mask R-CNN ResNet-50: read as data, tracked with
    the variant's settings, the constructor never run."""
    from tests.test_released_checkpoints import _lwl_file, _lwl_net

    box = variant == "box-init"
    marker = tmp_path / "constructor-ran"
    checkpoint = _lwl_file(tmp_path / f"lwl_{'boxinit' if box else 'stage2'}.pth", _lwl_net(box=box), marker,
                           net_type="LWTLBoxNet" if box else "LWTLNet")
    switches = {"label_encoder": True, "weight_predictor": True, "end_to_end": True}
    settings = {"checkpoint": str(checkpoint), "device": "cpu", "crop_size": [64, 112], "init_iterations": 3,
                "update_iterations": 1, "network": {**switches, **({"box_encoder": True} if box else {})}}
    if box:
        settings.update(box_init=True, first_weight_floor=None, lower_init_weight=True, memory_learning_rate=0.2)
    method = build_method("lwl", settings)
    assert method.net.backbone.name == "resnet50_mrcnn"
    dataset = build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})
    record = run(method, dataset, tmp_path / "out", progress=False)
    assert record["frames"] == 12 and not marker.exists()
    for sequence in dataset:
        labels = read_label_png(tmp_path / "out" / sequence.name / f"{sequence.frames[-1]}.png")
        assert labels.shape == sequence.size
