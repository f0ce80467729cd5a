"""The offline training loop FRTM and LWL share: epochs, checkpoints that resume, several processes, the CLI.

A method describes its training as a `TrainingJob` (what is trained, with which optimiser, what one epoch's
batches are, how one batch's loss is computed) and `run_training` does the rest:

- Interruptions: after every epoch a checkpoint (weights, optimiser, scheduler, epoch, history, settings)
  is written atomically to `<out>.work/checkpoint.pt`; a rerun resumes from it. A finished training
  removes it (so a forced rerun trains again instead of resuming past the last epoch). Jobs seed their epoch
  sampling by (seed, epoch), so a resumed run draws what an uninterrupted one would. Checkpoints are
  data: loaded with torch.load(weights_only=True), never unpickled code.
- Settings and code: a checkpoint written with other settings or by other code (its code digest,
  methods.core.code_digest: comments, docstrings and formatting do not count) is refused (CLI), or discarded
  with `discard_other_settings` (the workflow reruns a training exactly when its settings or code changed),
  in one line naming what changed (the checkpoint records each file's digest). One written with the same
  settings by other code is resumed instead with `keep_checkpoint_on_code_change` (the user declares the
  change harmless: workflow setting keep_checkpoints_across_code_changes), saying which files changed.
- Several processes (torchrun): each rank takes its share of every batch; DistributedDataParallel averages
  the gradients (nccl on GPUs, gloo on CPUs); rank 0 writes checkpoints and the result.
- Validation (setting `validation`, see `validation_settings`): every `every` epochs and after the last, the
  job's forward pass on a held-out set drawn once (the same samples every time and at every training seed:
  `held_out_generator`) gives a loss and J (IoU of the prediction > 0.5 with the label), recorded as the
  epoch's history["validation"]. It runs with the module in eval mode under no_grad, every random state
  (torch, CUDA, `random`, numpy) restored afterwards, and each submodule's train/eval flag restored: a
  training with validation ends at the same weights, bit for bit, as one without
  (tests/test_training_validation.py).
- Data: the main process draws each epoch's sample descriptions (which frames of which object, and any
  augmentation's random parameters or seed) from the job's generator seeded by (seed, epoch); a DataLoader's
  workers (setting `num_workers`; 0: the training process itself) turn each into the training sample
  (decoded, cropped, augmented) with `job.sample_loader()`, a deterministic function of the description. So
  the samples, their order and the trained weights are the same, bit for bit, whatever `num_workers`
  (tests/test_training_validation.py). Under torch.distributed a DistributedSampler gives each rank its
  share of every batch (batch_size / world samples); workers persist across epochs, memory is pinned on CUDA.
- Mixed precision (setting `mixed_precision`, default off): the jobs' forward passes run under autocast
  (float16 with a gradient scaler on CUDA, bfloat16 on the CPU); being a setting, it is part of the
  checkpoint's identity.
- Pre-flight (methods.core.preflight; setting `preflight`, default on): after the first batch's forward and
  backward, before the optimiser's first step, a training whose gradient is zero or not finite, or (a loss
  that saturates, from the initialisation) whose decoder output is saturated, stops with one line naming the
  setting to change (the job's `preflight_advice`). It only reads: a training that passes is unchanged.
- Progress: one readable line per epoch on stdout (flushed), also with --quiet (which only turns off the
  per-batch bar), e.g. `epoch 3/20  loss 0.1683  val J 0.412 (loss 0.2010, 4.1 s)  88.1 s  [cache hits 96, cache misses 0]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm

from methods.core.code_digest import (
    KEEP_CHECKPOINTS_VARIABLE,
    changed_files,
    combined_digest,
    import_file_digests,
)
from methods.core.preflight import OutputRecord, first_step_problem, largest_gradient
from methods.core.training_settings import VALIDATION_DEFAULTS, validation_settings  # noqa: F401 (torch-free home)
from vos_datasets.fileio import atomic_path


def distributed_setup() -> tuple[int, int]:
    """(rank, world size); joins the process group that torchrun describes in the environment."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def training_device(name: str, rank: int) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", rank % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(name)


class MixedPrecision:
    """The setting `mixed_precision`: forward passes under autocast, float16 on CUDA (with a gradient scaler,
    so that small gradients do not underflow) or bfloat16 elsewhere (its range needs no scaler). Off, autocast
    is a no-op and the scaler passes the loss and the optimiser step through unchanged."""

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.enabled = enabled
        self.device_type = device.type
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler(device.type, enabled=enabled and device.type == "cuda")

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype) if self.enabled else nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimiser: torch.optim.Optimizer) -> None:
        self.scaler.step(optimiser)
        self.scaler.update()


def backward_share(loss: torch.Tensor, share_size: int, batch_size: int,
                   precision: MixedPrecision | None = None) -> None:
    """Backward of this rank's mean loss over `share_size` samples, scaled so that DDP's average over the
    ranks is the mean over the whole batch (through the gradient scaler of mixed precision, where on)."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    scaled = loss * share_size / batch_size * world
    if precision is not None:
        precision.backward(scaled)
    else:
        scaled.backward()


def image_batch(images: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """uint8 (H, W, 3) images from the loader -> float (N, 3, H, W) on `device`, each converted as
    methods.core.backbones.image_to_tensor converts one: the same values and memory layout, so the
    convolutions compute what they computed on frames the training loop decoded itself."""
    return torch.cat([image.to(device, non_blocking=True).permute(2, 0, 1)[None].float() for image in images])


def settings_text(settings: dict) -> str:
    """A job's `settings_json`: every setting, sorted; `validation` and `mixed_precision` only where set, so
    that the trainings without them keep the text they had before the settings existed. `num_workers` and
    `preflight` are left out: they change how the samples are loaded and whether the first step is checked,
    not what is trained (the same weights, bit for bit)."""
    unset = {"validation": None, "mixed_precision": False}
    return json.dumps({k: v for k, v in settings.items()
                       if k not in ("num_workers", "preflight") and not (k in unset and v == unset[k])},
                      sort_keys=True)


def held_out_generator() -> random.Random:
    """The generator a job draws its held-out samples from: seeded by nothing a training sets, so that every
    training seed of a row (the seeds table of a report) is measured on the same samples and their held-out
    curves compare; it is not the epochs' generator, whose draws it leaves untouched."""
    return random.Random("held-out samples")


def spread_draw(items: list, count: int, rng: random.Random) -> list:
    """`count` of `items`, each at most once before any is drawn twice (a shuffled order, repeated)."""
    order = list(items)
    rng.shuffle(order)
    return [order[i % len(order)] for i in range(count)]


def mask_iou(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """J of each frame (leading dimension): IoU of (sigmoid(logits) > 0.5) with (label > 0.5); 1 where both
    are empty (the DAVIS convention)."""
    predicted, truth = (logits > 0).flatten(1), (labels > 0.5).flatten(1)
    union = (predicted | truth).sum(1)
    intersection = (predicted & truth).sum(1)
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union, dtype=torch.float))


class TrainingJob(ABC):
    """What a method trains and how; `run_training` drives it."""

    settings_json: str  # every setting, sorted JSON: a checkpoint is resumed only under the same text
    seed: int
    epochs: int
    find_unused_parameters: bool = False  # DDP: some rows leave trained parameters without gradients
    batch_size: int
    num_workers: int = 0  # DataLoader worker processes producing the samples (0: the training process)
    mixed_precision: bool = False
    precision: MixedPrecision | None = None  # set by run_training; jobs wrap their forward in self.autocast()
    # The pre-flight after the first step (methods.core.preflight): off with the setting `preflight: false`
    preflight: bool = True
    saturating_loss: bool = False  # the loss reaches the logits only through the sigmoid's derivative
    starts_trained: bool = False  # the module starts from a trained network's weights (no saturation check)
    output_record: OutputRecord | None = None  # set by run_training for the step the pre-flight checks

    @abstractmethod
    def build(self, device: torch.device) -> nn.Module:
        """The module whose parameters are trained and checkpointed (on `device`)."""

    @abstractmethod
    def optimiser(self, module: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """Optimiser and scheduler (stepped once per epoch)."""

    @abstractmethod
    def epoch_samples(self, epoch: int) -> list:
        """The sample descriptions of one epoch in training order, drawn from a generator seeded by (seed,
        epoch), random augmentation parameters (or a seed for them) included; consecutive runs of batch_size
        make the batches."""

    def epoch_batches(self, epoch: int) -> list[list]:
        """The epoch's sample descriptions in batches."""
        samples = self.epoch_samples(epoch)
        return [samples[i : i + self.batch_size] for i in range(0, len(samples), self.batch_size)]

    def sample_loader(self) -> Callable:
        """A picklable function of one sample description giving the training sample (decoded, cropped,
        augmented; tensors, so that they can be pinned); it runs in the DataLoader's workers, so it must
        depend on the description alone (no global random generator)."""
        return as_is

    @abstractmethod
    def batch_loss(self, model: nn.Module, module: nn.Module, share: list, batch_size: int) -> float:
        """Forward and backward of this rank's share of a batch, (description, loaded sample) pairs (model:
        DDP-wrapped or not; batch_size: the whole batch's, over every rank); the mean loss."""

    def record_outputs(self, logits: torch.Tensor) -> None:
        """Jobs hand `batch_loss`'s logits here; the pre-flight reads them on the first step."""
        if self.output_record is not None:
            self.output_record.add(logits)

    def preflight_advice(self) -> str:
        """What to change when the pre-flight stops the training (a setting, named)."""
        return "check the learning rates and the network's initialisation in this training's settings"

    def autocast(self) -> AbstractContextManager:
        """Around the job's forward passes (not around learning fixed float32 parts, such as FRTM's cached D)."""
        return self.precision.autocast() if self.precision is not None else nullcontext()

    def history_extra(self) -> dict:
        """Job-specific figures added to each epoch's history entry (cache hits, ...)."""
        return {}

    def code_digest(self) -> str:
        """The digest of the training's code (a checkpoint is resumed only when written by the same code): the
        module defining the job and every module of the checkout it imports (code_digest.import_digest). The
        workflow gives the train rule the same digest: an edit of that code reruns the training, afresh."""
        return combined_digest(self.code_file_digests())

    def code_file_digests(self) -> dict[str, str]:
        """The digest of each file code_digest covers (a checkpoint records them, to name what changed)."""
        return import_file_digests(sys.modules[type(self).__module__].__file__)

    # Validation (optional): `validation_every` > 0 turns it on
    validation_every: int = 0  # measure every N epochs (and after the last one); 0: never

    def validation_samples(self) -> list:
        """The held-out samples, drawn once from their own generator (called once, after `build`)."""
        return []

    def validation_scores(self, module: nn.Module, share: list) -> list[tuple[float, float]]:
        """(loss, J) of each sample of `share`: the training's forward at its size (the training's loss, the
        mean J of the sample's predicted frames). Called with `module` in eval mode under no_grad; it must
        not alter what the training computes next (run_training restores the random states and modes)."""
        raise NotImplementedError

    def load_initial_weights(self, module: nn.Module) -> None:  # noqa: B027 - optional hook
        """Start from other weights (a previous stage); called only when no checkpoint is resumed."""

    @abstractmethod
    def save(self, out: Path, module: nn.Module, history: list[dict]) -> None:
        """Write the trained result (atomically)."""


def checkpoint_identity(job: TrainingJob) -> str:
    """What a checkpoint must match to be resumed: the job's settings and the digest of its code."""
    return json.dumps({"settings": job.settings_json, "code": job.code_digest()})


def checkpoint_change(job: TrainingJob, state: dict, identity: str) -> tuple[str, bool] | None:
    """Why checkpoint `state` may not be resumed under `identity` (checkpoint_identity(job)): None when it
    may; else (one line naming what changed, whether only the code changed)."""
    if state["config"] == identity:
        return None
    before, now = json.loads(state["config"]), json.loads(identity)
    if before["settings"] != now["settings"]:
        return "it was written with other training settings", False
    recorded = json.loads(state.get("code_files", "null"))  # checkpoints of earlier versions did not record them
    changed = changed_files(recorded, job.code_file_digests()) if recorded else []
    if changed:
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        return f"it was written by other code of the training (changed since: {shown})", True
    return f"it was written by other code of the training (code digest {before['code']}, now {now['code']})", True


def validation_due(job: TrainingJob, epoch: int) -> bool:
    every = job.validation_every
    return every > 0 and ((epoch + 1) % every == 0 or epoch == job.epochs - 1)


def measure_validation(job: TrainingJob, module: nn.Module, samples: list, device: torch.device,
                       rank: int = 0, world: int = 1) -> dict:
    """The held-out measure: each rank scores its share of `samples`; the means over all of them.
    Every random state and each submodule's train/eval flag are as before afterwards."""
    started = time.perf_counter()
    modes = [(m, m.training) for m in module.modules()]
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    share = samples[rank::world]
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            module.eval()
            scores = job.validation_scores(module, share) if share else []
    finally:
        for submodule, mode in modes:
            submodule.training = mode
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    totals = torch.tensor([sum(loss for loss, _ in scores), sum(j for _, j in scores), len(scores)],
                          dtype=torch.float64, device=device)
    if world > 1:
        dist.all_reduce(totals)
    loss, j, count = totals.tolist()
    return {"loss": loss / count, "J": j / count, "samples": int(count), "seconds": time.perf_counter() - started}


def check_first_step(job: TrainingJob, module: nn.Module, out: Path, device: torch.device, resumed: bool) -> None:
    """The pre-flight (methods.core.preflight), after the first step's backward: ValueError, one line, where the
    gradient cannot move the training. Every rank decides on the whole batch's outputs, so all stop together."""
    outputs = job.output_record.summed_over_processes(device)
    scaler = job.precision.scaler
    scale = scaler.get_scale() if scaler.is_enabled() else 1.0  # float16: the gradients are scaled
    problem = first_step_problem(outputs, largest_gradient(module) / scale,
                                 check_saturation=job.saturating_loss and not job.starts_trained and not resumed,
                                 check_finite=not scaler.is_enabled())
    if problem:
        raise ValueError(f"training {out}: {problem} at the first step: {job.preflight_advice()}; "
                         "or set preflight: false to train anyway")


def progress_line(entry: dict, epochs: int) -> str:
    """One epoch's history entry as the log's readable line."""
    line = f"epoch {entry['epoch'] + 1}/{epochs}  loss {entry['loss']:.4f}"
    held_out = entry.get("validation")
    if held_out:
        line += f"  val J {held_out['J']:.3f} (loss {held_out['loss']:.4f}, {held_out['seconds']:.1f} s)"
    line += f"  {entry['seconds']:.1f} s"
    skip = {"epoch", "loss", "seconds", "validation", "processes", "samples"}
    extra = [f"{key.replace('_', ' ')} {value}" for key, value in entry.items() if key not in skip]
    return line + (f"  [{', '.join(extra)}]" if extra else "")


def as_is(sample):
    return sample


class LoadedSamples(Dataset):
    """The training samples, indexed by their descriptions: (description, the job's loaded sample)."""

    def __init__(self, load: Callable) -> None:
        self.load = load

    def __getitem__(self, description):
        return description, self.load(description)


class EpochBatches(Sampler):
    """This process's batches of the epoch's descriptions (set `samples` before each epoch): runs of batch_size
    in the job's order; under torch.distributed the rank's DistributedSampler share of that order (no
    shuffle: the job shuffled it, the same on every rank), in runs of batch_size / world, so that each
    optimiser step sees the batch one process would (the DistributedSampler pads a short epoch with its
    first samples, so every rank takes as many steps)."""

    def __init__(self, batch_size: int, rank: int, world: int) -> None:
        if batch_size % world:
            raise ValueError(f"batch_size={batch_size} does not split over {world} processes: "
                             "make it a multiple of the process count")
        self.share_size, self.rank, self.world = batch_size // world, rank, world
        self.samples: list = []

    def order(self) -> list:
        if self.world == 1:
            return self.samples
        ranks = DistributedSampler(self.samples, num_replicas=self.world, rank=self.rank, shuffle=False)
        return [self.samples[i] for i in ranks]

    def __iter__(self):
        order = self.order()
        return iter([order[i : i + self.share_size] for i in range(0, len(order), self.share_size)])

    def __len__(self) -> int:
        return -(-len(self.order()) // self.share_size)


def sample_batches(job: TrainingJob, device: torch.device, rank: int, world: int) -> DataLoader:
    """The DataLoader of the training samples (its batch sampler's `samples` set per epoch). Its private
    generator keeps the global torch generator's stream the job's: a DataLoader draws its workers' base seed
    from the global one otherwise, and every later dropout mask would move. (No worker init changes OpenCV's
    threads: cv2.setNumThreads in a forked worker hangs on the pool the parent's threads left behind.)"""
    if isinstance(job.num_workers, bool) or not isinstance(job.num_workers, int) or job.num_workers < 0:
        raise ValueError(f"num_workers={job.num_workers!r}: 0 (load in the training process) or more worker processes")
    workers = job.num_workers
    return DataLoader(LoadedSamples(job.sample_loader()), batch_sampler=EpochBatches(job.batch_size, rank, world),
                      collate_fn=as_is, num_workers=workers, persistent_workers=workers > 0,
                      pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(job.seed))


def checkpoint_to_resume(job: TrainingJob, checkpoint_path: Path, identity: str, rank: int, world: int,
                         discard_other_settings: bool, keep_checkpoint_on_code_change: bool) -> dict | None:
    """The checkpoint's state where it may be resumed; None where there is none, or where it was written with
    other settings or code and `discard_other_settings` deletes it; else ValueError, one line, saying what to
    do. A code-only change is resumed with `keep_checkpoint_on_code_change`."""
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True) if checkpoint_path.is_file() else None
    change = checkpoint_change(job, state, identity) if state is not None else None
    if change is None:
        return state
    reason, code_only = change
    if code_only and keep_checkpoint_on_code_change:
        if rank == 0:
            print(f"keeping {checkpoint_path} (--keep-checkpoint-on-code-change) although {reason}", flush=True)
        return state
    if not discard_other_settings:
        raise ValueError(f"{checkpoint_path}: {reason}; delete {checkpoint_path.parent} to start again, restore the "
                         "settings or code it was made with" + (", or resume it with --keep-checkpoint-on-code-change "
                                                                 "if the change is harmless" if code_only else ""))
    if rank == 0:
        print(f"discarding {checkpoint_path}: {reason}", flush=True)
        checkpoint_path.unlink()
    if world > 1:
        dist.barrier()
    return None


def restore(job: TrainingJob, module: nn.Module, optimiser: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LRScheduler, state: dict | None) -> tuple[int, list[dict]]:
    """Where the training starts (first epoch, history so far): the checkpoint's weights, optimiser, scheduler
    and loss scale loaded from `state`; without one, epoch 0 from the job's initial weights."""
    if state is None:
        job.load_initial_weights(module)
        return 0, []
    module.load_state_dict(state["module"])
    optimiser.load_state_dict(state["optimiser"])
    scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):  # float16 on CUDA: the loss scale reached
        job.precision.scaler.load_state_dict(state["scaler"])
    return state["epoch"] + 1, json.loads(state["history"])


def train_epoch(job: TrainingJob, model: nn.Module, module: nn.Module, loader: DataLoader,
                optimiser: torch.optim.Optimizer, epoch: int, world: int, show_progress: bool,
                first_step_check: Callable[[], None] | None) -> tuple[list[float], bool]:
    """One epoch's optimiser steps: the batches' losses, and whether the pre-flight is still to run (it runs
    once, on the training's first step: `first_step_check`, None once done or when off)."""
    losses = []
    model.train()
    for share in tqdm(loader, desc=f"epoch {epoch + 1}/{job.epochs}", disable=not show_progress):
        optimiser.zero_grad()
        if first_step_check is not None:
            job.output_record = OutputRecord()
        losses.append(job.batch_loss(model, module, share, len(share) * world))  # equal shares on every rank
        if first_step_check is not None:
            first_step_check()
            job.output_record, first_step_check = None, None
        job.precision.step(optimiser)
    return losses, first_step_check is not None


def mean_over_processes(losses: list[float], device: torch.device, world: int) -> float:
    """The epoch's mean loss, averaged over the processes of a distributed training."""
    mean_loss = float(np.mean(losses)) if losses else float("nan")
    if world > 1:
        total = torch.tensor([mean_loss], device=device)
        dist.all_reduce(total)
        mean_loss = float(total) / world
    return mean_loss


def save_checkpoint(checkpoint_path: Path, job: TrainingJob, module: nn.Module, optimiser: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, epoch: int, history: list[dict], identity: str,
                    code_files: str) -> None:
    """Everything a later run resumes from after `epoch` (atomically: an interrupted save leaves the last one)."""
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(checkpoint_path) as tmp:
        torch.save({"module": module.state_dict(), "optimiser": optimiser.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch, "history": json.dumps(history),
                    "scaler": job.precision.scaler.state_dict(), "config": identity, "code_files": code_files}, tmp)


def run_training(job: TrainingJob, out: str | Path, progress: bool = True, stop_after_epochs: int | None = None,
                 discard_other_settings: bool = False, device_name: str = "auto",
                 keep_checkpoint_on_code_change: bool = False, stop_at_epoch: int | None = None) -> dict:
    """Train `job` to `out`, resuming from `<out>.work/checkpoint.pt`. stop_after_epochs: stop after that many
    epochs of this run; stop_at_epoch: stop once that many epochs of the training are done (one job of a chain
    that fits a cluster's wall-time limit: workflow rule train_part). Both leave the checkpoint to resume from."""
    rank, world = distributed_setup()
    device = training_device(device_name, rank)
    out = Path(out)
    work = out.with_name(out.name + ".work")
    checkpoint_path = work / "checkpoint.pt"
    torch.manual_seed(job.seed)

    module = job.build(device)
    job.precision = MixedPrecision(device, job.mixed_precision)
    loader = sample_batches(job, device, rank, world)
    optimiser, scheduler = job.optimiser(module)
    identity = checkpoint_identity(job)
    code_files = json.dumps(job.code_file_digests(), sort_keys=True)
    state = checkpoint_to_resume(job, checkpoint_path, identity, rank, world, discard_other_settings,
                                 keep_checkpoint_on_code_change)
    start_epoch, history = restore(job, module, optimiser, scheduler, state)
    if state is not None and rank == 0:
        print(f"resuming from {checkpoint_path} after epoch {start_epoch}", flush=True)
    held_out = job.validation_samples() if job.validation_every > 0 else []
    if rank == 0:
        print(f"training epochs {start_epoch + 1}-{job.epochs} of {job.epochs}, {world} process(es)"
              + (f"; validation on {len(held_out)} held-out samples every {job.validation_every} epochs and after the last"
                 if held_out else ""), flush=True)
    if stop_at_epoch is not None and start_epoch >= stop_at_epoch:
        return {"stopped_after_epoch": start_epoch - 1, "history": history}  # a rerun of a finished part
    model = module
    if world > 1:
        model = nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                                    find_unused_parameters=job.find_unused_parameters)

    def first_step_check() -> None:
        check_first_step(job, module, out, device, resumed=start_epoch > 0)

    preflight_pending = job.preflight
    for epoch in range(start_epoch, job.epochs):
        started = time.perf_counter()
        samples = loader.batch_sampler.samples = job.epoch_samples(epoch)
        losses, preflight_pending = train_epoch(job, model, module, loader, optimiser, epoch, world,
                                                progress and rank == 0, first_step_check if preflight_pending else None)
        scheduler.step()
        history.append({"epoch": epoch, "loss": mean_over_processes(losses, device, world),
                        "seconds": time.perf_counter() - started, "processes": world, "samples": len(samples),
                        **job.history_extra()})
        if held_out and validation_due(job, epoch):  # after the epoch's steps; changes nothing it trains
            history[-1]["validation"] = measure_validation(job, module, held_out, device, rank, world)
        if rank == 0:
            print(progress_line(history[-1], job.epochs), flush=True)
            save_checkpoint(checkpoint_path, job, module, optimiser, scheduler, epoch, history, identity, code_files)
        if world > 1:
            dist.barrier()
        if (stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs) or (
                stop_at_epoch is not None and epoch + 1 >= stop_at_epoch and epoch + 1 < job.epochs):
            return {"stopped_after_epoch": epoch, "history": history}
    if rank == 0:
        job.save(out, module, history)
        shutil.rmtree(work, ignore_errors=True)  # only an interrupted training needs it
    if world > 1:
        dist.barrier()
    return {"history": history}


def training_cli(prog: str, description: str, train: Callable[..., dict], from_dict: Callable[[dict], object],
                 argv: list[str] | None = None) -> int:
    """`python -m <prog> --config JSON --out PATH [--stop-after-epochs N | --stop-at-epoch N]
    [--discard-other-settings] [--keep-checkpoint-on-code-change] [--quiet]`."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="training settings as JSON text or a .json file")
    parser.add_argument("--out", required=True, type=Path, help="the trained weights (.pt)")
    parser.add_argument("--stop-after-epochs", type=int, help="stop early (tests of resumption)")
    parser.add_argument("--stop-at-epoch", type=int,
                        help="stop with the checkpoint once N epochs are done (one job of a chain; 0 < N < epochs)")
    parser.add_argument("--discard-other-settings", action="store_true",
                        help="start over when the checkpoint was written with other settings or code (default: refuse)")
    parser.add_argument("--keep-checkpoint-on-code-change", action="store_true",
                        default=os.environ.get(KEEP_CHECKPOINTS_VARIABLE) == "1",
                        help="resume a checkpoint written with the same settings by other code, naming the files "
                             f"that changed (for a change you know to be harmless; default: {KEEP_CHECKPOINTS_VARIABLE}=1)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    text = Path(args.config).read_text() if args.config.endswith(".json") else args.config
    try:
        config = from_dict(json.loads(text))
        if args.stop_at_epoch is not None and not 0 < args.stop_at_epoch < config.epochs:
            raise ValueError(f"--stop-at-epoch {args.stop_at_epoch}: must be between 1 and epochs - 1 ({config.epochs - 1})")
        train(config, args.out, progress=not args.quiet, stop_after_epochs=args.stop_after_epochs,
              discard_other_settings=args.discard_other_settings,
              keep_checkpoint_on_code_change=args.keep_checkpoint_on_code_change, stop_at_epoch=args.stop_at_epoch)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
