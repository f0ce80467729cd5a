"""The classic lower bound: every object's given mask copied to all later frames.

It learns nothing and never moves, so it scores what a static scene would; it is reported as a row of
the tables so that every learned method can be read against it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from vos_datasets.sequence import Sequence

from .base import given_masks


class FirstFrameCopy:
    name = "first_frame_copy"

    def __init__(self, **settings) -> None:
        if settings:
            raise ValueError(f"first_frame_copy takes no settings, got {sorted(settings)}")

    def run_sequence(self, sequence: Sequence) -> Iterator[tuple[str, np.ndarray]]:
        given = given_masks(sequence)
        height, width = sequence.size
        labels = np.zeros((height, width), np.uint8)
        for frame in sequence.frames:
            for oid, mask in given.get(frame, {}).items():
                if mask.shape != labels.shape:
                    raise ValueError(f"{sequence.mask_path(frame)}: mask size {mask.shape[::-1]} differs from "
                                     f"the frames' {labels.shape[::-1]}")
                labels[mask] = oid  # an object given later is painted over earlier ones
            yield frame, labels.copy()
