"""One video given as a plain folder of frames plus the mask of its first annotated frame (what `vos-infer
--frames DIR --first-mask PNG` runs on), read as a Sequence like any dataset's video.

Frames are the folder's .jpg, .jpeg or .png files (one kind), in natural order (frame2 before frame10).
The mask belongs to the frame of the same name (00012.png -> 00012.jpg) or, named otherwise, to the first
frame; the frames before it get no object. It holds object ids (an indexed PNG, or 0/255 grayscale for one
object), as DAVIS annotations do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .masks import VOID_ID
from .sequence import DatasetError, Sequence

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def natural_key(name: str) -> list:
    """frame2 < frame10: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class FolderSequence(Sequence):
    suffix: str = ".jpg"
    first_mask: Path | None = None

    def image_path(self, frame: str) -> Path:
        return self.image_dir / f"{frame}{self.suffix}"

    def mask_path(self, frame: str) -> Path:
        if frame != self.annotated_frames[0]:
            raise DatasetError(f"{self.image_dir}: frame {frame} has no mask (only {self.annotated_frames[0]})")
        return self.first_mask

    @cached_property
    def annotated_frames(self) -> tuple[str, ...]:
        stem = self.first_mask.stem
        return (stem if stem in self.frames else self.frames[0],)


def folder_sequence(frames_dir: str | Path, first_mask: str | Path, name: str | None = None) -> FolderSequence:
    """The video of `frames_dir` with its first mask, checked: frames found, the mask readable, of the frames'
    size and holding at least one object. DatasetError (or MaskFormatError) names the file and the fix."""
    frames_dir, first_mask = Path(frames_dir), Path(first_mask)
    if not frames_dir.is_dir():
        raise DatasetError(f"{frames_dir}: frames folder not found; give the folder holding the video's frames "
                           "(00000.jpg, 00001.jpg, ...)")
    if not first_mask.is_file():
        raise DatasetError(f"{first_mask}: first-frame mask not found; give the PNG of the objects' ids in the "
                           "first frame (a DAVIS annotation, e.g. Annotations/480p/<video>/00000.png)")
    files = [p for p in frames_dir.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()
             and p.resolve() != first_mask.resolve()]
    suffixes = sorted({p.suffix for p in files})
    if not files:
        raise DatasetError(f"{frames_dir}: no frames ({', '.join(FRAME_SUFFIXES)} files); give the folder holding "
                           "the video's frames")
    if len(suffixes) > 1:
        raise DatasetError(f"{frames_dir}: holds frames of several kinds {suffixes}; keep one kind of file "
                           "(e.g. only the .jpg frames) in the folder")
    frames = tuple(sorted((p.stem for p in files), key=natural_key))
    sequence = FolderSequence(name or frames_dir.resolve().name, frames, frames_dir, first_mask.parent,
                              suffix=suffixes[0], first_mask=first_mask)
    sequence.validate()  # every frame present, the mask of the frames' size (names the mask and the fix)
    ids = np.unique(sequence.read_mask(sequence.annotated_frames[0]))
    if not any(0 < i < VOID_ID for i in ids):
        raise DatasetError(f"{first_mask}: holds no object (only ids {ids.tolist()}); mark each target with its "
                           "id (1, 2, ...) on a background of 0")
    return sequence
