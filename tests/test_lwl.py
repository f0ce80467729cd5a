"""LWL: search regions, the network's Table 1 switches, the tracker on small videos (objects entering
mid-video, box initialisation, bad inputs). The learner is in test_lwl_learner.py, training in
test_lwl_training.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from methods.core.backbones import build_backbone
from methods.lwl.crops import Box, box_from_probability, crop, paste, search_region
from methods.lwl.networks import LWLNet, NetworkConfig, load_network, save_network
from methods.lwl.settings import LWLSettings
from methods.runner import build_method, run
from vos_datasets.build import build_dataset
from vos_datasets.masks import read_label_png, write_label_png
from vos_datasets.sequence import DatasetError

SMALL = {"device": "cpu", "crop_size": [64, 96], "init_iterations": 3, "update_iterations": 1, "memory_capacity": 4}
TINY_NETWORK = {"backbone": "efficientnet_lite0", "feature_channels": 16, "label_channels": 4,
                "decoder_widths": [16, 16, 16, 8]}



@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    """Untrained networks (fixed seed) of each Table 1 kind and with a box encoder, saved as training saves."""
    folder = tmp_path_factory.mktemp("lwl")
    backbone = build_backbone("efficientnet_lite0")
    kinds = {"full": {}, "baseline": {"label_encoder": False, "weight_predictor": False, "end_to_end": False},
             "label-generator": {"weight_predictor": False}, "box": {"box_encoder": True}}
    paths = {}
    for name, switches in kinds.items():
        torch.manual_seed(0)
        paths[name] = folder / f"{name}.pt"
        save_network(paths[name], LWLNet(NetworkConfig(**TINY_NETWORK, **switches), backbone=backbone))
    return paths


def test_search_region_is_five_times_the_target_with_the_crop_aspect():
    region = search_region(Box(200, 120, 20, 10), (480, 854), (480, 832), scale=5)
    assert region.width * region.height == pytest.approx(25 * 20 * 10)
    assert region.width / region.height == pytest.approx(832 / 480)
    assert region.x0 + region.width / 2 == pytest.approx(200) and region.y0 + region.height / 2 == pytest.approx(120)
    near_edge = search_region(Box(5, 5, 20, 10), (480, 854), (480, 832), scale=5)
    assert near_edge.x0 == 0 and near_edge.y0 == 0  # shifted inside the frame
    huge = search_region(Box(427, 240, 800, 460), (480, 854), (480, 832), scale=5)
    assert huge.width == pytest.approx(854) or huge.height == pytest.approx(480)  # fits the major direction


def test_crop_then_paste_returns_the_region():
    generator = np.random.default_rng(0)
    frame = generator.random((90, 150)).astype(np.float32)
    region = search_region(Box(70, 40, 12, 10), (90, 150), (60, 100), scale=3)
    back = paste(crop(frame, region), region, (90, 150), fill=-1)
    inside = back > -1
    assert inside.sum() > 0.8 * region.width * region.height
    assert np.abs(back[inside] - frame[inside]).mean() < 0.08  # resampled twice, bilinear
    assert (back[~inside] == -1).all()


def test_box_follows_the_probability_mass_with_limited_scale_change():
    p = np.zeros((100, 100), np.float32)
    p[40:60, 20:30] = 1
    box = box_from_probability(p)
    assert (box.cx, box.cy) == (pytest.approx(24.5), pytest.approx(49.5))
    grown = box_from_probability(np.ones((100, 100), np.float32), previous=box)
    assert grown.width == pytest.approx(box.width * 1.1) and grown.height == pytest.approx(box.height * 1.1)
    faint = box_from_probability(p * 0.1, previous=box)  # 20 pixels of mass < 100: keep the previous box
    assert faint == box
    assert box_from_probability(np.zeros((10, 10), np.float32), min_mass=0) is None  # nothing to follow


def test_settings_and_networks_are_checked_with_clear_messages(networks, tmp_path):
    with pytest.raises(ValueError, match="unknown LWL settings"):
        LWLSettings.from_dict({"checkpoint": "x", "crop_sise": [1, 2]})
    with pytest.raises(ValueError, match="memory_learning_rate=1.5"):
        LWLSettings.from_dict({"checkpoint": "x", "memory_learning_rate": 1.5})
    with pytest.raises(FileNotFoundError, match="run the training rule first"):
        load_network(tmp_path / "missing.pt")
    frtm_file = tmp_path / "frtm.pt"
    torch.save({"head": "refiner", "state_dict": {}}, frtm_file)
    with pytest.raises(ValueError, match="not an LWL network"):
        load_network(frtm_file)
    net = load_network(networks["full"])
    with pytest.raises(ValueError, match="no box encoder"):
        net.box_mask_logits({}, torch.zeros(1), torch.zeros(1), (8, 8))


def test_baseline_cuts_the_graph_at_the_learner_and_the_others_do_not(networks):
    images = torch.rand(1, 3, 3, 64, 96) * 255
    masks = torch.zeros(1, 3, 1, 64, 96)
    masks[..., 20:40, 30:60] = 1
    for name, reaches in (("baseline", False), ("label-generator", True), ("full", True)):
        net = load_network(networks[name]).train()
        net(images, masks, 2, 1).sum().backward()
        assert (net.learner.reg.grad is not None and net.learner.reg.grad.abs() > 0) == reaches, name
        if net.mask_encoder is not None:
            assert net.mask_encoder.label_pred[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["full", "baseline", "label-generator"])
def test_every_network_kind_tracks_every_frame_and_object(small_embedded, networks, tmp_path, kind):
    method = build_method("lwl", {**SMALL, "checkpoint": str(networks[kind])})
    dataset = build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})
    record = run(method, dataset, tmp_path / "out", progress=False)
    assert record["frames"] == 12 and record["network"]["label_encoder"] == (kind != "baseline")
    for sequence in dataset:
        for object_id, frame in sequence.object_first_frames().items():
            given = read_label_png(tmp_path / "out" / sequence.name / f"{frame}.png") == object_id
            np.testing.assert_array_equal(given, sequence.read_mask(frame) == object_id)


def test_a_network_file_without_the_variants_switches_is_refused(networks):
    """A row that names its weights file (`checkpoint:`) gets its variant's switches checked at load time."""
    wanted = {"label_encoder": False, "weight_predictor": False, "end_to_end": False}
    build_method("lwl", {**SMALL, "checkpoint": str(networks["baseline"]), "network": wanted})
    with pytest.raises(ValueError, match=r"full.pt: its network has \{'label_encoder': True"):
        build_method("lwl", {**SMALL, "checkpoint": str(networks["full"]), "network": wanted})


def test_box_initialisation_uses_only_the_box(small_embedded, networks, tmp_path):
    settings = {**SMALL, "checkpoint": str(networks["box"]), "box_init": True, "update_interval": 2,
                "memory_learning_rate": 0.2, "first_weight_floor": None}
    dataset = build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})
    sequence = next(iter(dataset))
    outputs = [labels for _, labels in build_method("lwl", settings).run_sequence(sequence)]
    assert len(outputs) == len(sequence.frames)
    with pytest.raises(ValueError, match="no box encoder"):
        list(build_method("lwl", {**settings, "checkpoint": str(networks["full"])}).run_sequence(sequence))


def test_tracker_is_deterministic(small_embedded, networks):
    sequence = next(iter(build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})))
    runs = [[labels for _, labels in build_method("lwl", {**SMALL, "checkpoint": str(networks["full"])})
             .run_sequence(sequence)] for _ in range(2)]
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def _empty_first_mask(copy):
    sequence = next(iter(build_dataset({"kind": "davis", "root": str(copy), "split": "val"})))
    object_id, frame = sorted(sequence.object_first_frames().items())[0]
    ids = sequence.read_mask(frame)
    ids[ids == object_id] = 0
    write_label_png(sequence.mask_path(frame), ids)
    return sequence, ValueError, f"{frame}.png: object {object_id} is empty in the frame where it is given"


def _unknown_object(copy):
    meta = json.loads((copy / "meta.json").read_text())
    name = sorted(meta["videos"])[-1]
    first = sorted(meta["videos"][name]["objects"].values(), key=lambda o: o["frames"][0])[0]["frames"][0]
    meta["videos"][name]["objects"]["9"] = {"frames": [first]}
    (copy / "meta.json").write_text(json.dumps(meta))
    sequence = next(s for s in build_dataset({"kind": "davis", "root": str(copy), "split": "val"}) if s.name == name)
    return sequence, ValueError, "object 9 is empty in the frame where it is given"


def _frame_of_another_size(copy):
    sequence = next(iter(build_dataset({"kind": "davis", "root": str(copy), "split": "val"})))
    path = sequence.image_path(sequence.frames[3])
    Image.open(path).resize((120, 80)).save(path)
    return sequence, DatasetError, f"{sequence.frames[3]}.jpg: frame is 120x80 but the sequence is 160x96"


@pytest.mark.parametrize("corrupt", [_empty_first_mask, _unknown_object, _frame_of_another_size])
def test_bad_inputs_are_refused_naming_the_file(small_embedded, networks, tmp_path, corrupt):
    copy = tmp_path / "copy"
    shutil.copytree(small_embedded, copy)
    sequence, error, message = corrupt(copy)
    method = build_method("lwl", {**SMALL, "checkpoint": str(networks["full"])})
    with pytest.raises(error, match=message):
        list(method.run_sequence(sequence))


def test_memory_weights_follow_the_released_lwl_tracker():
    """methods.core.memory rule "released" (released update_sample_weights): new weight = previous new weight /
    (1 - eta); the first update divides the stored weights by (1 - eta) (lwl_ytvos) or gives the new sample 1
    (lwl_boxinit `lower_init_weight`); the floor's arithmetic as released."""
    from methods.core.memory import SampleMemory

    ytvos = SampleMemory(4, 0.1, protect_first=True, first_weight_floor=0.25, rule="released")
    ytvos.initialise([(torch.tensor(0.0),)], [1.0])
    ytvos.add((torch.tensor(1.0),))
    assert ytvos.filled_weights().tolist() == pytest.approx([1 / 0.9 / (1 / 0.9 + 0.1), 0.1 / (1 / 0.9 + 0.1)])
    ytvos.add((torch.tensor(2.0),))
    w = np.array([1 / 0.9, 0.1, 0.1 / 0.9]) / (1 / 0.9 + 0.1)
    w[2] = w[1] / 0.9
    assert ytvos.filled_weights().tolist() == pytest.approx((w / w.sum()).tolist())
    for value in range(3, 12):  # full: the first frame is never replaced and keeps the floor
        assert ytvos.add((torch.tensor(float(value)),)) != 0
    assert float(ytvos.weights[0]) >= 0.25
    fast = SampleMemory(3, 0.5, protect_first=True, first_weight_floor=0.25, rule="released")
    fast.initialise([(torch.tensor(0.0),)], [1.0])
    for value in range(1, 7):
        fast.add((torch.tensor(float(value)),))
    # the floor acted: first = 0.25, the others divided by (0.25 + their sum) as released: the total exceeds 1
    assert float(fast.weights[0]) == pytest.approx(0.25) and float(fast.weights.sum()) > 1.01

    box = SampleMemory(3, 0.2, rule="released", lower_init_weight=True)
    box.initialise([(torch.tensor(0.0),)], [1.0])
    box.add((torch.tensor(1.0),))
    assert box.filled_weights().tolist() == pytest.approx([0.5, 0.5])
    box.add((torch.tensor(2.0),))
    slots = [box.add((torch.tensor(float(v)),)) for v in range(3, 6)]
    assert 0 in slots  # without a floor the first frame is replaced once the memory is full
    with pytest.raises(ValueError, match="exactly when it has a weight floor"):
        SampleMemory(3, 0.1, protect_first=True, rule="released")


def test_the_baseline_label_is_the_mask_area_averaged_onto_the_feature_grid():
    net = LWLNet(NetworkConfig(**TINY_NETWORK, label_encoder=False, weight_predictor=False),
                 backbone=build_backbone("efficientnet_lite0", pretrained=False))
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :4, :6] = 1  # a quarter-covered cell is 0.25..., not a bilinear point sample
    labels, weights = net.labels_and_weights(mask, (2, 2))
    torch.testing.assert_close(labels[0, 0], torch.tensor([[24 / 256, 0.0], [0.0, 0.0]]))
    assert torch.equal(weights, torch.ones_like(labels))
