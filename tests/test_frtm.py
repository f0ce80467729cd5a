"""FRTM: backbones, memory, settings, the tracker on small videos (objects entering mid-video, bad inputs),
and the heads of the Table 1 rows. Training (resumption, two processes) is in test_frtm_training.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from methods.core.backbones import build_backbone
from methods.core.memory import SampleMemory
from methods.frtm.networks import build_head, load_head, save_head
from methods.frtm.settings import FRTMSettings
from methods.frtm.target_model import pixel_weights
from methods.runner import build_method, run
from vos_datasets.build import build_dataset
from vos_datasets.masks import read_label_png, write_label_png
from vos_datasets.sequence import DatasetError

SMALL = {"backbone": "efficientnet_lite0", "device": "cpu", "target_channels": 8, "augmented_samples": 3,
         "init_cg_iterations": [3, 3], "update_cg_iterations": 3, "update_interval": 2, "memory_capacity": 6}



@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    """Untrained heads (random weights, fixed seed) saved as the train rule saves them."""
    folder = tmp_path_factory.mktemp("heads")
    channels = build_backbone("efficientnet_lite0", pretrained=False).channels
    torch.manual_seed(0)
    paths = {}
    for kind in ("refiner", "scale_offset", "base_net"):
        paths[kind] = folder / f"{kind}.pt"
        save_head(paths[kind], build_head(kind, channels), kind, "efficientnet_lite0")
    return paths


def test_backbone_pyramids_have_the_documented_strides_and_channels():
    image = torch.zeros(1, 3, 96, 160)
    for name in ("efficientnet_lite0", "resnet18"):
        backbone = build_backbone(name, pretrained=False)
        features = backbone(image)
        assert sorted(features) == [4, 8, 16, 32]
        for stride, tensor in features.items():
            assert tensor.shape[1] == backbone.channels[stride]
            assert tensor.shape[2] == pytest.approx(96 / stride, abs=1)
        assert not any(p.requires_grad for p in backbone.parameters())
        backbone.train()
        assert not backbone.training  # frozen BatchNorm whatever a parent module asks


def test_memory_decays_weights_and_replaces_the_lightest():
    memory = SampleMemory(capacity=3, learning_rate=0.1)
    memory.initialise([(torch.tensor(0.0),), (torch.tensor(1.0),)], [2, 1])
    assert memory.weights.tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    assert memory.add((torch.tensor(2.0),)) == 2  # the empty slot fills first
    assert memory.weights.tolist() == pytest.approx([0.6, 0.3, 0.1])
    assert memory.add((torch.tensor(3.0),)) == 2  # then the lightest is replaced
    assert memory.weights.tolist() == pytest.approx([0.54 / 0.91, 0.27 / 0.91, 0.1 / 0.91])
    assert float(memory.weights.sum()) == pytest.approx(1.0)
    assert memory.stacked(0).tolist() == [0.0, 1.0, 3.0]


def test_memory_can_protect_the_first_sample_and_keep_its_weight_floor():
    memory = SampleMemory(capacity=2, learning_rate=0.5, protect_first=True, first_weight_floor=0.25)
    memory.initialise([(torch.tensor(0.0),)], [1])
    for value in range(1, 6):
        memory.add((torch.tensor(float(value)),))
    assert memory.stacked(0).tolist() == [0.0, 5.0]
    assert float(memory.weights[0]) >= 0.25 - 1e-12 and float(memory.weights.sum()) == pytest.approx(1.0)


def test_protected_samples_are_never_replaced_under_either_rule():
    for rule in ("decay", "released"):
        memory = SampleMemory(capacity=4, learning_rate=0.5, rule=rule)
        memory.initialise([(torch.tensor(float(v)),) for v in (0, 1, 2)], [1, 1, 1], protected=2)
        for value in range(3, 10):
            memory.add((torch.tensor(float(value)),))
        assert memory.stacked(0).tolist()[:2] == [0.0, 1.0], rule
        assert float(memory.weights.sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="protected=4"):
        SampleMemory(capacity=4, learning_rate=0.5).initialise([(torch.tensor(0.0),)] * 4, [1] * 4, protected=4)


def test_pixel_weights_balance_over_the_labelled_pixels_only():
    labels = torch.zeros(1, 100, 100)
    validity = torch.zeros(1, 100, 100)
    validity[0, :10, :10] = 1  # 100 labelled pixels
    labels[0, :2, :10] = 1  # 20 of them the target: a fifth of the labelled pixels, above kappa_min
    weights = pixel_weights(labels, 0.1, validity)
    assert torch.equal(weights[validity > 0], torch.ones(100))
    # counted over the whole frame the target would be 0.2 % of it, and weighed up 50 times
    assert float(pixel_weights(labels, 0.1)[0, 0, 0]) ** 2 == pytest.approx(0.1 / 0.002)


def test_unlabelled_pixels_carry_no_loss_and_all_ones_is_the_dense_case():
    from methods.frtm.settings import TargetModelSettings
    from methods.frtm.target_model import TargetModel

    model = TargetModel(4, TargetModelSettings(channels=2), seed=0)
    labels = (torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    weights = torch.tensor([0.5, 0.5])
    _, _, dense = model._prepare(labels, weights)
    _, _, ones = model._prepare(labels, weights, torch.ones_like(labels))
    assert torch.equal(dense, ones)
    validity = torch.ones_like(labels)
    validity[:, :, 4:] = 0
    _, _, sparse = model._prepare(labels, weights, validity)
    assert torch.equal(sparse[:, :, 4:], torch.zeros(2, 8, 4)) and bool((sparse[:, :, :4] > 0).all())


def test_target_feature_scale_multiplies_the_features_before_w1():
    """The CPU backbone's features are scaled to RMS ~1 before D (a named deviation); a model with scale s on x
    must learn and predict exactly as a model with scale 1 on s*x, and the settings resolve the backbone's."""
    from methods.frtm.target_model import TargetModel, TargetModelSettings

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(3, 16, 6, 8, generator=generator) * 6.5
    labels = (torch.rand(3, 24, 32, generator=generator) > 0.7).float()
    weights = torch.full((3,), 1 / 3)
    scaled = TargetModel(16, TargetModelSettings(channels=4, init_cg_iterations=(3, 3), feature_scale=0.2))
    plain = TargetModel(16, TargetModelSettings(channels=4, init_cg_iterations=(3, 3)))
    assert scaled.initialise(features, labels, weights) == pytest.approx(plain.initialise(features * 0.2, labels,
                                                                                          weights), rel=1e-4)
    torch.testing.assert_close(scaled.scores(features), plain.scores(features * 0.2), rtol=1e-4, atol=1e-5)
    lite = FRTMSettings.from_dict({**SMALL, "checkpoint": "x.pt"})
    assert lite.target_model().feature_scale == pytest.approx(1 / 6.5)
    assert FRTMSettings.from_dict({**SMALL, "backbone": "resnet101", "checkpoint": "x.pt"}).target_model().feature_scale == 1.0
    with pytest.raises(ValueError, match="target_feature_scale"):
        FRTMSettings.from_dict({**SMALL, "checkpoint": "x.pt", "target_feature_scale": 0})


def test_settings_are_validated_with_clear_messages():
    with pytest.raises(ValueError, match="unknown FRTM settings .'c'."):
        FRTMSettings.from_dict({"c": 96, "checkpoint": "x"})
    with pytest.raises(ValueError, match="checkpoint is not set"):
        FRTMSettings.from_dict({})
    with pytest.raises(ValueError, match="update_interval=0"):
        FRTMSettings.from_dict({"checkpoint": "x", "update_interval": 0})
    with pytest.raises(ValueError, match="memory_capacity=10: must hold the 20 initial samples"):
        FRTMSettings.from_dict({"checkpoint": "x", "memory_capacity": 10})
    with pytest.raises(ValueError, match="belongs to the Base net"):
        FRTMSettings.from_dict({"checkpoint": "x", "fine_tune_iterations": 5})
    assert FRTMSettings.from_dict({"checkpoint": "x"}).target_channels == 96  # the paper's Ours


def test_a_head_for_another_backbone_is_refused(heads):
    channels = build_backbone("resnet18", pretrained=False).channels
    with pytest.raises(ValueError, match="for backbone 'efficientnet_lite0'"):
        load_head(heads["refiner"], "refiner", "resnet18", channels)
    with pytest.raises(FileNotFoundError, match="run the training rule first"):
        load_head(heads["refiner"].with_name("missing.pt"), "refiner", "efficientnet_lite0", channels)


@pytest.mark.parametrize("variant", [
    {"head": "refiner"},
    {"head": "refiner", "update": False},
    {"head": "scale_offset", "update": False},
    {"head": "base_net", "update": False},
    {"head": "base_net", "update": False, "fine_tune_iterations": 2, "fine_tune_batch": 2},
])
def test_every_head_kind_tracks_every_frame_and_object(small_embedded, heads, tmp_path, variant):
    method = build_method("frtm", {**SMALL, **variant, "checkpoint": str(heads[variant["head"]])})
    dataset = build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})
    record = run(method, dataset, tmp_path / "out", progress=False)
    assert record["frames"] == 12 and record["settings"]["head"] == variant["head"]
    for sequence in dataset:
        for object_id, frame in sequence.object_first_frames().items():
            given = read_label_png(tmp_path / "out" / sequence.name / f"{frame}.png") == object_id
            np.testing.assert_array_equal(given, sequence.read_mask(frame) == object_id)


def test_tracker_is_deterministic_and_keeps_score_maps(small_embedded, heads):
    dataset = build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})
    sequence = next(iter(dataset))
    outputs = []
    for _ in range(2):
        method = build_method("frtm", {**SMALL, "checkpoint": str(heads["refiner"]), "keep_score_maps": True})
        outputs.append([labels for _, labels in method.run_sequence(sequence)])
    for a, b in zip(*outputs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert method.score_maps and all(s.ndim == 2 for s in method.score_maps.values())


def test_input_size_runs_smaller_and_writes_native_size(small_embedded, heads, tmp_path):
    method = build_method("frtm", {**SMALL, "checkpoint": str(heads["refiner"]), "input_size": [64, 96]})
    dataset = build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})
    sequence = next(iter(dataset))
    for _, labels in method.run_sequence(sequence):
        assert labels.shape == sequence.size


def _copy(small_embedded, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_embedded, copy)
    return copy


def test_an_empty_first_mask_is_refused(small_embedded, heads, tmp_path):
    copy = _copy(small_embedded, tmp_path)
    sequence = next(iter(build_dataset({"kind": "davis", "root": str(copy), "split": "val"})))
    object_id, frame = sorted(sequence.object_first_frames().items())[0]
    ids = sequence.read_mask(frame)
    ids[ids == object_id] = 0
    write_label_png(sequence.mask_path(frame), ids)
    method = build_method("frtm", {**SMALL, "checkpoint": str(heads["refiner"])})
    with pytest.raises(ValueError, match=f"{frame}.png: object {object_id} is empty in the frame where it is given"):
        list(method.run_sequence(sequence))


def test_an_object_id_that_never_appears_is_refused(small_embedded, heads, tmp_path):
    copy = _copy(small_embedded, tmp_path)
    meta = json.loads((copy / "meta.json").read_text())
    name = sorted(meta["videos"])[-1]
    first = sorted(meta["videos"][name]["objects"].values(), key=lambda o: o["frames"][0])[0]["frames"][0]
    meta["videos"][name]["objects"]["9"] = {"frames": [first]}
    (copy / "meta.json").write_text(json.dumps(meta))
    dataset = build_dataset({"kind": "davis", "root": str(copy), "split": "val"})
    sequence = next(s for s in dataset if s.name == name)
    method = build_method("frtm", {**SMALL, "checkpoint": str(heads["refiner"])})
    with pytest.raises(ValueError, match="object 9 is empty in the frame where it is given"):
        list(method.run_sequence(sequence))


def test_a_frame_of_another_size_is_refused(small_embedded, heads, tmp_path):
    copy = _copy(small_embedded, tmp_path)
    sequence = next(iter(build_dataset({"kind": "davis", "root": str(copy), "split": "val"})))
    path = sequence.image_path(sequence.frames[3])
    Image.open(path).resize((120, 80)).save(path)
    method = build_method("frtm", {**SMALL, "checkpoint": str(heads["refiner"])})
    with pytest.raises(DatasetError, match=f"{sequence.frames[3]}.jpg: frame is 120x80 but the sequence is 160x96"):
        list(method.run_sequence(sequence))


def test_score_maps_are_saved_beside_the_masks(small_embedded, heads, tmp_path):
    method = build_method("frtm", {**SMALL, "checkpoint": str(heads["refiner"])})
    dataset = build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})
    run(method, dataset, tmp_path / "masks", progress=False, score_maps_dir=tmp_path / "score_maps",
        score_map_sequences=["all"])
    for sequence in dataset:
        maps = np.load(tmp_path / "score_maps" / f"{sequence.name}.npz")
        first = min(sequence.object_first_frames().values())
        later = [f for f in sequence.frames if f > first]
        assert {key.split("_")[0] for key in maps.files} == set(later)
    # By default only the first sequence's maps are kept (copying them sits inside the timed loop).
    record = run(method, dataset, tmp_path / "m1", tmp_path / "t.json", progress=False, score_maps_dir=tmp_path / "s1")
    first_name = min(sequence.name for sequence in dataset)
    assert sorted(p.name for p in (tmp_path / "s1").iterdir()) == [f"{first_name}.npz"]
    assert record["score_maps_kept_for"] == [first_name]
    with pytest.raises(ValueError, match="not in the dataset: \\['nope'\\]"):
        run(method, dataset, tmp_path / "m3", progress=False, score_maps_dir=tmp_path / "s3", score_map_sequences=["nope"])
    with pytest.raises(ValueError, match="has no coarse score maps"):
        run(build_method("first_frame_copy"), dataset, tmp_path / "m2", progress=False, score_maps_dir=tmp_path / "s2")


# --- behaviours of the released code (andr345/frtm-vos e994ac2) -----------------------------------------
def test_target_init_follows_the_released_conv_default_and_can_be_the_papers():
    from methods.frtm.target_model import TargetModel, TargetModelSettings

    code = TargetModel(64, TargetModelSettings(channels=16), seed=3)
    again = TargetModel(64, TargetModelSettings(channels=16), seed=3)
    paper = TargetModel(64, TargetModelSettings(channels=16, init="kaiming_normal"), seed=3)
    assert torch.equal(code.w1, again.w1) and torch.equal(code.w2, again.w2)  # seeded, deterministic
    for w, fan_in in ((code.w1, 64), (code.w2, 16 * 9)):  # U(+-1/sqrt(fan_in)), nn.Conv2d's default
        bound = fan_in**-0.5
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
        assert float(w.std()) == pytest.approx(bound / 3**0.5, rel=0.25)
    assert float(paper.w1.std()) == pytest.approx((2 / 64) ** 0.5, rel=0.15)
    with pytest.raises(ValueError, match="target_init"):
        FRTMSettings.from_dict({"checkpoint": "x", "target_init": "xavier"})


def test_a_label_below_10_pixels_neither_inserts_nor_optimises(monkeypatch):
    """Released Discriminator.update returns before the insert AND before the optimisation; the frame
    still counts towards the update interval (released frame_num counts every classified frame)."""
    from methods.frtm import tracker as tracker_module

    frtm = tracker_module.FRTM.__new__(tracker_module.FRTM)
    frtm.settings = FRTMSettings.from_dict({"checkpoint": "x", "update_interval": 2})
    updates = []
    monkeypatch.setattr(frtm, "_update", lambda t: updates.append(t.tracked_frames), raising=False)
    obj = tracker_module.ObjectTracker(1)
    obj.memory = SampleMemory(4, 0.1)
    obj.projected = torch.zeros(1, 2, 3, 3)
    small = torch.zeros(1, 8, 8)
    small[0, :3, :3] = 0.9  # 9 pixels > 0.5
    big = small.clone()
    big[0, 3, :4] = 0.9  # 13
    frtm._remember("f1", [obj], big)  # tracked frame 1: insert, no optimisation (interval 2)
    frtm._remember("f2", [obj], small)  # frame 2: optimisation due, but the label is too small
    assert len(obj.memory) == 1 and updates == []
    frtm._remember("f3", [obj], big)
    frtm._remember("f4", [obj], big)  # frame 4: insert and optimise
    assert len(obj.memory) == 3 and updates == [4]


def test_d_only_head_starts_at_a_sensible_threshold_and_learns_one():
    """ScaleOffsetHead starts at scale 10, offset -5 (threshold s = 0.5) and a short fit on D-like scores
    (about 1 on the object, 0 elsewhere, noisy) keeps the threshold -offset/scale between them."""
    from methods.frtm.networks import ScaleOffsetHead

    head = ScaleOffsetHead()
    assert -head.offset.item() / head.scale.item() == pytest.approx(0.5)
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(4, 1, 16, 16, generator=generator) > 0.7).float()
    scores = labels * 0.9 + 0.05 + 0.2 * torch.randn(labels.shape, generator=generator)
    optimiser = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(200):
        logits = head({}, scores, (16, 16))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    threshold = -head.offset.item() / head.scale.item()
    assert 0.3 < threshold < 0.7 and head.scale.item() > 1


def test_fine_tuning_keeps_batchnorm_statistics(heads):
    """Base net + F-T: BatchNorm stays in eval mode while the head is fine-tuned on the first frame."""
    from methods.frtm.tracker import fine_tune

    channels = build_backbone("efficientnet_lite0", pretrained=False).channels
    head = build_head("base_net", channels)
    sizes = {4: 16, 8: 8, 16: 4, 32: 2}
    generator = torch.Generator().manual_seed(0)
    pyramid = {s: torch.randn(1, channels[s], n, n, generator=generator) for s, n in sizes.items()}
    before = {k: v.clone() for k, v in head.state_dict().items() if "running" in k}
    assert before
    settings = FRTMSettings.from_dict({"checkpoint": "x", "head": "base_net", "fine_tune_iterations": 2})
    fine_tune(head, pyramid, torch.ones(1, 64, 64), [pyramid], torch.ones(1, 64, 64), settings, seed=0)
    after = head.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_authors_fps_protocol_gives_the_masks_and_maps_of_the_streamed_run(small_embedded, heads, tmp_path):
    """Frames preloaded on the device, labels left there until the sequence ends, a warm-up before each
    sequence (methods.runner, "authors"): the same masks and score maps as frame-by-frame, and the warm-up's
    frames neither written nor counted."""
    dataset = build_dataset({"kind": "davis", "root": str(small_embedded), "split": "val"})
    records = {}
    for protocol in ("streaming", "authors"):
        method = build_method("frtm", {**SMALL, "checkpoint": str(heads["refiner"])})
        records[protocol] = run(method, dataset, tmp_path / protocol, progress=False, fps_protocol=protocol,
                                warm_up_frames=2, score_maps_dir=tmp_path / f"maps-{protocol}",
                                score_map_sequences=["all"])
        assert method.preloaded == {} and method.labels_on_device is False  # freed and reset after each sequence
    assert records["authors"]["frames"] == records["streaming"]["frames"] == sum(len(s.frames) for s in dataset)
    assert records["authors"]["fps_protocol"] == "authors" and records["authors"]["warm_up_frames"] == 2
    for sequence in dataset:
        for frame in sequence.frames:
            np.testing.assert_array_equal(read_label_png(tmp_path / "authors" / sequence.name / f"{frame}.png"),
                                          read_label_png(tmp_path / "streaming" / sequence.name / f"{frame}.png"))
        authors = np.load(tmp_path / "maps-authors" / f"{sequence.name}.npz")
        streamed = np.load(tmp_path / "maps-streaming" / f"{sequence.name}.npz")
        assert sorted(authors.files) == sorted(streamed.files)
        for key in authors.files:
            np.testing.assert_array_equal(authors[key], streamed[key])
