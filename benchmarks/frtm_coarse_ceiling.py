"""How much can D-only reach at all, at a given frame size? The J of the best stride-16 score map.

    python benchmarks/frtm_coarse_ceiling.py --sequences blackswan soapbox --sizes 240x432 480x854 \\
        --record benchmarks/RESULTS-coarse-ceiling.md

D-only (FRTM's Table 1) has no refinement network: its mask is D's score map, one score per stride-16 cell of
the frame the networks see, bilinearly upsampled and thresholded (scale and offset learned; 0.5 where D fits
its 0/1 labels). D is trained in the upsampled space (its residual is U(s) - label, U bilinear), so whatever
features D has, its mask can be no better than U(s*) > 0.5 with s* the least-squares fit of the ground-truth
mask: s* = pinv(A_h) M pinv(A_w)^T, with A_h, A_w the bilinear resizing matrices of U. This script measures
that ceiling's J for each frame size, with the mask written at the native size as the tracker does (the
network-size probabilities upsampled bilinearly). R, Base net's and Ours' decoder, reads the stride-4/8
features and is not bound by it, so the lower the ceiling at a frame size, the more D-only alone pays for it.

Simplifications, stated: unweighted least squares (D's loss weighs small objects' pixels up), an
unconstrained score map (D is a 3x3 conv on the features, so its real ceiling is lower), threshold 0.5.
"""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.records import show_and_record  # noqa: E402
from methods.frtm.target_model import _interpolation_matrix, upsample_bilinear  # noqa: E402
from methods.frtm.tracker import resize_mask  # noqa: E402
from metrics.measures import jaccard  # noqa: E402
from vos_datasets.davis import DavisDataset  # noqa: E402
from vos_datasets.shared import require_shared  # noqa: E402

STRIDE_HALVINGS = 4  # stride 16: four stride-2 layers, each giving ceil(n / 2) with the backbones' padding


def feature_grid(size: tuple[int, int]) -> tuple[int, int]:
    """The stride-16 grid of a (height, width) frame: ceil(n / 2) four times, as the padded convolutions do."""
    grid = list(size)
    for _ in range(STRIDE_HALVINGS):
        grid = [(n + 1) // 2 for n in grid]
    return grid[0], grid[1]


@lru_cache(maxsize=8)
def _least_squares(size_in: int, size_out: int) -> torch.Tensor:
    """pinv of the (size_out, size_in) bilinear resizing matrix: computed once per size, not per frame."""
    return torch.linalg.pinv(_interpolation_matrix(size_in, size_out, torch.float64, torch.device("cpu")))


def best_coarse_mask(mask: np.ndarray, size: tuple[int, int], native: tuple[int, int]) -> np.ndarray:
    """The mask of the least-squares stride-16 score map of `mask` at network size `size`, at the native size."""
    label = torch.from_numpy(resize_mask(mask, size).astype(np.float64))
    grid = feature_grid(size)
    scores = _least_squares(grid[0], size[0]) @ label @ _least_squares(grid[1], size[1]).T
    probabilities = upsample_bilinear(scores[None, None], size)
    at_native = upsample_bilinear(probabilities[:, None], native)[0]
    return (at_native > 0.5).numpy()


def ceilings(dataset: DavisDataset, sequences: list[str], sizes: list[tuple[int, int]]) -> pd.DataFrame:
    rows = []
    for name in tqdm(sequences, desc="sequences", unit="seq"):
        sequence = dataset.sequence(name)
        scores = {size: [] for size in sizes}
        for frame in sequence.frames[1:-1]:  # the frames DAVIS evaluates
            truth = sequence.read_mask(frame)
            for object_id in sorted(set(np.unique(truth)) - {0, 255}):
                gt = truth == object_id
                for size in sizes:
                    scores[size].append(jaccard(gt, best_coarse_mask(gt, size, gt.shape), truth == 255))
        for size in sizes:
            rows.append({"sequence": name, "frame size": f"{size[0]}x{size[1]}",
                         "grid": "x".join(map(str, feature_grid(size))), "J ceiling": float(np.mean(scores[size]))})
    return pd.DataFrame(rows)


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame size {text!r} is not HEIGHTxWIDTH (e.g. 240x432)") from None
    return height, width


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None, help="DAVIS root (default: <shared>/data/davis2016)")
    parser.add_argument("--year", default="2016")
    parser.add_argument("--sequences", nargs="+", required=True)
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(240, 432), (480, 854)],
                        help="network frame sizes HEIGHTxWIDTH (default: the CPU presets' 240x432, the paper's 480x854)")
    parser.add_argument("--record", default=None, help="append the tables to this markdown file")
    args = parser.parse_args(argv)
    root = args.root or str(require_shared("data/davis2016"))
    # the dataset refuses a sequence name that its val split does not list, naming the split file
    dataset = DavisDataset(root, year=args.year, split="val", sequences=args.sequences)
    table = ceilings(dataset, args.sequences, args.sizes)
    per_sequence = table.pivot(index="sequence", columns="frame size", values="J ceiling")
    mean = table.groupby(["frame size", "grid"], sort=False)["J ceiling"].mean().reset_index()
    text = (f"## D-only's coarse ceiling\n\n`python benchmarks/frtm_coarse_ceiling.py {' '.join(argv or sys.argv[1:])}`\n\n"
            f"Mean J over the sequences:\n\n{mean.round(3).to_markdown(index=False)}\n\n"
            f"Per sequence:\n\n{per_sequence.round(3).to_markdown()}\n")
    show_and_record(text, args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
