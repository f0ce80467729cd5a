"""The held-out measure of a training (setting `validation`): recorded every few epochs in head.json's history
and the log's progress lines, and without any effect on what the training computes: with and without it a
training ends at the same weights, bit for bit (FRTM's head and LWL's network, trained here twice). So do
the DataLoader's workers (setting `num_workers`): none or two, the same weights, and FRTM's cache of the frozen
backbone's features: kept or recomputed, the same weights; mixed precision runs and is part of the
checkpoint's identity."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from methods.core.trainer import (
    EpochBatches,
    TrainingJob,
    mask_iou,
    measure_validation,
    run_training,
    sample_batches,
    settings_text,
    validation_settings,
)
from tests.test_frtm_training import tiny_config as frtm_tiny_config
from tests.test_lwl_training import tiny_config as lwl_tiny_config
from vos_datasets import synthetic


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """Two train videos to train on, two val videos held out."""
    return synthetic.generate(tmp_path_factory.mktemp("emb") / "d", seed=5, n_train=2, n_val=2, n_frames=8,
                              height=96, width=160)


def held_out(root, **changes) -> dict:
    return {"dataset": {"kind": "davis", "root": str(root), "split": "val"}, **changes}


def test_validation_settings_take_defaults_and_refuse_what_they_do_not_know():
    assert validation_settings(None) is None
    assert validation_settings({"dataset": {"root": "x"}}) == {"dataset": {"root": "x"}, "samples": 8, "every": 5}
    assert validation_settings({"dataset": {}, "samples": 2, "every": 1})["every"] == 1
    for bad, message in (({"samples": 2}, "null, or"), ({"dataset": {}, "every": 0}, "every=0"),
                         ({"dataset": {}, "samples": True}, "samples=True"), ({"dataset": {}, "each": 2}, "unknown keys")):
        with pytest.raises(ValueError, match=message):
            validation_settings(bad)


def test_mask_iou_is_j_of_the_thresholded_prediction():
    labels = torch.zeros(3, 1, 4, 4)
    labels[0, :, :2] = 1  # 8 pixels
    labels[1, :, :1] = 1
    logits = torch.full((3, 1, 4, 4), -5.0)
    logits[0, :, :1] = 5  # 4 of the 8
    logits[1, :, :1] = 5  # exact
    assert mask_iou(logits, labels).tolist() == [0.5, 1.0, 1.0]  # both empty: 1


class ToyJob(TrainingJob):
    """Dropout and BatchNorm train (they consume the torch RNG and update running statistics); its held-out
    measure draws from every global generator and flips the submodules' modes, as a careless one could."""

    settings_json, seed, epochs, batch_size = "{}", 0, 4, 4

    def __init__(self, every: int) -> None:
        self.validation_every = every

    def build(self, device):
        return nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 1))

    def optimiser(self, module):
        optimiser = torch.optim.SGD(module.parameters(), lr=0.1)
        return optimiser, torch.optim.lr_scheduler.StepLR(optimiser, 2)

    def epoch_samples(self, epoch):
        rng = random.Random(f"{self.seed}-{epoch}")
        return [rng.random() for _ in range(12)]

    def batch_loss(self, model, module, share, batch_size):
        x = torch.tensor([loaded for _, loaded in share])[:, None] * torch.randn(len(share), 3)  # the global generator
        loss = model(x).square().mean()
        loss.backward()
        return float(loss.detach())

    def validation_samples(self):
        return [0.5, 1.5]

    def validation_scores(self, module, share):
        assert not any(m.training for m in module.modules())  # eval mode: BatchNorm's statistics stay
        output = module(torch.randn(len(share), 3))
        random.random(), np.random.rand(), torch.rand(5)
        module[2].train()  # a mode change is undone too
        return [(float(o.abs()), 1.0) for o in output]

    def save(self, out, module, history):
        torch.save(module.state_dict(), out)


def test_the_loop_restores_random_states_and_modes_around_the_measure(tmp_path):
    random.seed(1), np.random.seed(1)
    plain = run_training(ToyJob(every=0), tmp_path / "plain.pt", progress=False)
    after_plain = random.random(), np.random.rand()
    random.seed(1), np.random.seed(1)
    measured = run_training(ToyJob(every=2), tmp_path / "measured.pt", progress=False)
    assert (random.random(), np.random.rand()) == after_plain
    expected, got = torch.load(tmp_path / "plain.pt"), torch.load(tmp_path / "measured.pt")
    for name, tensor in expected.items():  # running statistics and the batch counter included
        assert torch.equal(got[name], tensor), name
    assert [h["loss"] for h in measured["history"]] == [h["loss"] for h in plain["history"]]
    assert [h["epoch"] for h in measured["history"] if "validation" in h] == [1, 3]
    assert all("validation" not in h for h in plain["history"])


def test_a_measure_restores_the_mixed_modes_of_lwl_s_training():
    """LWL trains with BatchNorm (and with the box encoder, all but B) in eval mode: restored per submodule."""
    job = ToyJob(every=1)
    module = job.build(torch.device("cpu")).train()
    module[1].eval()
    measure_validation(job, module, job.validation_samples(), torch.device("cpu"))
    assert [m.training for m in module] == [True, False, True, True]


def assert_same_training(plain: dict, measured: dict, plain_weights, measured_weights) -> None:
    assert plain_weights.keys() == measured_weights.keys()
    for name, tensor in plain_weights.items():  # parameters and buffers (BatchNorm statistics)
        assert torch.equal(measured_weights[name], tensor), name
    keep = ("epoch", "loss", "samples", "cache_hits", "cache_misses")
    assert [{k: h.get(k) for k in keep} for h in measured["history"]] == [{k: h.get(k) for k in keep}
                                                                          for h in plain["history"]]


def check_history(out, epochs_measured: list[int], samples: int, printed: str, epochs: int) -> list[dict]:
    history = json.loads(out.with_suffix(".json").read_text())["history"]
    assert [h["epoch"] for h in history if "validation" in h] == epochs_measured
    for entry in history:
        if "validation" in entry:
            measure = entry["validation"]
            assert measure["samples"] == samples and 0 <= measure["J"] <= 1 and measure["loss"] > 0
            assert f"epoch {entry['epoch'] + 1}/{epochs}  loss {entry['loss']:.4f}  val J {measure['J']:.3f}" in printed
        else:
            assert f"epoch {entry['epoch'] + 1}/{epochs}  loss {entry['loss']:.4f}  {entry['seconds']:.1f} s" in printed
    return history


def test_frtm_training_is_bit_identical_with_and_without_validation(embedded, tmp_path, capsys):
    from methods.frtm.training import TrainingConfig, train

    settings = frtm_tiny_config(embedded, tmp_path / "cache-plain", epochs=3)
    plain = train(TrainingConfig.from_dict(settings), tmp_path / "plain.pt", progress=False)
    capsys.readouterr()
    settings = {**settings, "cache_dir": str(tmp_path / "cache-measured"), "validation": held_out(embedded, samples=3, every=2)}
    measured = train(TrainingConfig.from_dict(settings), tmp_path / "measured.pt", progress=False)
    printed = capsys.readouterr().out
    assert_same_training(plain, measured, torch.load(tmp_path / "plain.pt", weights_only=True)["state_dict"],
                         torch.load(tmp_path / "measured.pt", weights_only=True)["state_dict"])
    check_history(tmp_path / "measured.pt", [1, 2], 3, printed, 3)
    assert "validation on 3 held-out samples every 2 epochs" in printed and "cache hits" in printed


def test_lwl_training_is_bit_identical_with_and_without_validation(embedded, tmp_path, capsys):
    """With the decoder's BatchNorm on batch statistics (the CPU presets): the measure runs it in eval mode,
    its running statistics stay the training's."""
    from methods.lwl.training import TrainingConfig, train

    settings = lwl_tiny_config(embedded, decoder_batch_statistics=True, epochs=3)
    plain = train(TrainingConfig.from_dict(settings), tmp_path / "plain.pt", progress=False)
    capsys.readouterr()
    measured = train(TrainingConfig.from_dict({**settings, "validation": held_out(embedded, samples=3, every=2)}),
                     tmp_path / "measured.pt", progress=False)
    printed = capsys.readouterr().out
    assert_same_training(plain, measured, torch.load(tmp_path / "plain.pt", weights_only=True)["state_dict"],
                         torch.load(tmp_path / "measured.pt", weights_only=True)["state_dict"])
    check_history(tmp_path / "measured.pt", [1, 2], 3, printed, 3)


def test_the_held_out_samples_are_drawn_once_from_their_own_generator(embedded):
    from methods.lwl.training import LWLTrainingJob, TrainingConfig

    config = TrainingConfig.from_dict(lwl_tiny_config(embedded, validation=held_out(embedded, samples=5)))
    job = LWLTrainingJob(config)
    job.build(torch.device("cpu"))
    first, again = job.validation_samples(), job.validation_samples()
    assert [(o.sequence.name, o.object_id, f, s) for o, f, s in first] == \
        [(o.sequence.name, o.object_id, f, s) for o, f, s in again]
    assert {o.sequence.name for o, _, _ in first} <= {"synth-val-00", "synth-val-01"}
    objects = {(o.sequence.name, o.object_id) for o, _, _ in first}
    assert len(objects) == min(5, len(objects))  # each object once before any twice
    plain = LWLTrainingJob(TrainingConfig.from_dict(lwl_tiny_config(embedded)))
    plain.build(torch.device("cpu"))
    assert [[(o.object_id, f, s) for o, f, s in b] for b in plain.epoch_batches(0)] == \
        [[(o.object_id, f, s) for o, f, s in b] for b in job.epoch_batches(0)]


def test_every_training_seed_is_measured_on_the_same_held_out_samples(embedded, tmp_path):
    """The seeds table compares a row's trainings at several seeds: their held-out curves compare only when
    each measures the same samples (drawn as before from their own generator, whatever the training seed),
    while the epochs' draws do change with the seed."""
    from methods.frtm.training import FRTMTrainingJob
    from methods.frtm.training import TrainingConfig as FRTMConfig
    from methods.lwl.training import LWLTrainingJob
    from methods.lwl.training import TrainingConfig as LWLConfig

    def lwl_draws(seed):
        job = LWLTrainingJob(LWLConfig.from_dict(lwl_tiny_config(embedded, seed=seed,
                                                                 validation=held_out(embedded, samples=3))))
        job.build(torch.device("cpu"))
        described = [[(o.sequence.name, o.object_id, tuple(f), s) for o, f, s in samples]
                     for samples in (job.validation_samples(), job.epoch_samples(0))]
        return described[0], described[1]

    def frtm_draws(seed):
        config = FRTMConfig.from_dict(frtm_tiny_config(embedded, tmp_path / "cache", seed=seed,
                                                       validation=held_out(embedded, samples=3)))
        job = FRTMTrainingJob(config)
        job.build(torch.device("cpu"))
        described = [[(o.sequence.name, o.object_id, reference, tuple(targets)) for o, reference, targets in samples]
                     for samples in (job.validation_samples(), job.epoch_samples(0))]
        return described[0], described[1]

    for draws in (lwl_draws, frtm_draws):
        (held_out_0, epoch_0), (held_out_1, epoch_1) = draws(0), draws(1)
        assert held_out_0 == held_out_1
        assert epoch_0 != epoch_1


@pytest.mark.parametrize(("validation", "message"), [
    ({"dataset": "embedded", "split": "val"}, "trainings.frtm-refiner.validation: overlaps evaluation 'embedded-val'"),
    ({"dataset": "embedded", "split": "train"}, "trainings.frtm-refiner.validation: overlaps a training source"),
    ({"dataset": "embedded", "split": "train", "sequences": ["synth-train-01"]},
     "trainings.frtm-refiner.validation: overlaps a training source"),
    ({"dataset": "embeded", "split": "val"}, "trainings.frtm-refiner.validation: unknown dataset 'embeded'"),
    (None, None),
])
def test_the_workflow_resolves_the_held_out_set_and_refuses_one_it_trains_on_or_scores(tmp_path, validation, message):
    """Dry runs: the held-out set is resolved like a source, its dataset is an input of the training job."""
    from tests.test_workflow import edit_embedded_preset, snakemake, workflow_copy

    work = workflow_copy(tmp_path)
    if validation is not None:
        edit_embedded_preset(work, lambda data: data["trainings"]["frtm-refiner"].update(validation=validation))
    done = snakemake(work, "-n", "-p", "results/embedded/training/frtm-refiner/head.pt", check=message is None)
    if message is not None:
        assert message in done.stdout + done.stderr
        return
    assert "input: resources/generated/embedded/embedded, resources/generated/embedded/embedded-heldout" in done.stdout
    held_out = yaml.safe_load((work / "config/presets/embedded.yaml").read_text())["trainings"]["frtm-refiner"]["validation"]
    assert ('"validation": {"dataset": {"kind": "davis", "root": "resources/generated/embedded/embedded-heldout", '
            f'"split": "val", "year": "2017", "sequences": null}}, "samples": {held_out["samples"]}, '
            f'"every": {held_out["every"]}}}') in done.stdout


def test_two_processes_share_the_held_out_samples_and_the_quiet_log_shows_each_epoch(embedded, tmp_path):
    """torchrun (gloo): each rank scores its share of the 3 samples, the means are over all of them; the
    CLI's --quiet log still has one line per epoch."""
    import sys

    from tests.test_frtm_training import run_training as run_cli

    network = {**lwl_tiny_config(embedded)["network"], "label_encoder": False, "weight_predictor": False,
               "end_to_end": False}
    config = lwl_tiny_config(embedded, epochs=2, network=network, validation=held_out(embedded, samples=3, every=1))
    process = run_cli(config, tmp_path / "net.pt", sys.executable, "-m", "torch.distributed.run", "--standalone",
                      "--nproc_per_node", "2", module="methods.lwl.training")
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output
    history = check_history(tmp_path / "net.pt", [0, 1], 3, output, 2)
    assert [h["processes"] for h in history] == [2, 2]


@pytest.mark.parametrize("head, batch_size", [("refiner", 1), ("base_net", 2)])
def test_frtm_computes_each_frames_backbone_features_once_and_the_same_weights(embedded, tmp_path, monkeypatch,
                                                                                head, batch_size):
    """FRTM's backbone is frozen: a batch of frames gets its features from one forward pass, kept for the
    epochs and held-out measures that see it again (methods.frtm.training.FeatureCache). The weights, losses
    and held-out figures are those of a training that runs the backbone every time (no room in the cache),
    bit for bit; with batch 1 (the embedded preset's R) the backbone runs once per frame the training sees."""
    import methods.frtm.training as frtm_training

    caches = []

    class Recorded(frtm_training.FeatureCache):
        def __init__(self, *args) -> None:
            super().__init__(*args)
            caches.append(self)

    monkeypatch.setattr(frtm_training, "FeatureCache", Recorded)
    runs = {}
    for budget in (frtm_training.FEATURE_CACHE_BYTES, 0):
        monkeypatch.setattr(frtm_training, "FEATURE_CACHE_BYTES", budget)
        settings = frtm_tiny_config(embedded, tmp_path / f"cache-{budget}", epochs=3, head=head,
                                    batch_size=batch_size, validation=held_out(embedded, samples=2, every=1))
        runs[budget] = frtm_training.train(frtm_training.TrainingConfig.from_dict(settings), tmp_path / f"{budget}.pt",
                                           progress=False)
    kept, recomputed = runs[frtm_training.FEATURE_CACHE_BYTES], runs[0]
    assert_same_training(recomputed, kept, torch.load(tmp_path / "0.pt", weights_only=True)["state_dict"],
                         torch.load(tmp_path / f"{frtm_training.FEATURE_CACHE_BYTES}.pt", weights_only=True)["state_dict"])
    assert [h["validation"]["J"] for h in kept["history"]] == [h["validation"]["J"] for h in recomputed["history"]]
    assert [h["validation"]["loss"] for h in kept["history"]] == [h["validation"]["loss"] for h in recomputed["history"]]
    with_room, without = caches
    assert without.entries == {} and with_room.computed == len(with_room.entries) < without.computed
    if batch_size == 1:  # every forward pass is of one target frame: each frame's once
        frames = {files for files in with_room.entries}
        assert all(len(files) == 1 for files in frames) and len(frames) == with_room.computed


def test_frtm_keeps_backbone_features_on_the_cpu_only(embedded, tmp_path):
    """A GPU training keeps no features (its backbone is fast, its memory dear): built on another device than
    the CPU (here `meta`, which computes nothing), the cache has no room."""
    from methods.frtm.training import FEATURE_CACHE_BYTES, FRTMTrainingJob, TrainingConfig

    budgets = {}
    for device in ("cpu", "meta"):
        job = FRTMTrainingJob(TrainingConfig.from_dict(frtm_tiny_config(embedded, tmp_path / "cache")))
        job.build(torch.device(device))
        budgets[device] = job.features.budget
    assert budgets == {"cpu": FEATURE_CACHE_BYTES, "meta": 0}


@pytest.mark.parametrize("method", ["frtm", "frtm-base-net", "lwl"])
def test_the_loader_workers_change_nothing_the_training_computes(embedded, tmp_path, method):
    """The samples are described in the training process (LWL: each crop's augmentation seed included); the
    workers only load them (Base net: the reference frame too): trained with none or two workers, the same
    weights and losses, bit for bit."""
    if method.startswith("frtm"):
        from methods.frtm.training import TrainingConfig, train

        head = "base_net" if method == "frtm-base-net" else "refiner"

        def settings(workers):
            return frtm_tiny_config(embedded, tmp_path / f"cache-{workers}", epochs=2, num_workers=workers, head=head)
    else:
        from methods.lwl.training import TrainingConfig, train

        def settings(workers):
            return lwl_tiny_config(embedded, decoder_batch_statistics=True, epochs=2, num_workers=workers)
    runs = {workers: train(TrainingConfig.from_dict(settings(workers)), tmp_path / f"w{workers}.pt", progress=False)
            for workers in (0, 2)}
    assert_same_training(runs[0], runs[2], torch.load(tmp_path / "w0.pt", weights_only=True)["state_dict"],
                         torch.load(tmp_path / "w2.pt", weights_only=True)["state_dict"])


def test_each_rank_takes_its_distributed_share_of_every_batch():
    """DistributedSampler without a shuffle of its own (the job's order is the same on every rank): rank r
    takes the batch's samples r, r + world, ...; a short epoch is padded with its first samples so that
    every rank takes as many steps."""
    shares = []
    for rank in (0, 1):
        batches = EpochBatches(batch_size=4, rank=rank, world=2)
        batches.samples = list(range(9))
        shares.append(list(batches))
        assert len(batches) == 3
    assert shares == [[[0, 2], [4, 6], [8]], [[1, 3], [5, 7], [0]]]
    with pytest.raises(ValueError, match="batch_size=3 does not split over 2 processes"):
        EpochBatches(batch_size=3, rank=0, world=2)


def test_the_loader_leaves_the_global_torch_generator_to_the_job():
    """A DataLoader draws its workers' seed from the global generator unless given its own: every dropout mask
    after it would move (and the trained weights with them)."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    loader = sample_batches(ToyJob(every=0), torch.device("cpu"), rank=0, world=1)
    loader.batch_sampler.samples = [0.5] * 6
    assert [len(share) for share in loader] == [4, 2]
    assert torch.equal(torch.rand(3), expected)


def test_mixed_precision_is_part_of_the_checkpoint_identity_and_the_worker_count_is_not():
    base = {"epochs": 3, "validation": None}
    assert settings_text({**base, "mixed_precision": False, "num_workers": 4}) == settings_text(base)
    assert settings_text({**base, "mixed_precision": True, "num_workers": 0}) == settings_text(
        {**base, "mixed_precision": True, "num_workers": 2}) != settings_text(base)


@pytest.mark.parametrize("method", ["frtm", "lwl"])
def test_a_mixed_precision_training_runs_under_autocast(embedded, tmp_path, method, monkeypatch):
    """bfloat16 autocast on the CPU: the forward passes run in it (a convolution's output dtype shows it), the
    loss and the trained weights stay finite float32."""
    dtypes, original = set(), torch.nn.Conv2d.forward

    def recorded(self, x):
        output = original(self, x)
        dtypes.add(output.dtype)
        return output

    monkeypatch.setattr(torch.nn.Conv2d, "forward", recorded)
    if method == "frtm":
        from methods.frtm.training import TrainingConfig, train

        settings = frtm_tiny_config(embedded, tmp_path / "cache", epochs=1, mixed_precision=True, num_workers=0)
    else:
        from methods.lwl.training import TrainingConfig, train

        settings = lwl_tiny_config(embedded, epochs=1, mixed_precision=True, num_workers=0)
    history = train(TrainingConfig.from_dict(settings), tmp_path / "amp.pt", progress=False)["history"]
    assert torch.bfloat16 in dtypes
    assert np.isfinite(history[0]["loss"])
    for name, tensor in torch.load(tmp_path / "amp.pt", weights_only=True)["state_dict"].items():
        assert not tensor.is_floating_point() or (tensor.dtype == torch.float32 and tensor.isfinite().all()), name
