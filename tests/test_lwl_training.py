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
