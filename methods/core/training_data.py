"""What the offline trainings of both methods read from a dataset: each object's area per annotated frame."""

from __future__ import annotations

import numpy as np


def object_areas(sequence) -> dict[int, dict[str, int]]:
    """{object id: {annotated frame: pixels of the object}} over the sequence's annotated frames (void 255 and
    background 0 excluded)."""
    areas: dict[int, dict[str, int]] = {}
    for frame in sequence.annotated_frames:
        ids, counts = np.unique(sequence.read_mask(frame), return_counts=True)
        for object_id, count in zip(ids.tolist(), counts.tolist(), strict=True):
            if 0 < object_id < 255:
                areas.setdefault(object_id, {})[frame] = count
    return areas
