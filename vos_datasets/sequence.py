"""One video of any dataset layout (DAVIS, YouTube-VOS, the embedded set) and the error every reader raises
for a folder that does not have its layout."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from .masks import VOID_ID, Convention, decompression_bomb_message, read_label_png


class DatasetError(ValueError):
    """A dataset folder that does not have the expected layout; the message names the path and the fix."""


@contextlib.contextmanager
def opened_image(path: Path) -> Iterator[Image.Image]:
    """Image.open for a dataset file, its failures as one DatasetError naming the file and the fix: a damaged
    file, or one declaring more pixels than PIL allows (a decompression bomb, DecompressionBombError is not an
    OSError)."""
    try:
        with Image.open(path) as image:
            yield image
    except Image.DecompressionBombError as err:
        raise DatasetError(decompression_bomb_message(path, err, "re-extract or re-download the dataset")) from None
    except OSError as err:
        raise DatasetError(f"{path}: corrupt image ({err}); re-extract or re-download the dataset") from err


@dataclass(frozen=True)
class Sequence:
    """One video: its frame names in order and the files behind them."""

    name: str
    frames: tuple[str, ...]
    image_dir: Path
    mask_dir: Path
    convention: Convention = "auto"
    first_frames: dict[int, str] = field(default_factory=dict, compare=False)

    def image_path(self, frame: str) -> Path:
        return self.image_dir / f"{frame}.jpg"

    def mask_path(self, frame: str) -> Path:
        return self.mask_dir / f"{frame}.png"

    def read_image(self, frame: str) -> np.ndarray:
        """RGB uint8 image, H x W x 3."""
        path = self.image_path(frame)
        if not path.is_file():
            raise DatasetError(f"{path}: frame missing from sequence {self.name}; re-extract the dataset")
        with opened_image(path) as image:
            return np.asarray(image.convert("RGB"))

    def read_mask(self, frame: str) -> np.ndarray:
        """Object ids of one annotated frame (void kept as 255)."""
        return read_label_png(self.mask_path(frame), self.convention)

    @cached_property
    def annotated_frames(self) -> tuple[str, ...]:
        return tuple(sorted(p.stem for p in self.mask_dir.glob("*.png")))

    @cached_property
    def size(self) -> tuple[int, int]:
        """(height, width) of the first frame."""
        with opened_image(self.image_path(self.frames[0])) as image:
            return image.height, image.width

    def object_first_frames(self) -> dict[int, str]:
        """Each object id -> the frame where its mask is given to a method.

        DAVIS: every object of the first annotated frame, given there. Datasets whose objects enter
        mid-video (YouTube-VOS, the embedded set) list each object's first frame in a meta.json.
        """
        if self.first_frames:
            return dict(self.first_frames)
        first = self.annotated_frames[0]
        ids = np.unique(self.read_mask(first))
        return {int(i): first for i in ids if 0 < i < VOID_ID}

    def validate(self) -> None:
        """Raise DatasetError naming the first missing or mis-sized file."""
        if not self.frames:
            raise DatasetError(f"{self.image_dir}: no frames in sequence {self.name}")
        height, width = self.size
        for frame in self.frames:
            if not self.image_path(frame).is_file():
                raise DatasetError(f"{self.image_path(frame)}: frame missing; re-extract the dataset")
        for frame in self.annotated_frames:
            with opened_image(self.mask_path(frame)) as mask:
                if (mask.height, mask.width) != (height, width):
                    raise DatasetError(
                        f"{self.mask_path(frame)}: mask is {mask.width}x{mask.height} but the frames are "
                        f"{width}x{height}; annotations must have the size of their frames"
                    )
