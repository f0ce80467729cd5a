"""LWL training end to end: mini-sequence sampling, resumption after a kill, the two stages, the box
encoder alone, and two processes (gloo) through the shared training loop."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from methods.lwl.training import (
    PAPER_LEARNING_RATES,
    LWLTrainingJob,
    TrainingConfig,
    draw_frames,
    load_objects,
    lovasz_loss,
    sample_crops,
)
from tests.test_frtm_training import assert_resumes_after_kill, run_training
from tests.test_lwl import TINY_NETWORK
from vos_datasets import synthetic

MODULE = "methods.lwl.training"
NETWORK = TINY_NETWORK


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("emb") / "d", seed=4, n_train=2, n_val=1, n_frames=8,
                              height=96, width=160)


def tiny_config(embedded, **changes) -> dict:
    config = {"network": NETWORK, "device": "cpu", "crop_size": [64, 96], "epochs": 3, "iterations_per_epoch": 2,
              "batch_size": 2, "milestones": [2], "window": 4,
              "sources": [{"dataset": {"kind": "davis", "root": str(embedded), "split": "train"}, "weight": 1}]}
    return {**config, **changes}


def state(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_the_loss_is_lovasz_softmax_on_sigmoid_probabilities():
    """Lovasz-softmax of hard predictions is exactly 1 - IoU; uncertain ones (logit 0) cost 0.5 (the Lovasz
    hinge, a different surrogate, would give 1 there)."""
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(2, 1, 16, 16, generator=generator) > 0.6).float()
    predicted = torch.rand(2, 1, 16, 16, generator=generator) > 0.5
    logits = torch.where(predicted, 30.0, -30.0)
    iou = (predicted & labels.bool()).sum() / (predicted | labels.bool()).sum()
    assert lovasz_loss(logits, labels).item() == pytest.approx(1 - iou.item(), abs=1e-6)
    assert lovasz_loss(torch.zeros_like(labels), labels).item() == pytest.approx(0.5, abs=1e-6)
    assert lovasz_loss(torch.where(labels.bool(), 30.0, -30.0), labels).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss", ["lovasz", "bce"])
def test_the_training_loss_is_the_one_the_settings_name(embedded, loss):
    """The paper's Lovasz unless a preset names "bce" (FRTM's loss for R); both x loss_weight. At logits of
    0 the Lovasz loss is 0.5 and cross-entropy log 2; a name that is neither is refused."""
    job = LWLTrainingJob(TrainingConfig.from_dict(tiny_config(embedded, loss=loss, loss_weight=10.0)))
    labels = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    expected = {"lovasz": 0.5, "bce": math.log(2)}[loss] * 10
    assert job.loss(torch.zeros_like(labels), labels).item() == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match=r"loss='dice': one of \['bce', 'lovasz'\]"):
        TrainingConfig.from_dict(tiny_config(embedded, loss="dice"))


def test_mini_sequences_are_a_visible_train_frame_then_test_frames_in_its_window(embedded):
    config = TrainingConfig.from_dict(tiny_config(embedded))
    objects = load_objects(config.sources[0], config)
    rng = random.Random(0)
    for _ in range(50):
        obj = rng.choice(objects)
        frames = draw_frames(obj, config, rng)
        assert len(frames) == 4
        indices = [obj.frames.index(f) for f in frames]
        assert indices[0] in obj.visible
        assert all(0 < abs(i - indices[0]) <= config.window for i in indices[1:])
        images, masks = sample_crops(obj, frames, config, rng)
        assert images.shape == (4, 64, 96, 3) and images.dtype == np.uint8 and masks.shape == (4, 64, 96)
        assert masks[0].sum() > 0  # the train frame shows its object


def test_bad_training_settings_are_refused(embedded):
    with pytest.raises(ValueError, match="unknown LWL training settings"):
        TrainingConfig.from_dict(tiny_config(embedded, epoch=3))
    with pytest.raises(ValueError, match="set init_from"):
        TrainingConfig.from_dict(tiny_config(embedded, stage=2))
    with pytest.raises(ValueError, match="unknown LWL network settings"):
        TrainingConfig.from_dict(tiny_config(embedded, network={"label_encoders": False}))


def test_learning_rates_name_only_the_parts_a_preset_changes(embedded):
    config = TrainingConfig.from_dict(tiny_config(embedded, learning_rates={"decoder": 1e-3}))
    assert config.learning_rates == {**PAPER_LEARNING_RATES, "decoder": 1e-3}
    with pytest.raises(ValueError, match=r"unknown parts \['decodr'\]"):
        TrainingConfig.from_dict(tiny_config(embedded, learning_rates={"decodr": 1e-3}))
    with pytest.raises(ValueError, match="must be positive"):
        TrainingConfig.from_dict(tiny_config(embedded, learning_rates={"decoder": 0}))
    with pytest.raises(ValueError, match="positive numbers, got {'decoder': '1e-3'}"):
        TrainingConfig.from_dict(tiny_config(embedded, learning_rates={"decoder": "1e-3"}))


@pytest.mark.parametrize("batch_statistics", [False, True])
def test_batchnorm_trains_in_eval_mode_unless_the_decoder_uses_batch_statistics(embedded, batch_statistics):
    """Paper: every BatchNorm layer stays in eval mode while training; the CPU-preset switch lets only the
    decoder's layers use batch statistics."""
    job = LWLTrainingJob(TrainingConfig.from_dict(tiny_config(embedded, decoder_batch_statistics=batch_statistics)))
    net = job.build(torch.device("cpu")).train()
    decoder_layers = {m for m in net.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    others = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d) and m not in decoder_layers]
    assert decoder_layers and others  # the decoder's RRBs and the backbone's layers
    assert all(m.training == batch_statistics for m in decoder_layers)
    assert not any(m.training for m in others)
    assert not any(m.training for m in net.eval().modules())


def test_training_resumes_after_being_killed(embedded, tmp_path):
    assert_resumes_after_kill(tiny_config(embedded), tmp_path, module=MODULE)


def test_stage_two_trains_the_backbone_and_the_box_encoder_trains_alone(embedded, tmp_path):
    stage1, stage2, box = tmp_path / "s1.pt", tmp_path / "s2.pt", tmp_path / "box.pt"
    for config, out in ((tiny_config(embedded, epochs=1), stage1),
                        (tiny_config(embedded, epochs=1, stage=2, init_from=str(stage1)), stage2),
                        (tiny_config(embedded, epochs=1, box_encoder=True, init_from=str(stage2)), box)):
        process = run_training(config, out, module=MODULE)
        assert process.wait(timeout=600) == 0, process.stdout.read()
    first, second, third = state(stage1), state(stage2), state(box)
    deep = "backbone.blocks.12._project_conv.weight"
    stem = "backbone.stem.0.weight"
    assert not torch.equal(first[deep], second[deep]) and torch.equal(first[stem], second[stem])
    assert any(key.startswith("box_encoder.") for key in third)
    for key, tensor in second.items():  # only B moved in the box-encoder training
        assert torch.equal(tensor, third[key]), key


def test_two_processes_train_through_torch_distributed_gloo(embedded, tmp_path):
    config = tiny_config(embedded, epochs=1, network={**NETWORK, "label_encoder": False, "weight_predictor": False,
                                                      "end_to_end": False})
    process = run_training(config, tmp_path / "net.pt", sys.executable, "-m", "torch.distributed.run",
                           "--standalone", "--nproc_per_node", "2", module=MODULE)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output
    history = json.loads((tmp_path / "net.json").read_text())["history"]
    assert [h["processes"] for h in history] == [2]


def test_the_training_probe_answers_bad_settings_with_a_usage_error(embedded, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import lwl_training_probe

    with pytest.raises(SystemExit) as exit_info:
        lwl_training_probe.main(["--config", json.dumps(tiny_config(embedded)), "--set", 'loss="dice"'])
    assert exit_info.value.code == 2
    assert "training settings: loss='dice'" in capsys.readouterr().err


def test_test_frames_are_drawn_where_the_object_is_visible_after_the_train_frame():
    """Released LWLSampler: test frames only among visible frames after the train frame, within Q' (widened
    by 5 frames at a time until one is visible)."""
    from methods.lwl.training import TrainingObject

    frames = [f"{i:05d}" for i in range(40)]
    visible = [0, 1, 2, 30, 31]  # a gap longer than the window after frame 2
    obj = TrainingObject(sequence=None, object_id=1, frames=frames, visible=visible)
    config = TrainingConfig(window=10, frames_per_sequence=4)
    rng = random.Random(0)
    for _ in range(200):
        drawn = [frames.index(f) for f in draw_frames(obj, config, rng)]
        base, tests = drawn[0], drawn[1:]
        assert base in visible[:-1] and all(t in visible and t > base for t in tests), drawn
        assert tests == sorted(tests)
    lonely = TrainingObject(sequence=None, object_id=1, frames=frames, visible=[7])
    assert draw_frames(lonely, config, rng) == [frames[7]] * 4


def test_the_crop_box_is_jittered_per_axis_around_the_jittered_size():
    """Released _get_jittered_box: each side gets its own exp(N(0, sigma)); the centre offset is
    U(-1/2, 1/2) x factor x sqrt(jittered area)."""
    from methods.lwl.crops import Box
    from methods.lwl.training import jittered_box

    box = Box(100.0, 50.0, 40.0, 10.0)
    rng = random.Random(1)
    boxes = [jittered_box(box, rng, 0.5, (5.5, 4.5)) for _ in range(500)]
    aspects = [b.width / b.height for b in boxes]
    assert np.std(np.log(aspects)) > 0.5  # per axis: the aspect ratio changes (sqrt(2) x 0.5 expected)
    for b in boxes:
        side = np.sqrt(b.width * b.height)
        assert abs(b.cx - box.cx) <= 0.5 * 5.5 * side + 1e-9 and abs(b.cy - box.cy) <= 0.5 * 4.5 * side + 1e-9
    assert max(abs(b.cx - box.cx) / np.sqrt(b.width * b.height) for b in boxes) > 2.0  # reaches the bound


def test_the_training_forward_decodes_each_frame_of_all_sequences_in_one_call(embedded):
    """Item 12: a decoder with batch statistics sees the S images of frame t together."""
    job = LWLTrainingJob(TrainingConfig.from_dict(tiny_config(embedded, decoder_batch_statistics=True,
                                                              predict_with_updated_model=True)))
    net = job.build(torch.device("cpu")).train()
    batches = []
    net.decoder.register_forward_hook(lambda module, inputs, output: batches.append(output.shape[0]))
    images = torch.rand(3, 4, 3, 64, 96) * 255
    masks = torch.zeros(3, 4, 1, 64, 96)
    masks[..., 20:40, 30:60] = 1
    logits = net(images, masks, 2, 1)
    assert batches == [3, 3, 3] and logits.shape == (9, 1, 64, 96)


def test_box_encoder_training_keeps_the_decoder_and_its_statistics_frozen(embedded):
    """Released LWLBoxNet.train: only B is in training mode, even where the decoder trained with batch
    statistics; a training step leaves the decoder's running statistics as they were."""
    job = LWLTrainingJob(TrainingConfig.from_dict(tiny_config(embedded, box_encoder=True, init_from="unused",
                                                              decoder_batch_statistics=True)))
    net = job.build(torch.device("cpu")).train()
    assert net.box_encoder.training and not net.decoder.training and not net.mask_encoder.training
    before = {k: v.clone() for k, v in net.decoder.state_dict().items()}
    images = torch.rand(2, 1, 3, 64, 96) * 255
    boxes = torch.zeros(2, 1, 1, 64, 96)
    boxes[..., 20:40, 30:60] = 1
    net(images, boxes, box_masks=boxes).sum().backward()
    for key, value in net.decoder.state_dict().items():
        assert torch.equal(value, before[key]), key
    net.train_only_box_encoder = False  # the check can fail: with batch statistics the decoder's move
    net.train()
    net(images, boxes, box_masks=boxes)
    assert any(not torch.equal(v, before[k]) for k, v in net.decoder.state_dict().items() if "running" in k)
