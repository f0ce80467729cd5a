"""Region similarity J, boundary accuracy F and the per-object statistics, as the official DAVIS
toolkit (davis2017-evaluation) defines them.

`jaccard`, `boundary_map` and `f_measure` are the plain full-frame definitions; `frame_scores`
computes the same figures for every object of a frame at once, on crops around each object (the
boundary of a mask only involves a pixel's E, S and SE neighbours, and dilation never reaches
outside the crop that holds both boundaries), which is what makes the evaluator fast.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import cv2
import numpy as np
from skimage.morphology import disk

BOUNDARY_THRESHOLD = 0.008  # fraction of the image diagonal (official bound_th)


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """|S n G| / |S u G|; 1 when both masks are empty (official db_eval_iou)."""
    gt, pred = gt.astype(bool), pred.astype(bool)
    keep = np.ones_like(gt) if void is None else ~void.astype(bool)
    union = np.count_nonzero((gt | pred) & keep)
    if union == 0:
        return 1.0
    return np.count_nonzero((gt & pred) & keep) / union


def boundary_map(seg: np.ndarray) -> np.ndarray:
    """Official seg2bmap: a pixel is on the boundary if it differs from its E, S or SE neighbour.

    The last row compares with E only, the last column with S only, and the corner is never set.
    """
    seg = seg.astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUNDARY_THRESHOLD) -> int:
    """Dilation radius in pixels: ceil(bound_th * diagonal), 8 at 854x480."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


@lru_cache(maxsize=16)
def _disk(radius: int) -> np.ndarray:
    return disk(radius).astype(np.uint8)


def _precision_recall_f(n_pred: int, n_gt: int, pred_match: int, gt_match: int) -> float:
    if n_pred == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_pred > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision, recall = pred_match / n_pred, gt_match / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def f_measure(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None,
              bound_th: float = BOUNDARY_THRESHOLD) -> float:
    """Boundary F-measure of one frame (official f_measure), full-frame reference version."""
    keep = None if void is None else ~void.astype(bool)
    gt_b = boundary_map(gt.astype(bool) if keep is None else gt.astype(bool) & keep)
    pred_b = boundary_map(pred.astype(bool) if keep is None else pred.astype(bool) & keep)
    kernel = _disk(boundary_radius(gt.shape, bound_th))
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    pred_dil = cv2.dilate(pred_b.astype(np.uint8), kernel).astype(bool)
    return _precision_recall_f(int(pred_b.sum()), int(gt_b.sum()), int((pred_b & gt_dil).sum()),
                               int((gt_b & pred_dil).sum()))


def frame_scores(gt_ids: np.ndarray, pred_ids: np.ndarray, object_ids: list[int], radius: int,
                 void: np.ndarray | None = None,
                 gt_boundaries: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """J and F of each object in `object_ids` on one frame (same figures as `jaccard`/`f_measure`).

    gt_boundaries: optional precomputed full-frame (boundary map, dilated boundary map) per object of
    the ground truth (see metrics.gt_cache); their crops equal what is computed here otherwise.
    """
    kernel = _disk(radius)
    height, width = gt_ids.shape
    j_values = np.empty(len(object_ids))
    f_values = np.empty(len(object_ids))
    for index, object_id in enumerate(object_ids):
        gt = gt_ids == object_id
        pred = pred_ids == object_id
        if void is not None:
            gt &= ~void
            pred &= ~void
        union = gt | pred
        # cv2.boundingRect on a 0/1 uint8 view finds the union's box without a Python loop.
        x, y, w, h = cv2.boundingRect(union.view(np.uint8))
        if w == 0:  # both empty: J = F = 1 by the toolkit's convention
            j_values[index] = f_values[index] = 1.0
            continue
        y0, x0 = max(y - 1, 0), max(x - 1, 0)
        y1, x1 = min(y + h + 1, height), min(x + w + 1, width)
        gt_crop, pred_crop = gt[y0:y1, x0:x1], pred[y0:y1, x0:x1]
        j_values[index] = np.count_nonzero(gt_crop & pred_crop) / np.count_nonzero(union[y0:y1, x0:x1])
        # The crop keeps one row/column above-left (the boundary reaches there) and one below-right
        # (all background, so the toolkit's last-row/column rule gives the same map as full-frame).
        pred_b = boundary_map(pred_crop)
        if gt_boundaries is None:
            gt_b, gt_dil = boundary_map(gt_crop), None
        elif object_id in gt_boundaries:
            full_b, full_dil = gt_boundaries[object_id]
            gt_b, gt_dil = full_b[y0:y1, x0:x1], full_dil[y0:y1, x0:x1]
        else:
            gt_b, gt_dil = np.zeros_like(pred_b), None
        n_gt, n_pred = np.count_nonzero(gt_b), np.count_nonzero(pred_b)
        if n_gt and n_pred:
            if gt_dil is None:
                gt_dil = cv2.dilate(gt_b.view(np.uint8), kernel).view(bool)
            pred_dil = cv2.dilate(pred_b.view(np.uint8), kernel).view(bool)
            f_values[index] = _precision_recall_f(n_pred, n_gt, np.count_nonzero(pred_b & gt_dil),
                                                  np.count_nonzero(gt_b & pred_dil))
        else:
            f_values[index] = _precision_recall_f(n_pred, n_gt, 0, 0)
    return j_values, f_values


def statistics(values: np.ndarray, decay_uint8_quirk: bool = True) -> tuple[float, float, float]:
    """Mean, recall and decay of one object's per-frame values (official db_statistics).

    Recall counts NaN frames as misses. Decay compares the first and last of 4 temporal bins whose
    edges the toolkit casts to uint8 (wrong beyond 256 frames; decay_uint8_quirk=False fixes that).
    """
    values = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # mean of empty slice, as the toolkit
        mean = float(np.nanmean(values)) if values.size else float("nan")
        recall = float(np.nanmean(values > 0.5)) if values.size else float("nan")
        edges = np.round(np.linspace(1, len(values), 5) + 1e-10) - 1
        edges = edges.astype(np.uint8 if decay_uint8_quirk else np.int64)
        bins = [values[edges[i] : edges[i + 1] + 1] for i in range(4)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay
