"""Region similarity J, boundary accuracy F and the per-object statistics, as the official DAVIS
toolkit (davis2017-evaluation) defines them. `pair_scores` gives J and F of every (proposal, object)
pair of a frame at once, for the unsupervised task.

`jaccard`, `boundary_map` and `f_measure` are the plain full-frame definitions; `frame_scores`
computes the same figures for every object of a frame at once with less work, each step exact:
- ids are compared only inside the box of a frame's labelled pixels, and each object is scored on a
  crop around it (the boundary of a mask only involves a pixel's E, S and SE neighbours, and dilation
  never reaches outside the crop that holds both boundaries);
- a boundary pixel that lies on the other mask's boundary too is matched without any dilation, and
  the other boundary is dilated only around the pixels left (a pixel more than the radius away
  cannot reach them), so identical boundaries need no dilation at all;
- the disk is dilated as the union of the few rectangles it is made of (`dilate_disk`), which
  OpenCV dilates in two 1-D passes each.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

BOUNDARY_THRESHOLD = 0.008  # fraction of the image diagonal (official bound_th)


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """|S n G| / |S u G|; 1 when both masks are empty (official db_eval_iou)."""
    gt, pred = gt.astype(bool), pred.astype(bool)
    keep = np.ones_like(gt) if void is None else ~void.astype(bool)
    union = np.count_nonzero((gt | pred) & keep)
    if union == 0:
        return 1.0
    return np.count_nonzero((gt & pred) & keep) / union


_SQUARE_2X2 = np.ones((2, 2), np.uint8)


def boundary_map(seg: np.ndarray) -> np.ndarray:
    """Official seg2bmap: a pixel is on the boundary if it differs from its E, S or SE neighbour.

    The last row compares with E only, the last column with S only, and the corner is never set.
    Computed as the morphological gradient (max - min) over the pixel and its E, S and SE neighbours,
    the image's edge replicated: a replicated neighbour equals one that is compared already (or the
    pixel itself), which is exactly the toolkit's rule for the last row, the last column and the corner.
    """
    seg = np.ascontiguousarray(seg, dtype=bool).view(np.uint8)
    gradient = cv2.morphologyEx(seg, cv2.MORPH_GRADIENT, _SQUARE_2X2, anchor=(0, 0),
                                borderType=cv2.BORDER_REPLICATE)
    return gradient.view(bool)


def present_labels(ids: np.ndarray) -> np.ndarray:
    """The values that occur in a label map, ascending (what np.unique gives, without sorting the pixels).

    A label map holds few ids: below 32, one comparison per candidate id is the fastest exact test
    (np.bincount first widens every pixel to 64 bits; a histogram costs several passes).
    """
    top = int(ids.max(initial=0))
    if ids.dtype == np.uint8 and top < 32:
        return np.array([value for value in range(top + 1) if np.count_nonzero(ids == value)], np.int64)
    return np.unique(ids)


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUNDARY_THRESHOLD) -> int:
    """Dilation radius in pixels: ceil(bound_th * diagonal), 8 at 854x480."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


@lru_cache(maxsize=16)
def disk(radius: int) -> np.ndarray:
    """The toolkit's structuring element, skimage.morphology.disk(radius): the pixels (dy, dx) with
    dy^2 + dx^2 <= radius^2, as uint8 (computed here so that scoring never imports scikit-image)."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


@lru_cache(maxsize=16)
def disk_rectangles(radius: int) -> tuple[np.ndarray, ...]:
    """The disk as a union of centred rectangles, one per distinct row width.

    Row dy of the disk spans |dx| <= half[|dy|], and half never grows with |dy|; so the disk is the
    union, over each distinct half-width w, of the rectangle |dx| <= w, |dy| <= (last row as wide as w).
    """
    kernel = disk(radius)
    half = [int(kernel[radius + dy].sum()) // 2 for dy in range(radius + 1)]
    heights = {width: max(dy for dy in range(radius + 1) if half[dy] >= width) for width in set(half)}
    return tuple(np.ones((2 * height + 1, 2 * width + 1), np.uint8) for width, height in sorted(heights.items()))


def dilate_disk(bmap: np.ndarray, radius: int) -> np.ndarray:
    """cv2.dilate(bmap, disk(radius)) of a 0/1 uint8 map, computed as the union of its dilations by
    `disk_rectangles` (dilation distributes over a union of structuring elements), which is faster."""
    rectangles = disk_rectangles(radius)
    out = cv2.dilate(bmap, rectangles[0])
    for rectangle in rectangles[1:]:
        cv2.bitwise_or(out, cv2.dilate(bmap, rectangle), dst=out)
    return out


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
    kernel = disk(boundary_radius(gt.shape, bound_th))
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    pred_dil = cv2.dilate(pred_b.astype(np.uint8), kernel).astype(bool)
    return _precision_recall_f(int(pred_b.sum()), int(gt_b.sum()), int((pred_b & gt_dil).sum()),
                               int((gt_b & pred_dil).sum()))


def matched_pixels(bmap: np.ndarray, other: np.ndarray, radius: int) -> int:
    """How many pixels of the boundary map `bmap` lie within the disk of `radius` around a pixel of the
    boundary map `other` (the official count: bmap & dilate(other, disk)), both boolean and of one shape.

    Pixels of `bmap` on `other` itself match without any dilation; `other` is dilated only on the box
    of the pixels left, grown by the radius (no pixel farther away reaches them).
    """
    left = bmap & ~other
    x, y, w, h = cv2.boundingRect(left.view(np.uint8))
    n_on_other = np.count_nonzero(bmap) - np.count_nonzero(left[y:y + h, x:x + w])
    if w == 0:
        return n_on_other
    height, width = bmap.shape
    y0, x0 = max(y - radius, 0), max(x - radius, 0)
    y1, x1 = min(y + h + radius, height), min(x + w + radius, width)
    # np.ascontiguousarray: OpenCV sees only the region (a view's neighbours are no border for it).
    reach = dilate_disk(np.ascontiguousarray(other[y0:y1, x0:x1]).view(np.uint8), radius).view(bool)
    return n_on_other + np.count_nonzero(left[y:y + h, x:x + w] & reach[y - y0:y - y0 + h, x - x0:x - x0 + w])


def labelled_box(gt_ids: np.ndarray, pred_ids: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of the box holding every labelled pixel of either map, grown by one pixel within
    the frame, or None where both maps are empty: every object lies inside it with its boundary, so ids need to
    be compared only there."""
    x, y, w, h = cv2.boundingRect(np.maximum(gt_ids, pred_ids))
    if w == 0:
        return None
    height, width = gt_ids.shape
    return max(y - 1, 0), max(x - 1, 0), min(y + h + 1, height), min(x + w + 1, width)


def frame_scores(gt_ids: np.ndarray, pred_ids: np.ndarray, object_ids: list[int], radius: int,
                 void: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """J and F of each object in `object_ids` on one frame (same figures as `jaccard`/`f_measure`)."""
    j_values = np.ones(len(object_ids))  # an object absent from both: J = F = 1 (toolkit's convention)
    f_values = np.ones(len(object_ids))
    box = labelled_box(gt_ids, pred_ids)
    if box is None:
        return j_values, f_values
    top, left, bottom, right = box
    gt_region, pred_region = gt_ids[top:bottom, left:right], pred_ids[top:bottom, left:right]
    keep = None if void is None else ~void[top:bottom, left:right]
    height, width = bottom - top, right - left
    for index, object_id in enumerate(object_ids):
        gt = gt_region == object_id
        pred = pred_region == object_id
        if keep is not None:
            gt &= keep
            pred &= keep
        union = gt | pred
        # cv2.boundingRect on a 0/1 uint8 view finds the union's box without a Python loop.
        x, y, w, h = cv2.boundingRect(union.view(np.uint8))
        if w == 0:
            continue
        y0, x0 = max(y - 1, 0), max(x - 1, 0)
        y1, x1 = min(y + h + 1, height), min(x + w + 1, width)
        gt_crop, pred_crop = gt[y0:y1, x0:x1], pred[y0:y1, x0:x1]
        j_values[index] = np.count_nonzero(gt_crop & pred_crop) / np.count_nonzero(gt_crop | pred_crop)
        # The crop keeps one row/column above-left (the boundary reaches there) and one below-right
        # (all background, so the toolkit's last-row/column rule gives the same map as full-frame).
        pred_b, gt_b = boundary_map(pred_crop), boundary_map(gt_crop)
        n_gt, n_pred = np.count_nonzero(gt_b), np.count_nonzero(pred_b)
        if n_gt and n_pred:
            f_values[index] = _precision_recall_f(n_pred, n_gt, matched_pixels(pred_b, gt_b, radius),
                                                  matched_pixels(gt_b, pred_b, radius))
        else:
            f_values[index] = _precision_recall_f(n_pred, n_gt, 0, 0)
    return j_values, f_values


@dataclass
class _Boundary:
    """One mask's boundary map and its dilation by the disk, each a crop with its top-left corner in the frame."""

    corner: tuple[int, int]
    bmap: np.ndarray
    count: int
    reach_corner: tuple[int, int]
    reach: np.ndarray


def _boundary(mask: np.ndarray, radius: int) -> _Boundary | None:
    """The boundary of a boolean mask (`boundary_map`, on a crop around it) and the pixels within `radius` of it
    (`dilate_disk`, on that crop grown by the radius); None when the boundary is empty."""
    height, width = mask.shape
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0:
        return None
    # one row/column above-left (the boundary reaches there) and one below-right (background, so the toolkit's
    # last-row/column rule gives the full-frame map)
    y0, x0 = max(y - 1, 0), max(x - 1, 0)
    bmap = boundary_map(mask[y0:min(y + h + 1, height), x0:min(x + w + 1, width)])
    bx, by, bw, bh = cv2.boundingRect(bmap.view(np.uint8))
    if bw == 0:
        return None
    bmap = bmap[by:by + bh, bx:bx + bw]
    top, left = y0 + by, x0 + bx
    r0, c0 = max(top - radius, 0), max(left - radius, 0)
    grown = np.zeros((min(top + bh + radius, height) - r0, min(left + bw + radius, width) - c0), np.uint8)
    grown[top - r0:top - r0 + bh, left - c0:left - c0 + bw] = bmap
    return _Boundary((top, left), bmap, int(np.count_nonzero(bmap)), (r0, c0), dilate_disk(grown, radius).view(bool))


def _overlap(corner_a: tuple[int, int], a: np.ndarray, corner_b: tuple[int, int], b: np.ndarray) -> int:
    """Pixels set in both crops `a` and `b`, each placed at its corner in the frame."""
    top, left = max(corner_a[0], corner_b[0]), max(corner_a[1], corner_b[1])
    bottom = min(corner_a[0] + a.shape[0], corner_b[0] + b.shape[0])
    right = min(corner_a[1] + a.shape[1], corner_b[1] + b.shape[1])
    if bottom <= top or right <= left:
        return 0
    return int(np.count_nonzero(a[top - corner_a[0]:bottom - corner_a[0], left - corner_a[1]:right - corner_a[1]]
                                & b[top - corner_b[0]:bottom - corner_b[0], left - corner_b[1]:right - corner_b[1]]))


def pair_scores(gt_ids: np.ndarray, pred_ids: np.ndarray, n_objects: int, n_proposals: int, radius: int,
                void: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """J and F of every (proposal, object) pair on one frame, as arrays [proposal - 1, object - 1]: the figures
    `jaccard` and `f_measure` give for `pred_ids == proposal` against `gt_ids == object` (ids of gt_ids above
    n_objects are background; pred_ids holds no id above n_proposals).

    J comes from one joint histogram of the two label maps over the kept pixels. For F, each mask's boundary
    and its dilation by the disk are computed once (on crops), and each pair counts the pixels one boundary
    has within the other's reach, only where their crops meet.
    """
    j_values = np.ones((n_proposals, n_objects))  # both empty: J = F = 1 (the toolkit's convention)
    f_values = np.ones((n_proposals, n_objects))
    box = labelled_box(gt_ids, pred_ids)
    if box is None:
        return j_values, f_values
    top, left, bottom, right = box
    gt_region, pred_region = gt_ids[top:bottom, left:right], pred_ids[top:bottom, left:right]
    if int(gt_region.max()) > n_objects:
        gt_region = np.where(gt_region > n_objects, 0, gt_region)
    keep = None if void is None else ~void[top:bottom, left:right]

    codes = gt_region.astype(np.intp) * (n_proposals + 1) + pred_region
    codes = codes.ravel() if keep is None else codes[keep]
    table = np.bincount(codes, minlength=(n_objects + 1) * (n_proposals + 1)).reshape(n_objects + 1, n_proposals + 1)
    intersection = table[1:, 1:].T
    union = table[1:, :].sum(axis=1)[None, :] + table[:, 1:].sum(axis=0)[:, None] - intersection
    scored = union > 0
    j_values[scored] = intersection[scored] / union[scored]

    def boundaries(region: np.ndarray, ids: list[int]) -> dict[int, _Boundary | None]:
        masks = {i: region == i for i in ids}
        if keep is not None:
            for mask in masks.values():
                mask &= keep
        return {i: _boundary(mask, radius) for i, mask in masks.items()}

    gt_bounds = boundaries(gt_region, [i for i in present_labels(gt_region).tolist() if 0 < i <= n_objects])
    pred_bounds = boundaries(pred_region, [i for i in present_labels(pred_region).tolist() if 0 < i <= n_proposals])
    for proposal in range(1, n_proposals + 1):
        pred_b = pred_bounds.get(proposal)
        for obj in range(1, n_objects + 1):
            gt_b = gt_bounds.get(obj)
            if pred_b is None and gt_b is None:
                continue  # both boundaries empty: F = 1
            if pred_b is None or gt_b is None:
                f_values[proposal - 1, obj - 1] = _precision_recall_f(0 if pred_b is None else pred_b.count,
                                                                      0 if gt_b is None else gt_b.count, 0, 0)
                continue
            pred_match = _overlap(pred_b.corner, pred_b.bmap, gt_b.reach_corner, gt_b.reach)
            gt_match = _overlap(gt_b.corner, gt_b.bmap, pred_b.reach_corner, pred_b.reach)
            f_values[proposal - 1, obj - 1] = _precision_recall_f(pred_b.count, gt_b.count, pred_match, gt_match)
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
