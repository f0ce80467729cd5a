"""FRTM offline training: the target-model cache, resumption after a kill, two processes (gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import methods.frtm.training as frtm_training
from methods.core.code_digest import KEEP_CHECKPOINTS_VARIABLE
from methods.frtm.training import TargetModelCache, TrainingConfig, load_objects
from vos_datasets import synthetic

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("emb") / "d", seed=3, n_train=2, n_val=1, n_frames=6,
                              height=96, width=160)


def tiny_config(embedded, cache_dir, **changes) -> dict:
    config = {
        "head": "refiner", "backbone": "efficientnet_lite0", "device": "cpu",
        "sources": [{"dataset": {"kind": "davis", "root": str(embedded), "split": "train"}, "repeats": 1}],
        "frame_size": [96, 160], "epochs": 4, "lr_step": 2, "batch_size": 2, "reference_frames_per_object": 1,
        "cache_dir": str(cache_dir), "cache_samples": 3, "cache_channels": 4, "cache_init_cg_iterations": [2, 2],
        "cache_memory_capacity": 4,
    }
    return {**config, **changes}


def run_training(config: dict, out: Path, *launcher: str, options: tuple[str, ...] = (),
                 module: str = "methods.frtm.training", checkout: Path = REPO,
                 keep_checkpoint: bool = False) -> subprocess.Popen:
    """The training CLI of `module` in a subprocess (both methods share it: methods.core.trainer), run from
    `checkout` (this one, or a copy of its code); keep_checkpoint: with the environment variable the workflow
    sets from keep_checkpoints_across_code_changes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(checkout),
           KEEP_CHECKPOINTS_VARIABLE: "1" if keep_checkpoint else "0"}
    command = [*(launcher or (sys.executable,)), "-m", module, "--config", json.dumps(config),
               "--out", str(out), "--quiet", *options]
    return subprocess.Popen(command, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_cached_target_models_are_reused_and_keyed_by_their_inputs(embedded, tmp_path, monkeypatch):
    from methods.core.backbones import build_backbone

    config = TrainingConfig.from_dict(tiny_config(embedded, tmp_path / "cache"))
    cache = TargetModelCache(config, build_backbone("efficientnet_lite0"), torch.device("cpu"))
    target = load_objects(config.sources[0], config)[0]
    frame = target.references[0]
    first = cache.get(target.sequence, frame, target.object_id)
    again = cache.get(target.sequence, frame, target.object_id)
    assert (cache.misses, cache.hits) == (1, 1)
    assert torch.equal(first.w2, again.w2)
    before = cache.path(target.sequence, frame, target.object_id)
    mask = target.sequence.mask_path(frame)
    mask.write_bytes(mask.read_bytes() + b"\0")  # any edit of an input gives another key: never a stale model
    assert cache.path(target.sequence, frame, target.object_id) != before
    edited = cache.path(target.sequence, frame, target.object_id)
    # so is an edit of the code that learns the models (a change that only rounds differently included)
    monkeypatch.setattr(frtm_training, "learning_code_digest", lambda: "another revision")
    recoded = TargetModelCache(config, cache.backbone, torch.device("cpu"))
    assert recoded.path(target.sequence, frame, target.object_id) != edited


def test_bad_training_settings_are_refused(embedded, tmp_path):
    with pytest.raises(ValueError, match="unknown FRTM training settings"):
        TrainingConfig.from_dict(tiny_config(embedded, tmp_path, learning_rat=1))
    with pytest.raises(ValueError, match="exactly one of 'repeats' or 'pairs'"):
        TrainingConfig.from_dict(tiny_config(embedded, tmp_path, sources=[{"dataset": {}}]))


def assert_resumes_after_kill(config: dict, folder: Path, module: str = "methods.frtm.training") -> None:
    """Train once uninterrupted; train again, SIGKILL after the first checkpoint, rerun: the rerun resumes
    and ends at the uninterrupted run's weights. Both methods' trainings are checked with this."""
    reference = run_training(config, folder / "reference.pt", module=module)
    assert reference.wait(timeout=600) == 0, reference.stdout.read()

    out = folder / "killed.pt"
    checkpoint = folder / "killed.pt.work" / "checkpoint.pt"
    process = run_training(config, out, module=module)
    deadline = time.time() + 600
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not out.exists(), "killed too late: no partial run to resume"
    epoch_done = torch.load(checkpoint, weights_only=True)["epoch"]
    assert epoch_done < config["epochs"] - 1

    resumed = run_training(config, out, module=module)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert f"resuming from {checkpoint} after epoch {epoch_done + 1}" in output
    final = torch.load(out, weights_only=True)["state_dict"]
    expected = torch.load(folder / "reference.pt", weights_only=True)["state_dict"]
    for name, tensor in expected.items():  # the resumed run ends where the uninterrupted one does
        torch.testing.assert_close(final[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert not checkpoint.parent.exists(), "a finished training leaves its resumption checkpoint behind"


def test_training_resumes_after_being_killed(embedded, tmp_path):
    assert_resumes_after_kill(tiny_config(embedded, tmp_path / "cache"), tmp_path)


def test_a_training_run_as_a_chain_of_jobs_ends_at_the_uninterrupted_weights(embedded, tmp_path):
    """The workflow splits a training longer than a cluster's wall-time limit into jobs that each stop at an epoch
    (rule train_part, --stop-at-epoch) and resume from the checkpoint: the chain ends where one run does."""
    config = tiny_config(embedded, tmp_path / "cache")
    reference = run_training(config, tmp_path / "reference.pt")
    assert reference.wait(timeout=600) == 0, reference.stdout.read()
    out, checkpoint = tmp_path / "chained.pt", tmp_path / "chained.pt.work" / "checkpoint.pt"
    # a part run again (a retried job whose epochs were done) trains nothing and keeps the checkpoint
    for stop_at, epochs_done in ((1, 1), (1, 1), (3, 3)):
        part = run_training(config, out, options=("--stop-at-epoch", str(stop_at)))
        output = part.communicate(timeout=600)[0]
        assert part.returncode == 0, output
        assert torch.load(checkpoint, weights_only=True)["epoch"] == epochs_done - 1 and not out.exists()
    last = run_training(config, out)
    output = last.communicate(timeout=600)[0]
    assert last.returncode == 0 and f"resuming from {checkpoint} after epoch 3" in output, output
    final = torch.load(out, weights_only=True)["state_dict"]
    for name, tensor in torch.load(tmp_path / "reference.pt", weights_only=True)["state_dict"].items():
        torch.testing.assert_close(final[name], tensor, rtol=1e-5, atol=1e-6, msg=name)  # as after a kill
    beyond = run_training(config, tmp_path / "other.pt", options=("--stop-at-epoch", "4"))
    assert beyond.wait(timeout=600) == 1 and "--stop-at-epoch 4: must be between 1 and epochs - 1 (3)" in beyond.stdout.read()


def test_a_checkpoint_from_other_settings_is_not_resumed(embedded, tmp_path):
    config = tiny_config(embedded, tmp_path / "cache", epochs=2)
    interrupted = run_training(config, tmp_path / "head.pt", options=("--stop-after-epochs", "1"))
    assert interrupted.wait(timeout=600) == 0 and (tmp_path / "head.pt.work" / "checkpoint.pt").is_file()
    other = run_training({**config, "learning_rate": 0.5}, tmp_path / "head.pt")
    output = other.communicate(timeout=600)[0]
    assert other.returncode == 1 and "was written with other training settings" in output
    # the workflow reruns a training exactly when its settings changed: there the stale checkpoint goes
    fresh = run_training({**config, "learning_rate": 0.5}, tmp_path / "head.pt",
                         options=("--discard-other-settings",))
    output = fresh.communicate(timeout=600)[0]
    assert fresh.returncode == 0 and "discarding" in output and (tmp_path / "head.pt").is_file()


def test_a_checkpoint_of_other_training_code_is_not_resumed(embedded, tmp_path, monkeypatch):
    from methods.core.code_digest import import_digest
    from methods.core.trainer import checkpoint_identity
    from methods.frtm.training import FRTMTrainingJob

    job = FRTMTrainingJob(TrainingConfig.from_dict(tiny_config(embedded, tmp_path)))
    # the digest the workflow gives the train rule is the one the checkpoint carries
    assert job.code_digest() == import_digest("methods.frtm.training")
    identity = checkpoint_identity(job)
    assert identity == checkpoint_identity(FRTMTrainingJob(TrainingConfig.from_dict(tiny_config(embedded, tmp_path))))
    monkeypatch.setattr(FRTMTrainingJob, "code_digest", lambda self: "edited code")
    assert checkpoint_identity(job) != identity


def code_copy(folder: Path) -> Path:
    """A copy of the code a training runs (another checkout, or this one after an edit)."""
    import shutil

    for package in ("methods", "vos_datasets"):
        shutil.copytree(REPO / package, folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {file}"
    file.write_text(text.replace(old, new))


def test_a_checkpoint_survives_comments_and_is_kept_across_a_declared_code_change(embedded, tmp_path):
    """What the workflow runs (--discard-other-settings) after edits of the training's code, on a training
    interrupted after each epoch: comments, docstrings and formatting resume it; a change of a computation
    discards it, naming the file, unless --keep-checkpoint-on-code-change keeps it (naming the file too)."""
    checkout = code_copy(tmp_path / "checkout")
    config = tiny_config(embedded, tmp_path / "cache", epochs=4)
    head, checkpoint = tmp_path / "head.pt", tmp_path / "head.pt.work" / "checkpoint.pt"

    def train(*options: str, keep_checkpoint: bool = False) -> tuple[int, str]:
        process = run_training(config, head, options=("--stop-after-epochs", "1", *options), checkout=checkout,
                               keep_checkpoint=keep_checkpoint)
        output = process.communicate(timeout=600)[0]
        return process.returncode, output

    code, output = train("--discard-other-settings")
    assert code == 0 and torch.load(checkpoint, weights_only=True)["epoch"] == 0, output
    trainer, training = checkout / "methods/core/trainer.py", checkout / "methods/frtm/training.py"
    edit(training, "def train(", "# a comment\ndef train(")
    edit(training, '"""Train the head and write it to `out`', '"""Train the head and write it (an edited docstring) to `out`')
    edit(trainer, "    rank, world = distributed_setup()", "    (rank,\n     world) = distributed_setup()  # reformatted")
    code, output = train("--discard-other-settings")
    assert code == 0 and f"resuming from {checkpoint} after epoch 1" in output and "discarding" not in output, output

    edit(trainer, "mean_loss = float(np.mean(losses))", "mean_loss = float(np.mean(losses)) * 1.0")
    code, output = train()  # the CLI's default: refuse, saying why and how to go on, in one line (the last)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and output.rstrip("\n").endswith(errors[0]), output
    assert "written by other code of the training (changed since: methods/core/trainer.py)" in output
    assert "--keep-checkpoint-on-code-change" in output
    # as the workflow runs it with keep_checkpoints_across_code_changes on (the variable: the option's default)
    code, output = train("--discard-other-settings", keep_checkpoint=True)
    assert code == 0 and f"keeping {checkpoint}" in output and "(changed since: methods/core/trainer.py)" in output
    assert f"resuming from {checkpoint} after epoch 2" in output, output

    edit(trainer, "float(np.mean(losses)) * 1.0", "float(np.mean(losses)) * 1.0 + 0.0")
    code, output = train("--discard-other-settings")  # as the workflow runs it, the setting off
    assert code == 0, output
    assert (f"discarding {checkpoint}: it was written by other code of the training (changed since: "
            "methods/core/trainer.py)") in output
    assert "training epochs 1-4 of 4" in output and torch.load(checkpoint, weights_only=True)["epoch"] == 0


def test_a_checkpoint_without_file_digests_names_the_old_and_new_code_digests(embedded, tmp_path):
    """Checkpoints written before they recorded each file's digest: the change is named by the two digests."""
    from methods.core.trainer import checkpoint_change, checkpoint_identity
    from methods.frtm.training import FRTMTrainingJob

    job = FRTMTrainingJob(TrainingConfig.from_dict(tiny_config(embedded, tmp_path)))
    identity = checkpoint_identity(job)
    old = {"config": json.dumps({**json.loads(identity), "code": "0123456789abcdef"})}
    assert checkpoint_change(job, old, identity) == (
        f"it was written by other code of the training (code digest 0123456789abcdef, now {job.code_digest()})", True)
    other_settings = {"config": json.dumps({**json.loads(identity), "settings": "{}"})}
    assert checkpoint_change(job, other_settings, identity) == ("it was written with other training settings", False)
    assert checkpoint_change(job, {"config": identity}, identity) is None


def test_the_checkpoint_identity_is_the_same_in_another_clone(embedded, tmp_path):
    """Two checkouts of the same code (two machines) write and resume the same checkpoints."""
    clone = code_copy(tmp_path / "clone")
    script = ("import json, sys; from methods.frtm.training import FRTMTrainingJob, TrainingConfig; "
              "from methods.core.trainer import checkpoint_identity; "
              "print(checkpoint_identity(FRTMTrainingJob(TrainingConfig.from_dict(json.loads(sys.argv[1])))))")
    config = json.dumps(tiny_config(embedded, tmp_path))
    identities = [subprocess.run([sys.executable, "-c", script, config], cwd=checkout, capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(checkout)}, check=True).stdout
                  for checkout in (REPO, clone)]
    assert identities[0] == identities[1] and '"code": "' in identities[0]


def test_two_processes_train_through_torch_distributed_gloo(embedded, tmp_path):
    config = tiny_config(embedded, tmp_path / "cache", epochs=2, batch_size=4)
    process = run_training(config, tmp_path / "head.pt", sys.executable, "-m", "torch.distributed.run",
                           "--standalone", "--nproc_per_node", "2")
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output
    history = json.loads((tmp_path / "head.json").read_text())["history"]
    assert [h["processes"] for h in history] == [2, 2]
    assert torch.load(tmp_path / "head.pt", weights_only=True)["head"] == "refiner"
