"""The interactive track's lower bound: every scribble painted, dilated, on its frame and copied to the others.

It sees no image. The first interaction's scribbles (each object's, and the background's) are dilated by
`dilation_radius` pixels and copied to every frame; each later interaction's are painted over on the frame
the robot scribbled and copied onward, as first_frame_copy copies a mask given later to the frames after it:
an object scribble adds its label, a background scribble (label 0) erases. Where the dilated scribbles of two
labels meet, each pixel takes the label of the nearest scribbled pixel.

dilation_radius: 8 pixels by default. The robot draws a scribble along the skeleton of the error region after
an opening by a disk of radius min(0.1 * sqrt(area), 16) pixels (davisinteractive's kernel_size 0.2 of the
side, at most 16), so the scribble lies about that far inside the region it corrects (a skeleton point of an
opened region is the centre of an inscribed disk at least that wide; the robot then smooths the path into a
Bezier curve). 8, half the largest radius, keeps the dilated scribble inside regions of about 6,400 pixels and
more (0.1 * sqrt(6400) = 8) and paints a band 17 pixels wide; 0 paints the 1-pixel scribble alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .core.scribbles import UNLABELLED, dilated_labels
from .core.settings import from_known_keys


@dataclass
class ScribbleCopySettings:
    dilation_radius: int = 8

    @classmethod
    def from_dict(cls, values: dict) -> ScribbleCopySettings:
        settings = from_known_keys(cls, values, "scribble_copy setting")
        if settings.dilation_radius < 0:
            raise ValueError(f"scribble_copy: dilation_radius={settings.dilation_radius} must be 0 or more")
        return settings


class ScribbleCopy:
    """start(sequence) / interact(frame_index, scribble_labels) -> masks (T, H, W) (interactive.session)."""

    name = "scribble_copy"

    def __init__(self, **settings) -> None:
        self.settings = ScribbleCopySettings.from_dict(settings)
        self.masks: np.ndarray | None = None
        self.interactions = 0

    def start(self, sequence) -> None:
        height, width = sequence.size
        self.masks = np.zeros((len(sequence.frames), height, width), np.uint8)
        self.interactions = 0

    def interact(self, frame_index: int, scribble_labels: np.ndarray) -> np.ndarray:
        if self.masks is None:
            raise RuntimeError("scribble_copy: interact() before start(sequence)")
        if scribble_labels.shape != self.masks.shape[1:]:
            raise ValueError(f"scribble_copy: scribble of size {scribble_labels.shape}, frames of "
                             f"{self.masks.shape[1:]}")
        painted = dilated_labels(scribble_labels, self.settings.dilation_radius)
        where = painted != UNLABELLED
        first = 0 if self.interactions == 0 else frame_index  # the first scribble reaches every frame
        self.masks[first:, where] = painted[where].astype(np.uint8)
        self.interactions += 1
        return self.masks.copy()
