"""Scribbles as training labels for an interactive tracker (the DAVIS interactive track, interactive.session).

A scribble map is H x W at the frames' size: -1 unlabelled, 0 background, k object k. For one object and one
interacted frame, `object_targets` gives the target model's training label and a per-pixel loss weight
(0: unlabelled) at the size the networks run at:

1. the scribbles, widened by `scribble_dilation` pixels (`dilated_labels`), weight 1;
2. from the second interaction on, the tracker's previous masks of that frame, weight `previous_masks_weight`,
   except where the new scribbles contradict them (`contradicted`);
3. weak negatives: what neither labels, outside `weak_negatives_box_scale` times the box of the object's
   scribble, is its background with weight `weak_negatives_weight`.

Where the scribbles label every pixel (a dense mask given as a scribble) the label is the mask resized as the
semi-supervised trackers resize a given mask (`resize_mask`), every weight 1: the tracker then learns exactly
what it learns from a first-frame mask.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

UNLABELLED = -1


def checked_scribbles(method: str, sequence, frame_index: int, scribble_labels) -> np.ndarray:
    """An interaction's scribble map, checked against the sample `sequence` (None: no start() yet): the frame
    exists, the map has the frames' size and its labels are -1, 0 or an object of the sequence; else an error
    naming the method and the sequence."""
    if sequence is None:
        raise RuntimeError(f"{method} interactive: interact() before start(sequence)")
    frames, shape = len(sequence.frames), tuple(sequence.size)
    if not 0 <= frame_index < frames:
        raise ValueError(f"{method} interactive: frame {frame_index} of {sequence.name}, which has {frames}")
    scribbles = np.asarray(scribble_labels)
    if scribbles.shape != shape:
        raise ValueError(f"{method} interactive: scribbles of size {scribbles.shape} on {sequence.name}, "
                         f"whose frames are {shape}")
    if scribbles.max() > sequence.num_objects or scribbles.min() < UNLABELLED:
        raise ValueError(f"{method} interactive: scribble labels {np.unique(scribbles).tolist()} on "
                         f"{sequence.name}: -1, 0 or an object 1..{sequence.num_objects}")
    return scribbles


def propagation_ranges(interacted: list[int], frame_index: int, frames: int) -> tuple[range, range]:
    """The frames an interaction on `frame_index` tracks again, in tracking order: forwards up to the nearest
    other interacted frame after it (or the end), backwards down to the nearest one before it (or the start)."""
    others = [index for index in interacted if index != frame_index]
    after = min((index for index in others if index > frame_index), default=frames)
    before = max((index for index in others if index < frame_index), default=-1)
    return range(frame_index + 1, after), range(frame_index - 1, before, -1)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A boolean mask at another size (area interpolation, then > 0.5), as methods.frtm.tracker resizes a
    given mask."""
    if mask.shape == size:
        return mask
    return cv2.resize(mask.astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA) > 0.5


def dilated_labels(scribbles: np.ndarray, radius: int) -> np.ndarray:
    """Every pixel within `radius` of a scribbled pixel gets the label of the nearest one; -1 elsewhere."""
    scribbled = scribbles != UNLABELLED
    if radius == 0 or not scribbled.any() or scribbled.all():
        return scribbles.astype(np.int64)
    distance, (rows, columns) = ndimage.distance_transform_edt(~scribbled, return_indices=True)
    painted = scribbles[rows, columns].astype(np.int64)
    painted[distance > radius] = UNLABELLED
    return painted


def contradicted(scribbles: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """The pixels where the previous masks are not to be trusted: around every scribbled pixel whose label
    differs from the previous mask's there, the largest disc inside that previous label's region.

    Why a disc: the robot scribbles on the skeleton of an error region (the region where the previous mask
    was wrong, opened by a disc), and a skeleton point is the centre of the largest disc inside the region;
    the error region lies inside the previous label's region, so this disc covers at least the corrected part
    around the scribble and stops at the previous label's boundary."""
    wrong = (scribbles != UNLABELLED) & (scribbles != previous)
    dropped = np.zeros(previous.shape, np.uint8)
    for label in np.unique(previous[wrong]):
        radius = ndimage.distance_transform_edt(previous == label)
        rows, columns = np.nonzero(wrong & (previous == label))
        for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
            cv2.circle(dropped, (column, row), int(radius[row, column]), 1, thickness=-1)
    return dropped.astype(bool)


def _box_outside(mask: np.ndarray, scale: float) -> np.ndarray:
    """The pixels outside the mask's bounding box scaled by `scale` about its centre."""
    rows, columns = np.nonzero(mask)
    centre_row, centre_column = (rows.min() + rows.max()) / 2, (columns.min() + columns.max()) / 2
    half_height = (rows.max() - rows.min() + 1) * scale / 2
    half_width = (columns.max() - columns.min() + 1) * scale / 2
    grid_rows, grid_columns = np.ogrid[: mask.shape[0], : mask.shape[1]]
    return (np.abs(grid_rows + 0.5 - (centre_row + 0.5)) > half_height) | \
        (np.abs(grid_columns + 0.5 - (centre_column + 0.5)) > half_width)


def object_targets(scribbles: np.ndarray, object_id: int, size: tuple[int, int], settings,
                   previous: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(label, weight), float32 arrays of `size` (the networks' (height, width)): object `object_id`'s
    training label (1 object, 0 background) and each pixel's loss weight (0 unlabelled) from the interacted
    frame's scribbles (H x W, -1 unlabelled) and, from the second interaction on, the tracker's previous
    masks of that frame (`previous`, H x W object ids). `settings`: a methods.core.settings.ScribbleSettings.
    The module doc gives the rules."""
    dilated = dilated_labels(scribbles, settings.scribble_dilation)
    if (dilated != UNLABELLED).all():  # a dense mask: exactly as a given first mask
        return resize_mask(dilated == object_id, size).astype(np.float32), np.ones(size, np.float32)
    weight = (dilated != UNLABELLED).astype(np.float32)
    label = dilated == object_id
    if previous is not None and settings.previous_masks_weight > 0:
        trusted = (weight == 0) & ~contradicted(scribbles, previous)
        label[trusted] = previous[trusted] == object_id
        weight[trusted] = settings.previous_masks_weight
    own = dilated == object_id
    if settings.weak_negatives_box_scale is not None and own.any():
        negatives = (weight == 0) & _box_outside(own, settings.weak_negatives_box_scale)
        weight[negatives] = settings.weak_negatives_weight  # label stays 0
    if label.shape == size:
        return label.astype(np.float32), weight
    # at the networks' size: a pixel's weight is the mean over the frame pixels it covers, its label the
    # majority of the labelled ones among them
    labelled = cv2.resize((weight > 0).astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA)
    positive = cv2.resize((label & (weight > 0)).astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA)
    small_weight = cv2.resize(weight, size[::-1], interpolation=cv2.INTER_AREA)
    small_label = (labelled > 0) & (positive > 0.5 * labelled)
    small_weight[labelled <= 0] = 0
    return small_label.astype(np.float32), small_weight.astype(np.float32)
