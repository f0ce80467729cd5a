"""What every method provides: given a sequence (frames plus each object's first mask), the label map of
every frame. The runner (methods.runner) reads the data, writes the results and times the method."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from vos_datasets.sequence import Sequence


class VOSMethod(Protocol):
    name: str

    def run_sequence(self, sequence: Sequence) -> Iterator[tuple[str, np.ndarray]]:
        """Yield (frame name, uint8 label map of object ids) for every frame, in order.

        A method may use each object's mask only from the frame where it is given
        (`sequence.object_first_frames()`), never later annotations.
        """
        ...


def given_masks(sequence: Sequence) -> dict[str, dict[int, np.ndarray]]:
    """Frame name -> {object id: boolean mask} for the masks a semi-supervised method is given."""
    given: dict[str, dict[int, np.ndarray]] = {}
    for oid, frame in sorted(sequence.object_first_frames().items()):
        ids = sequence.read_mask(frame)
        mask = ids == oid
        if not mask.any():
            raise ValueError(
                f"{sequence.mask_path(frame)}: object {oid} is empty in the frame where it is given; "
                "a semi-supervised method needs a non-empty first mask"
            )
        given.setdefault(frame, {})[oid] = mask
    return given


def read_frame_checked(sequence: Sequence, frame: str) -> np.ndarray:
    """The frame's RGB image; a frame whose size differs from the sequence's is refused, naming the file."""
    from vos_datasets.sequence import DatasetError

    image = sequence.read_image(frame)
    height, width = sequence.size
    if image.shape[:2] != (height, width):
        raise DatasetError(f"{sequence.image_path(frame)}: frame is {image.shape[1]}x{image.shape[0]} but "
                           f"the sequence is {width}x{height}; all frames of a video must have one size")
    return image


def check_mask_size(sequence: Sequence, frame: str, mask: np.ndarray) -> None:
    from vos_datasets.sequence import DatasetError

    height, width = sequence.size
    if mask.shape != (height, width):
        raise DatasetError(f"{sequence.mask_path(frame)}: mask is {mask.shape[1]}x{mask.shape[0]} but "
                           f"the frames are {width}x{height}")
