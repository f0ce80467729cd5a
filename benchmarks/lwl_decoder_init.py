"""Does a preset's LWL training start where its gradient can move it? One forward and backward of its first batch
for each decoder initialisation (network `decoder_init`), at the preset's settings (crop size, network, loss,
frozen BatchNorm), on DAVIS frames; no optimiser step, nothing written.

    python benchmarks/lwl_decoder_init.py --preset config/presets/paper.yaml --training lwl-stage1 \\
        --batch-size 2 --threads 1 [--backbone-weights FILE] [--feature-scale 0.1 --feature-scale 10]

The training's own sources are replaced by DAVIS 2016 train from the shared folder (`--dataset` for another
DAVIS folder). Its backbone's pretrained weights are read from `--backbone-weights` where given; without them
(the Mask R-CNN ResNet-50 file is not in every checkout) the backbone is random with its BatchNorm statistics
re-estimated on the batch's own crops, as the official fixtures were made (shared/fixtures/official/README.md),
so that its features have a realistic scale. `--feature-scale K` multiplies the backbone's features by K
(several: one row each), to see how far the outcome depends on that scale. Columns per row:
  saturated   % of the decoder's output pixels with |logit| > 20 (methods.core.preflight.SATURATED_LOGIT)
  std, mean   the logits' spread and mean over the batch
  loss        the training loss (Lovasz x100: 50 at logits 0, 100 with every target pixel missed)
  |g| ...     L2 norm of the gradient of the decoder, the learner (lambda), the target-model feature conv and
              the mask encoder (E, W)
  preflight   what the training's pre-flight says of this first step (methods.core.trainer)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from methods.core.backbones import build_backbone  # noqa: E402
from methods.core.preflight import OutputRecord, first_step_problem, gradient_norm, largest_gradient  # noqa: E402
from methods.lwl.settings import DECODER_INITS  # noqa: E402
from methods.lwl.training import LWLTrainingJob, TrainingConfig, load_crops, load_objects  # noqa: E402
from vos_datasets.shared import require_shared  # noqa: E402


class GivenBackbone(LWLTrainingJob):
    """The preset's training with a backbone built here (the same one for every row)."""

    def __init__(self, config: TrainingConfig, backbone) -> None:
        super().__init__(config)
        self.given = backbone

    def build_backbone(self):
        self.backbone_weights = self.given.weights_record()
        return self.given


def training_settings(preset: Path, training: str, dataset: Path, batch_size: int, weights: Path | None) -> dict:
    trainings = yaml.safe_load(preset.read_text())["trainings"]
    if training not in trainings or trainings[training].get("method") != "lwl":
        raise ValueError(f"{preset}: no LWL training {training!r}; LWL trainings: "
                         f"{sorted(k for k, v in trainings.items() if v.get('method') == 'lwl')}")
    settings = dict(trainings[training].get("settings") or {})
    settings.update({"sources": [{"dataset": {"kind": "davis", "root": str(dataset), "split": "train"}, "weight": 1}],
                     "batch_size": batch_size, "device": "cpu", "num_workers": 0, "init_from": None})
    if weights is not None:
        settings["backbone_weights_file"] = str(weights)
    return settings


def calibrate_batchnorm(backbone, images: torch.Tensor) -> None:
    """Re-estimate a random backbone's BatchNorm statistics on `images` (its features get a realistic scale)."""
    norms = [m for m in backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum, norm.training = None, True  # a cumulative average over the one pass
    with torch.no_grad():
        backbone(images)
    for norm in norms:
        norm.training = False


def first_step(settings: dict, init: str, backbone, seed: int) -> dict:
    """One forward and backward of the training's first batch with the decoder initialised by `init`."""
    config = TrainingConfig.from_dict({**settings, "network": {**settings.get("network", {}), "decoder_init": init}})
    job = GivenBackbone(config, backbone)
    torch.manual_seed(seed)
    net = job.build(torch.device("cpu")).train()
    logits, labels = job.batch_predictions(net, job.epoch_batches(0)[0])
    loss = job.loss(logits, labels)
    loss.backward()
    outputs = OutputRecord()
    outputs.add(logits)
    parts = {"decoder": net.decoder, "learner": net.learner, "target_features": net.target_features,
             "mask_encoder": net.mask_encoder}
    problem = first_step_problem(outputs, largest_gradient(net),
                                 check_saturation=job.saturating_loss and not job.starts_trained)
    return {"init": init, "saturated %": 100 * outputs.saturated_fraction, "std": outputs.std,
            "mean": outputs.total / outputs.count, "loss": float(loss.detach()),
            **{f"|g| {name}": gradient_norm([part]) if part is not None else float("nan")
               for name, part in parts.items()},
            "preflight": problem or "passes"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", type=Path, default=Path("config/presets/paper.yaml"))
    parser.add_argument("--training", default="lwl-stage1", help="an LWL training of the preset")
    parser.add_argument("--dataset", type=Path, help="a DAVIS folder whose train split is used (default: the "
                        "shared folder's DAVIS 2016)")
    parser.add_argument("--batch-size", type=int, default=2, help="mini-sequences in the batch (paper: 20)")
    parser.add_argument("--backbone-weights", type=Path, help="the backbone's pretrained weights file")
    parser.add_argument("--feature-scale", type=float, action="append", help="multiply the backbone's features")
    parser.add_argument("--inits", nargs="+", default=list(DECODER_INITS), choices=DECODER_INITS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        dataset = args.dataset or require_shared("data", "davis2016")
        settings = training_settings(args.preset, args.training, dataset, args.batch_size, args.backbone_weights)
        config = TrainingConfig.from_dict(settings)
    except (ValueError, FileNotFoundError, OSError) as error:
        parser.error(str(error))
    network = config.network.get("backbone", "resnet50")
    torch.manual_seed(args.seed)
    backbone = build_backbone(network, args.backbone_weights, pretrained=args.backbone_weights is not None,
                              weights=config.backbone_weights)
    if args.backbone_weights is None:
        job = LWLTrainingJob(config)  # its first batch, drawn as the training draws it
        job.sources = [(source, load_objects(source, config)) for source in config.sources]
        crops = [load_crops(sample, config)["images"] for sample in job.epoch_batches(0)[0]]
        images = torch.cat([c.permute(0, 3, 1, 2).float() for c in crops])
        calibrate_batchnorm(backbone, images)
        print(f"backbone: {network}, random, BatchNorm statistics re-estimated on the batch's {len(images)} crops")
    else:
        print(f"backbone: {network}, weights {args.backbone_weights}")
    print(f"training {args.training} of {args.preset}: crop {config.crop_size}, loss {config.loss}, decoder batch "
          f"statistics {config.decoder_batch_statistics}, decoder widths "
          f"{config.network.get('decoder_widths', 'default')}, batch {args.batch_size} on {dataset} train")
    rows = []
    for scale in args.feature_scale or [1.0]:
        hook = backbone.register_forward_hook(lambda m, i, out, k=scale: {s: f * k for s, f in out.items()})
        for init in args.inits:
            started = time.perf_counter()
            row = {"feature scale": scale, **first_step(settings, init, backbone, args.seed)}
            row["seconds"] = time.perf_counter() - started
            rows.append(row)
            print(" | ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                  flush=True)
        hook.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
