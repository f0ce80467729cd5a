"""The offline training loop FRTM and LWL share: epochs, checkpoints that resume, several processes, the CLI.

A method describes its training as a `TrainingJob` (what is trained, with which optimiser, what one epoch's
batches are, how one batch's loss is computed) and `run_training` does the rest:

- Interruptions: after every epoch a checkpoint (weights, optimiser, scheduler, epoch, history, settings)
  is written atomically to `<out>.work/checkpoint.pt`; a rerun resumes from it. A finished training
  removes it (so a forced rerun trains again instead of resuming past the last epoch). Jobs seed their epoch
  sampling by (seed, epoch), so a resumed run draws what an uninterrupted one would. Checkpoints are
  data: loaded with torch.load(weights_only=True), never unpickled code.
- Settings: a checkpoint written with other settings is refused (CLI), or discarded with
  `discard_other_settings` (the workflow reruns a training exactly when its settings changed).
- Several processes (torchrun): each rank takes its share of every batch; DistributedDataParallel averages
  the gradients (nccl on GPUs, gloo on CPUs); rank 0 writes checkpoints and the result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

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


def backward_share(loss: torch.Tensor, share_size: int, batch_size: int) -> None:
    """Backward of this rank's mean loss over `share_size` samples, scaled so that DDP's average over the
    ranks is the mean over the whole batch."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    (loss * share_size / batch_size * world).backward()


def zero_gradients_contribution(module: nn.Module) -> None:
    """A rank with no sample in a short last batch still takes part in DDP's gradient averaging."""
    sum(p.sum() * 0 for p in module.parameters() if p.requires_grad).backward()


class TrainingJob(ABC):
    """What a method trains and how; `run_training` drives it."""

    settings_json: str  # every setting, sorted JSON: a checkpoint is resumed only under the same text
    # ... and the same revision: bump it when a code change alters what a training computes (its loss, its
    # sampling, its model), so that a checkpoint of the old code is not resumed under the new one
    revision: str = ""
    seed: int
    epochs: int
    find_unused_parameters: bool = False  # DDP: some rows leave trained parameters without gradients

    @abstractmethod
    def build(self, device: torch.device) -> nn.Module:
        """The module whose parameters are trained and checkpointed (on `device`)."""

    @abstractmethod
    def optimiser(self, module: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """Optimiser and scheduler (stepped once per epoch)."""

    @abstractmethod
    def epoch_batches(self, epoch: int) -> list[list]:
        """The batches of one epoch, drawn from a generator seeded by (seed, epoch)."""

    @abstractmethod
    def batch_loss(self, model: nn.Module, module: nn.Module, share: list, batch_size: int) -> float:
        """Forward and backward of this rank's share of a batch (model: DDP-wrapped or not); the mean loss."""

    def history_extra(self) -> dict:
        """Job-specific figures added to each epoch's history entry (cache hits, ...)."""
        return {}

    def load_initial_weights(self, module: nn.Module) -> None:  # noqa: B027 - optional hook
        """Start from other weights (a previous stage); called only when no checkpoint is resumed."""

    @abstractmethod
    def save(self, out: Path, module: nn.Module, history: list[dict]) -> None:
        """Write the trained result (atomically)."""


def checkpoint_identity(job: TrainingJob) -> str:
    """What a checkpoint must match to be resumed: the job's settings and its code revision."""
    return json.dumps({"settings": job.settings_json, "revision": job.revision})


def run_training(job: TrainingJob, out: str | Path, progress: bool = True, stop_after_epochs: int | None = None,
                 discard_other_settings: bool = False, device_name: str = "auto") -> dict:
    rank, world = distributed_setup()
    device = training_device(device_name, rank)
    out = Path(out)
    work = out.with_name(out.name + ".work")
    checkpoint_path = work / "checkpoint.pt"
    torch.manual_seed(job.seed)

    module = job.build(device)
    optimiser, scheduler = job.optimiser(module)
    start_epoch, history = 0, []
    identity = checkpoint_identity(job)
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True) if checkpoint_path.is_file() else None
    if state is not None and state["config"] != identity:
        if not discard_other_settings:
            raise ValueError(f"{checkpoint_path}: was written with other training settings (or another code revision of the training); delete {work} "
                             "to start again, or restore the settings it was made with")
        if rank == 0:
            print(f"discarding {checkpoint_path}: written with other training settings or code revision", flush=True)
            checkpoint_path.unlink()
        if world > 1:
            dist.barrier()
        state = None
    if state is not None:
        module.load_state_dict(state["module"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"] + 1, json.loads(state["history"])
        if rank == 0:
            print(f"resuming from {checkpoint_path} after epoch {start_epoch}", flush=True)
    else:
        job.load_initial_weights(module)
    model = module
    if world > 1:
        model = nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                                    find_unused_parameters=job.find_unused_parameters)

    for epoch in range(start_epoch, job.epochs):
        started = time.perf_counter()
        batches = job.epoch_batches(epoch)
        losses = []
        model.train()
        for batch in tqdm(batches, desc=f"epoch {epoch + 1}/{job.epochs}", disable=not progress or rank != 0):
            share = batch[rank::world]
            optimiser.zero_grad()
            if share:
                losses.append(job.batch_loss(model, module, share, len(batch)))
            else:
                zero_gradients_contribution(module)
            optimiser.step()
        scheduler.step()
        mean_loss = float(np.mean(losses)) if losses else float("nan")
        if world > 1:
            total = torch.tensor([mean_loss], device=device)
            dist.all_reduce(total)
            mean_loss = float(total) / world
        history.append({"epoch": epoch, "loss": mean_loss, "seconds": time.perf_counter() - started,
                        "processes": world, "samples": sum(len(b) for b in batches), **job.history_extra()})
        if rank == 0:
            print(json.dumps(history[-1]), flush=True)
            work.mkdir(parents=True, exist_ok=True)
            with atomic_path(checkpoint_path) as tmp:
                torch.save({"module": module.state_dict(), "optimiser": optimiser.state_dict(),
                            "scheduler": scheduler.state_dict(), "epoch": epoch, "history": json.dumps(history),
                            "config": identity}, tmp)
        if world > 1:
            dist.barrier()
        if stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs:
            return {"stopped_after_epoch": epoch, "history": history}
    if rank == 0:
        job.save(out, module, history)
        shutil.rmtree(work, ignore_errors=True)  # only an interrupted training needs it
    if world > 1:
        dist.barrier()
    return {"history": history}


def training_cli(prog: str, description: str, train: Callable[..., dict], from_dict: Callable[[dict], object],
                 argv: list[str] | None = None) -> int:
    """`python -m <prog> --config JSON --out PATH [--stop-after-epochs N] [--discard-other-settings] [--quiet]`."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="training settings as JSON text or a .json file")
    parser.add_argument("--out", required=True, type=Path, help="the trained weights (.pt)")
    parser.add_argument("--stop-after-epochs", type=int, help="stop early (tests of resumption)")
    parser.add_argument("--discard-other-settings", action="store_true",
                        help="start over when the checkpoint was written with other settings (default: refuse)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    text = Path(args.config).read_text() if args.config.endswith(".json") else args.config
    try:
        config = from_dict(json.loads(text))
        train(config, args.out, progress=not args.quiet, stop_after_epochs=args.stop_after_epochs,
              discard_other_settings=args.discard_other_settings)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
