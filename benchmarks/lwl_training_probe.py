"""Does an LWL training leave its starting point? Steps a training's optimiser and prints, per iteration, the
loss and what the decoder outputs, without writing checkpoints.

    python benchmarks/lwl_training_probe.py --config training.json --iterations 150 \\
        --set decoder_batch_statistics=true --set 'learning_rates={"decoder": 1e-3}' --record probe.csv

`--config` is what `python -m methods.lwl.training` takes (a JSON file or string; `snakemake -n -p <head.pt>`
prints a training rule's); each `--set KEY=JSON` overrides one training setting. Columns:
  loss       the training loss x loss_weight (Lovasz-softmax x100: 50.0 is "probability 0.5 everywhere";
             `--set loss='"bce"'`: cross-entropy x100, 69.3 there)
  logit_std  spread of the decoder's logits over the batch: near 0 means a constant output
  iou        IoU of logits > 0 with the labels, pooled over the batch: whether the output ranks target
             pixels above the background, even when its scale is still tiny
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from methods.lwl.training import LWLTrainingJob, TrainingConfig  # noqa: E402
from vos_datasets.fileio import atomic_write_text  # noqa: E402


def parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected KEY=JSON, e.g. decoder_batch_statistics=true")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--set {text!r}: the value is not JSON ({error})") from None


def probe(config: TrainingConfig, iterations: int, threads: int) -> pd.DataFrame:
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    job = LWLTrainingJob(config)
    net = job.build(torch.device("cpu")).train()
    optimiser, _ = job.optimiser(net)
    rows, epoch, batches = [], 0, []
    for iteration in tqdm(range(iterations), desc="iterations"):
        if not batches:
            batches, epoch = job.epoch_batches(epoch), epoch + 1
        batch = batches.pop(0)
        optimiser.zero_grad()
        logits, labels = job.batch_predictions(net, batch)
        loss = job.loss(logits, labels)
        loss.backward()
        optimiser.step()
        predicted, target = logits.detach() > 0, labels > 0.5
        union = (predicted | target).sum().item()
        rows.append({"iteration": iteration, "loss": loss.item(), "logit_std": logits.detach().std().item(),
                     "logit_mean": logits.detach().mean().item(),
                     "iou": (predicted & target).sum().item() / union if union else 1.0})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="training settings: a JSON file or a JSON string")
    parser.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                        metavar="KEY=JSON", help="override one training setting")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--record", type=Path, help="write the per-iteration table here (CSV)")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error(f"--iterations {args.iterations}: at least 1")
    try:
        text = Path(args.config).read_text() if args.config.endswith(".json") else args.config
        loaded = json.loads(text)
    except (OSError, json.JSONDecodeError) as error:
        parser.error(f"--config {args.config}: not a readable JSON file or JSON text ({error})")
    try:
        config = TrainingConfig.from_dict({**loaded, **dict(args.overrides), "device": "cpu"})
    except ValueError as error:
        parser.error(f"training settings: {error}")
    table = probe(config, args.iterations, args.threads)
    window = max(len(table) // 10, 1)
    summary = table.groupby(table.iteration // window).agg(
        iterations=("iteration", lambda i: f"{i.min()}-{i.max()}"), loss=("loss", "mean"),
        logit_std=("logit_std", "mean"), iou=("iou", "mean"))
    print(summary.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if args.record:
        atomic_write_text(args.record, table.to_csv(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
