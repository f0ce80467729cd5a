"""CPU throughput of the offline trainers (optimiser steps per second), for before/after comparisons.

Trains the embedded preset's `frtm-refiner` or `lwl-stage1` settings (config/presets/embedded.yaml of this
checkout, no validation) on the embedded synthetic videos (generated once into --data) with the training code
of the checkout --tree (default: this one; give a worktree of another commit to measure that commit: its
modules are imported instead of these), and appends one JSON line per run to --record: the seconds of each
epoch, its steps, steps per second, a digest of the trained weights (equal digests: the same weights, bit
for bit) and, where the tree's trainer loads through `sample_loader` (DataLoader workers), the seconds that
loading one step's samples takes in one process (what the workers take off the training process). FRTM's first epoch learns the cached target models (each tree its own cache: the cache key
holds the learning code's digest), so the steady rate is that of the later epochs.

    python benchmarks/trainer_throughput.py --method frtm --workers 2 --record runs.jsonl
    python benchmarks/trainer_throughput.py --method lwl --tree ../before --record runs.jsonl

Not a test: a timing on a shared machine says little alone; alternate the variants and report the spread
(benchmarks/RESULTS-trainer-throughput.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TRAININGS = {"frtm": "frtm-refiner", "lwl": "lwl-stage1"}


def training_settings(method: str, data: Path, tree: Path) -> dict:
    """The embedded preset's settings of the method's training, its sources resolved to the generated videos."""
    preset = yaml.safe_load((REPO / "config" / "presets" / "embedded.yaml").read_text())
    training = preset["trainings"][TRAININGS[method]]
    sources = []
    for source in training["sources"]:
        dataset = {"kind": "davis", "root": str(data / source["dataset"]), "split": source["split"], "year": "2017"}
        sources.append({"dataset": dataset, **{k: v for k, v in source.items() if k not in ("dataset", "split")}})
    settings = {**training["settings"], "sources": sources}
    if method == "frtm":
        settings["cache_dir"] = str(data / "cache" / tree.name)
    return settings


def generate_data(data: Path) -> None:
    from vos_datasets import synthetic

    preset = yaml.safe_load((REPO / "config" / "presets" / "embedded.yaml").read_text())
    spec = {k: v for k, v in preset["datasets"]["embedded"].items() if k != "kind"}
    if not (data / "embedded").is_dir():
        synthetic.generate(data / "embedded", **spec)


def weights_digest(path: Path) -> str:
    import torch

    state = torch.load(path, weights_only=True)["state_dict"]
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def commit_of(tree: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return "unknown (not a git checkout)"
    return head + ("+uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def loading_seconds_per_step(training, config, method: str) -> float | None:
    """Mean seconds to load one step's samples (the first epoch's) in this process, or None for a tree whose
    trainer loads inside its training loop."""
    import torch

    job = (training.FRTMTrainingJob if method == "frtm" else training.LWLTrainingJob)(config)
    if not hasattr(job, "sample_loader"):
        return None
    job.build(torch.device("cpu"))
    load, samples = job.sample_loader(), job.epoch_samples(0)
    started = time.perf_counter()
    for sample in samples:
        load(sample)
    return (time.perf_counter() - started) / math.ceil(len(samples) / config.batch_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=sorted(TRAININGS), required=True)
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose training code runs (default: this one)")
    parser.add_argument("--workers", type=int, help="num_workers (default: the settings'; only where the tree has it)")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    parser.add_argument("--data", type=Path, default=REPO / "resources" / "cache" / "trainer-throughput",
                        help="generated videos and FRTM's target-model caches")
    parser.add_argument("--record", type=Path, help="append the run's JSON line here")
    args = parser.parse_args(argv)
    tree = args.tree.resolve()
    if not (tree / "methods" / "core" / "trainer.py").is_file():
        parser.error(f"--tree {tree}: not a checkout of this project (no methods/core/trainer.py)")
    sys.path.insert(0, str(tree))

    import torch

    torch.set_num_threads(args.threads)
    training = __import__(f"methods.{args.method}.training", fromlist=["train", "TrainingConfig"])
    generate_data(args.data)
    settings = training_settings(args.method, args.data, tree)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.workers is not None:
        if "num_workers" not in {f.name for f in fields(training.TrainingConfig)}:
            parser.error(f"--workers: the training settings of {tree} have no num_workers (it loads in the training loop)")
        settings["num_workers"] = args.workers
    out = args.data / "out" / f"{args.method}-{tree.name}-w{args.workers}.pt"
    config = training.TrainingConfig.from_dict(settings)
    started = time.perf_counter()
    history = training.train(config, out, progress=False)["history"]
    total = time.perf_counter() - started
    loading = loading_seconds_per_step(training, config, args.method)
    epochs = [{"epoch": h["epoch"], "seconds": round(h["seconds"], 3),
               "steps": math.ceil(h["samples"] / settings["batch_size"])} for h in history]
    for epoch in epochs:
        epoch["steps_per_s"] = round(epoch["steps"] / epoch["seconds"], 4)
    steady = epochs[1:] or epochs
    record = {"method": args.method, "tree": str(tree), "commit": commit_of(tree), "workers": settings.get("num_workers"),
              "threads": args.threads, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": " ".join(["python", "benchmarks/trainer_throughput.py", *(argv or sys.argv[1:])]),
              "epochs": epochs, "steady_steps_per_s": round(sum(e["steps"] for e in steady) / sum(e["seconds"] for e in steady), 4),
              "total_seconds": round(total, 2), "weights": weights_digest(out),
              "loading_seconds_per_step": None if loading is None else round(loading, 4)}
    line = json.dumps(record)
    print(line, flush=True)
    if args.record:
        with args.record.open("a") as handle:
            handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
