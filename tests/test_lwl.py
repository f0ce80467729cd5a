"""LWL: search regions (the released tracker's geometry; its fixture checks are in test_official_lwl.py), the
network's Table 1 switches, the tracker on small videos (objects entering mid-video, box initialisation, bad
inputs). The learner is in test_lwl_learner.py, training in test_lwl_training.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from methods.core.backbones import build_backbone
from methods.core.merging import merge_lwl
from methods.lwl.crops import Box, crop, paste, search_region
from methods.lwl.networks import LWLNet, NetworkConfig, load_network, save_network
from methods.lwl.settings import LWLSettings
from methods.runner import build_method, run
from vos_datasets.build import build_dataset
from vos_datasets.masks import read_label_png, write_label_png
from vos_datasets.sequence import DatasetError

SMALL = {"device": "cpu", "crop_size": [64, 96], "init_iterations": 3, "update_iterations": 1, "memory_capacity": 4}
# He-initialised decoder (the CPU presets'): untrained logits in the hundreds, which the tracking tests exercise
TINY_NETWORK = {"backbone": "efficientnet_lite0", "feature_channels": 16, "label_channels": 4,
                "decoder_widths": [16, 16, 16, 8], "decoder_init": "he"}



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
    from methods.lwl.crops import Target, place_patch

    ys, xs = torch.meshgrid(torch.arange(90.0), torch.arange(150.0), indexing="ij")
    frame = torch.sin(xs / 7) * torch.cos(ys / 5)  # smooth: the integer placement moves it by < 1 px
    target = Target.from_box((64, 35, 12, 10), (60, 100), 3.0)
    patch = place_patch((90, 150), target.pos, target.scale * target.crop_size, (60, 100))
    back = paste(crop(frame[None, None], patch)[0, 0], patch, (90, 150), fill=-1)
    inside = back > -1
    assert inside.sum() > 0.8 * (patch.bottom - patch.top) * (patch.right - patch.left)
    # the released crop and paste round their placements separately: the round trip lands within a pixel
    errors = {(dy, dx): float((back[inside] - (torch.sin((xs + dx) / 7) * torch.cos((ys + dy) / 5))[inside])
                              .abs().mean()) for dy in (-1, -0.5, 0, 0.5, 1) for dx in (-1, -0.5, 0, 0.5, 1)}
    assert min(errors.values()) < 0.03
    assert (back[~inside] == -1).all()


def test_the_scale_changes_as_one_factor_within_its_limits():
    """Released: the 4-sigma size (h, w) of the merged probability gives ONE scale, sqrt(h w / base area), whose
    change per frame is clamped to [0.95, 1.1]; the aspect of the estimate plays no part (per axis, a target
    turning from tall to wide would shrink in one axis and be clamped in the other)."""
    from methods.lwl.crops import Target

    target = Target.from_box((20, 40, 10, 20), (64, 96))  # x, y, w, h
    start = float(target.scale)
    tall = torch.zeros(100, 100)
    tall[40:60, 20:30] = 1  # uniform over 20 x 10 pixels: 4 sigma = 4 sqrt((n^2 - 1) / 12) per axis
    sigma_area = 4 * np.sqrt((20**2 - 1) / 12) * 4 * np.sqrt((10**2 - 1) / 12)
    target.follow(tall)
    assert target.pos.tolist() == pytest.approx([49.5, 24.5])
    assert float(target.scale) == pytest.approx(start * 1.1, rel=1e-6)  # sqrt(265 / 200) = 1.15: clamped
    wide = torch.zeros(100, 100)
    wide[45:55, 15:35] = 1  # 10 x 20: the same area, the other aspect
    target.follow(wide)
    assert float(target.scale) == pytest.approx(start * np.sqrt(sigma_area / 200), rel=1e-5)  # x1.046: free
    before = float(target.scale)
    target.follow(torch.ones(100, 100))
    assert float(target.scale) == pytest.approx(before * 1.1, rel=1e-6)
    kept = target.pos.tolist(), float(target.scale)
    target.follow(tall * 0.1)  # 20 pixels of mass < 100: keep the estimate
    assert (target.pos.tolist(), float(target.scale)) == (kept[0], pytest.approx(kept[1], rel=1e-6))


def test_memory_labels_are_cropped_nearest_with_zeros_outside():
    """Released sample_patch(is_mask=True): a probability map is cropped with nearest sampling and zero
    padding, never blended or replicated; the image crop of the same patch replicates its border."""
    from methods.lwl.crops import place_patch

    probability = torch.zeros(1, 1, 40, 60)
    probability[..., :, :2] = 1.0  # the left border column
    probability[..., 10:20, 20:40] = torch.linspace(0, 1, 20)
    patch = place_patch((40, 60), torch.tensor([20.0, 5.0]), torch.tensor([40.0, 72.0]), (20, 36))
    assert (patch.step, patch.left, patch.right) == (1, -6, 66)  # 72 wide on 60: centred, 6 px outside each side
    label = crop(probability, patch, mask=True)[0, 0]
    # nearest (F.interpolate): output column j reads patch column 2 j, frame column 2 j - 6
    assert (label[:, :3] == 0).all() and (label[:, 3] == 1).all()
    assert set(label.unique().tolist()) <= set(probability.unique().tolist())  # nearest: no new values
    image = crop(probability, patch)[0, 0]
    assert (image[:, 0] == 1).all()  # replicated border


def test_the_box_is_the_one_the_released_evaluation_reads():
    from methods.lwl.crops import mask_box

    mask = np.zeros((30, 40), bool)
    mask[5:15, 10:30] = True
    assert mask_box(mask) == (10.0, 5.0, 19.0, 9.0)  # vos_base._mask_to_bbox: max - min per axis


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


def test_the_label_encoders_residual_block_is_torchvisions_basic_block_without_torchvision():
    """ResidualBlock is what the networks built with torchvision's BasicBlock (no BatchNorm, a 3x3 conv with bias
    as shortcut): the same parameter names, drawn in the same order at a seed, the same output bit for bit
    (forward and input gradient); LWL's network modules load without importing torchvision."""
    import subprocess
    import sys

    from torchvision.models.resnet import BasicBlock

    from methods.lwl.networks import ResidualBlock

    for stride in (1, 2):
        torch.manual_seed(7)
        shortcut = torch.nn.Conv2d(5, 6, 3, stride=stride, padding=1)
        released = BasicBlock(5, 6, stride=stride, downsample=shortcut, norm_layer=lambda channels: torch.nn.Identity())
        torch.manual_seed(7)
        ours = ResidualBlock(5, 6, stride)
        theirs_state, our_state = released.state_dict(), ours.state_dict()
        assert list(our_state) == list(theirs_state)
        assert all(torch.equal(our_state[name], tensor) for name, tensor in theirs_state.items())
        x = torch.randn(2, 5, 12, 16, requires_grad=True)
        expected = released(x)
        (expected_grad,) = torch.autograd.grad(expected.square().sum(), x)
        got = ours(x)
        (got_grad,) = torch.autograd.grad(got.square().sum(), x)
        assert torch.equal(got, expected) and torch.equal(got_grad, expected_grad)
    imported = subprocess.run([sys.executable, "-c", "import sys, methods.lwl.training, methods.lwl.tracker; "
                               "print('torchvision' in sys.modules)"], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "False"


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
def test_every_network_kind_tracks_every_frame_and_object(small_embedded, networks, tmp_path, kind, monkeypatch):
    """Every frame is written; a given mask enters its frame's merge as +-100 logits (released merge_results),
    so in the sequence's first frame the output is the given masks; later, a tracked object whose logits
    exceed 100 keeps its pixels (untrained networks' logits reach hundreds)."""
    merged_logits = []

    def merge_spy(logits):
        merged_logits.append(logits.clone())
        return merge_lwl(logits)

    monkeypatch.setattr("methods.lwl.tracker.merge_lwl", merge_spy)
    method = build_method("lwl", {**SMALL, "checkpoint": str(networks[kind])})
    dataset = build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})
    record = run(method, dataset, tmp_path / "out", progress=False)
    assert record["frames"] == 12 and record["network"]["label_encoder"] == (kind != "baseline")
    calls = iter(merged_logits)
    for sequence in dataset:
        first_frames = sequence.object_first_frames()
        for frame in sequence.frames:
            logits = next(calls)
            for object_id in (oid for oid, first in first_frames.items() if first == frame):
                given = sequence.read_mask(frame) == object_id
                as_logits = (torch.from_numpy(given.astype(np.float32)) - 0.5) * 200
                assert any(torch.equal(row, as_logits) for row in logits), (sequence.name, frame, object_id)
                if frame == sequence.frames[0]:
                    written = read_label_png(tmp_path / "out" / sequence.name / f"{frame}.png") == object_id
                    np.testing.assert_array_equal(written, given)


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


class ArraySequence:
    """A sequence held in memory (RGB frames, label masks by frame name) for the tracker's geometry tests."""

    def __init__(self, images: list[np.ndarray], masks: dict[int, np.ndarray]) -> None:
        self.name = "arrays"
        self.frames = [f"{index:05d}" for index in range(len(images))]
        self.images = dict(zip(self.frames, images, strict=True))
        self.masks = {self.frames[index]: mask for index, mask in masks.items()}
        self.size = images[0].shape[:2]

    def read_image(self, frame):
        return self.images[frame]

    def read_mask(self, frame):
        return self.masks[frame]

    def object_first_frames(self):
        first = {}
        for frame in self.frames:
            for object_id in np.unique(self.masks.get(frame, np.zeros(1, np.uint8))):
                first.setdefault(int(object_id), frame) if object_id else None
        return first

    def image_path(self, frame):
        return f"{frame}.jpg"

    def mask_path(self, frame):
        return f"{frame}.png"


def ramp_frames(count: int, height: int = 128, width: int = 200) -> list[np.ndarray]:
    """Frames whose red channel is the column and green the row: a crop's pixels say where they come from."""
    ys, xs = np.mgrid[:height, :width]
    return [np.stack([xs, ys, np.zeros_like(xs)], axis=-1).astype(np.uint8)] * count


def l_shape() -> np.ndarray:
    """An L in the middle of a ramp frame whose centroid (x 96.2, y 67.8) is far from its box centre (x 99,
    y 64 with the released reader's box)."""
    mask = np.zeros((128, 200), np.uint8)
    mask[56:74, 90:94] = 1
    mask[70:74, 90:110] = 1
    return mask


def spy_features(method) -> list[torch.Tensor]:
    """Every image batch the tracker's network extracts features from, in order."""
    seen, features = [], method.net.features

    def spy(images):
        seen.append(images.detach().cpu().clone())
        return features(images)

    method.net.features = spy
    return seen


def crop_centre(crop: torch.Tensor) -> tuple[float, float]:
    """(y, x) of a ramp frame at a crop's centre (the mean of its four centre pixels)."""
    h, w = crop.shape[-2:]
    middle = crop[0, :, h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1].mean(dim=(1, 2))
    return float(middle[1]), float(middle[0])


def test_the_first_region_is_centred_on_the_ground_truth_box_not_the_centroid(networks):
    """Released initialize: pos = the box centre (y + (h - 1) / 2, x + (w - 1) / 2, the box of the released
    evaluation's reader), rounded for the first crop; the mask's centroid plays no part."""
    method = build_method("lwl", {**SMALL, "checkpoint": str(networks["full"])})
    crops = spy_features(method)
    list(method.run_sequence(ArraySequence(ramp_frames(1), {0: l_shape()})))
    y, x = crop_centre(crops[0])
    assert (y, x) == (pytest.approx(64.0, abs=1.0), pytest.approx(99.0, abs=1.0))
    ys, xs = np.nonzero(l_shape())
    assert abs(x - xs.mean()) > 2.5 and abs(y - ys.mean()) > 2.5


def test_tracked_regions_sit_half_a_feature_cell_off_the_estimate(networks):
    """Released get_centered_sample_pos: where the crop's feature grid + the 3x3 filter is even (64x96 crops:
    a 4x6 grid) the region's centre is pos + 8 x scale px per axis (half a stride-16 cell, in frame px)."""
    method = build_method("lwl", {**SMALL, "checkpoint": str(networks["full"])})
    crops = spy_features(method)
    list(method.run_sequence(ArraySequence(ramp_frames(2), {0: l_shape()})))
    assert crops[0].shape[-2:] == (64, 96) and crops[1].shape[-2:] == (64, 96)
    # the estimate after frame 0, computed here: the merged map of a given mask is the mask; its centroid,
    # and the scale of the evaluation's box (19 x 17) changed by sqrt(4-sigma area / box area), clamped
    ys, xs = np.nonzero(l_shape())
    start = np.sqrt(25 * 19 * 17 / (64 * 96))
    scale = start * np.clip(np.sqrt(4 * ys.std() * 4 * xs.std() / (19 * 17)), 0.95, 1.1)
    shift = 8 * scale
    assert shift > 3
    y, x = crop_centre(crops[1])
    assert (y, x) == (pytest.approx(ys.mean() + shift, abs=1.0), pytest.approx(xs.mean() + shift, abs=1.0))


def test_box_initialisation_runs_on_the_whole_frame_from_the_ground_truth_box(networks):
    """Released LWL.initialize with init_with_box: backbone, box encoder and decoder on the whole frame at its
    native size, the box rasterised there (bbox_to_mask of the evaluation's box); the first crop is placed
    from that box, not from the predicted mask."""
    settings = {**SMALL, "checkpoint": str(networks["box"]), "box_init": True, "update_interval": 5,
                "memory_learning_rate": 0.2, "first_weight_floor": None, "lower_init_weight": True}
    method = build_method("lwl", settings)
    crops = spy_features(method)
    boxes, box_logits = [], method.net.box_mask_logits

    def box_spy(pyramid, features, box_masks, size):
        boxes.append((box_masks.detach().cpu().clone(), tuple(size)))
        return box_logits(pyramid, features, box_masks, size)

    method.net.box_mask_logits = box_spy
    frames = ramp_frames(1)
    list(method.run_sequence(ArraySequence(frames, {0: l_shape()})))
    torch.testing.assert_close(crops[0], torch.from_numpy(frames[0]).permute(2, 0, 1)[None].float())
    expected = np.zeros((128, 200), np.float32)
    expected[56:73, 90:109] = 1  # x 50, y 36, w = h = max - min: the last row and column are not in it
    (box_masks, size), = boxes
    assert size == (128, 200)
    np.testing.assert_array_equal(box_masks[0, 0].numpy(), expected)
    y, x = crop_centre(crops[1])  # the first crop: from the box, whatever the untrained decoder predicted
    assert (y, x) == (pytest.approx(64.0, abs=1.0), pytest.approx(99.0, abs=1.0))


def test_updates_come_after_frames_4_and_9_with_an_interval_of_5(networks):
    """Released update_target_model: at frame_num n (1 = the first) the previous frame joins the memory and tau
    is updated when (n - 1) % train_skipping == 0, i.e. after frames 4, 9, ... (0-based) for lwl_boxinit."""
    settings = {**SMALL, "checkpoint": str(networks["full"]), "update_interval": 5}
    method = build_method("lwl", settings)
    frames_done, learned, learn = [], [], method.net.learn_encoded

    def learn_spy(*args):
        learned.append(len(frames_done))
        return learn(*args)

    method.net.learn_encoded = learn_spy
    for frame, _ in method.run_sequence(ArraySequence(ramp_frames(12), {0: l_shape()})):
        frames_done.append(frame)
    assert learned == [0, 4, 9]


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


# --- decoder initialisation (docs/lwl.md, "Decoder initialisation") -----------------------------------------
def test_decoder_init_follows_the_released_code_and_can_be_the_papers():
    """Released LWTLDecoder: PyTorch's default conv init (weights and biases U(+-1/sqrt(fan_in))), the default;
    `decoder_init: he` the paper's He init (N(0, 2 / (k^2 out_channels)), zero biases)."""
    backbone = build_backbone("efficientnet_lite0", pretrained=False)
    tiny = {key: value for key, value in TINY_NETWORK.items() if key != "decoder_init"}
    assert NetworkConfig().decoder_init == "pytorch"
    torch.manual_seed(0)
    released = LWLNet(NetworkConfig(**tiny), backbone=backbone).decoder
    torch.manual_seed(0)
    paper = LWLNet(NetworkConfig(**tiny, decoder_init="he"), backbone=backbone).decoder
    convs = [(r, p) for r, p in zip(released.modules(), paper.modules(), strict=True) if isinstance(r, torch.nn.Conv2d)]
    assert convs and any(r.bias is not None for r, _ in convs)
    for code, his in convs:
        fan_in = code.weight[0].numel()
        assert code.weight.abs().max() <= fan_in**-0.5
        assert code.bias is None or (0 < code.bias.abs().max() <= fan_in**-0.5)
        assert his.bias is None or not his.bias.any()
        fan_out = code.weight[:, 0].numel()  # out_channels x k^2
        if code.weight.numel() >= 1000:  # enough draws for the spread
            assert float(his.weight.detach().std()) == pytest.approx((2 / fan_out) ** 0.5, rel=0.15)


def test_the_paper_preset_trains_lwl_from_the_released_init_and_the_cpu_presets_name_he():
    """The paper's He init saturates the paper's recipe (Lovasz, frozen BatchNorm); the CPU presets' recipe
    (cross-entropy, decoder batch statistics) trains from it and names it."""
    presets = Path(__file__).resolve().parent.parent / "config" / "presets"
    seen = {}
    for preset in sorted(presets.glob("*.yaml")):
        for name, training in (yaml.safe_load(preset.read_text()).get("trainings") or {}).items():
            if training.get("method") == "lwl":
                network = NetworkConfig.from_dict((training.get("settings") or {}).get("network") or {})
                seen[f"{preset.stem}/{name}"] = network.decoder_init
    assert any(key.startswith("paper/") for key in seen) and any(key.startswith("ci/") for key in seen)
    assert {key: init for key, init in seen.items() if init != ("pytorch" if key.startswith("paper/") else "he")} == {}
