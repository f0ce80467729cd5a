"""Why do FRTM's online updates help or hurt? One trained head, the same sequences, four ways to update D.

    python benchmarks/frtm_update_diagnosis.py --checkpoint results/davis2016/training/frtm-refiner/head.pt \\
        --sequences blackswan soapbox bmx-trees --record benchmarks/RESULTS-update-diagnosis.md

Modes (all "Ours" settings otherwise):
  no-update      D learned on the first frame only (Table 1's "Ours - no update")
  update         the paper: each tracked frame's merged soft mask is added to the memory, D updated every t_s frames
  update-hard    as update, with the soft mask thresholded at 0.5 (are blurry soft labels the problem?)
  update-oracle  as update, with the ground-truth mask as the label (is the update itself sound?)

For every mode it reports J of the final masks (after R) and J of D alone (its upsampled scores > 0.5; D
regresses the 0/1 label), the mean over the DAVIS-evaluated frames (first and last excluded). If the oracle
improves on no-update while update does not, the update machinery is sound and the labels R produces are
what drags D away: self-training on a weak R's masks drifts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.records import show_and_record  # noqa: E402
from methods.frtm.tracker import FRTM  # noqa: E402
from metrics.measures import jaccard  # noqa: E402
from vos_datasets.davis import DavisDataset  # noqa: E402
from vos_datasets.shared import require_shared  # noqa: E402

MODES = {"no-update": {"update": False}, "update": {}, "update-hard": {}, "update-oracle": {}}


class DiagnosisFRTM(FRTM):
    """FRTM whose memory labels come from `label_source`: the soft mask, its threshold, or the ground truth."""

    def __init__(self, label_source: str, **settings) -> None:
        super().__init__(**settings)
        self.label_source = label_source
        self.sequence = None

    def run_sequence(self, sequence):
        self.sequence = sequence
        yield from super().run_sequence(sequence)

    def _memory_label(self, frame, object_id, soft_mask):
        if self.label_source == "update-hard":
            return (soft_mask > 0.5).to(soft_mask.dtype)
        if self.label_source == "update-oracle":
            truth = (self.sequence.read_mask(frame) == object_id).astype(np.float32)
            height, width = soft_mask.shape
            resized = cv2.resize(truth, (width, height), interpolation=cv2.INTER_AREA)
            return torch.from_numpy(resized).to(soft_mask)
        return soft_mask


def diagnose(dataset: DavisDataset, sequences: list[str], settings: dict) -> pd.DataFrame:
    rows = []
    for mode, changes in MODES.items():
        method = DiagnosisFRTM(mode, **{**settings, **changes, "keep_score_maps": True})
        for name in tqdm(sequences, desc=mode, unit="seq"):
            sequence = dataset.sequence(name)
            method.score_maps.clear()
            outputs = dict(method.run_sequence(sequence))
            evaluated = sequence.frames[1:-1]
            j_final, j_target_model = [], []
            for frame in evaluated:
                truth = sequence.read_mask(frame)
                for object_id in sorted(set(np.unique(truth)) - {0, 255}):
                    gt = truth == object_id
                    j_final.append(jaccard(gt, outputs[frame] == object_id, truth == 255))
                    score = method.score_maps.get((frame, int(object_id)))
                    if score is not None:
                        upsampled = F.interpolate(score[None, None].float(), size=gt.shape, mode="bilinear",
                                                  align_corners=False)[0, 0]
                        j_target_model.append(jaccard(gt, (upsampled > 0.5).cpu().numpy(), truth == 255))
            rows.append({"mode": mode, "sequence": name, "J (final)": float(np.mean(j_final)),
                         "J (D alone)": float(np.mean(j_target_model))})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a trained refiner head (head: refiner)")
    parser.add_argument("--root", default=None, help="DAVIS root (default: <shared>/data/davis2016)")
    parser.add_argument("--year", default="2016")
    parser.add_argument("--sequences", nargs="+", required=True)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--input-size", nargs=2, type=int, default=[240, 432])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--record", default=None, help="append the tables to this markdown file")
    args = parser.parse_args(argv)
    root = args.root or str(require_shared("data/davis2016"))
    # the dataset refuses a sequence name that its val split does not list, naming the split file
    dataset = DavisDataset(root, year=args.year, split="val", sequences=args.sequences)
    settings = {"checkpoint": args.checkpoint, "backbone": args.backbone, "input_size": args.input_size,
                "device": args.device}
    table = diagnose(dataset, args.sequences, settings)
    per_sequence = table.pivot(index="sequence", columns="mode", values=["J (final)", "J (D alone)"])
    per_sequence = per_sequence.reindex(columns=list(MODES), level=1)
    per_sequence.columns = [f"{measure}, {mode}" for measure, mode in per_sequence.columns]
    mean = table.groupby("mode", sort=False)[["J (final)", "J (D alone)"]].mean()
    text = (f"## FRTM update diagnosis\n\n`python benchmarks/frtm_update_diagnosis.py {' '.join(argv or sys.argv[1:])}`\n\n"
            f"Mean J over the sequences:\n\n{mean.round(3).to_markdown()}\n\n"
            f"Per sequence:\n\n{per_sequence.round(3).to_markdown()}\n")
    show_and_record(text, args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
