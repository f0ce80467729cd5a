"""LWL's search regions (paper §3.5; notes §2.4): each object is processed in a crop around its previous
estimate, 5 times the target's size, resized to the network's input size with the aspect ratio kept, and
the output is pasted back into the full frame.

- The target estimate comes from the merged probability map P of the previous frame: the P-weighted
  centroid and 4 standard deviations per axis; the previous box is kept if P sums to less than 100 pixels;
  the size may change by a factor in [0.95, 1.1] per frame.
- The region has the crop's aspect ratio and 25x the box area ("5 times larger"); if it exceeds the image
  in both directions it shrinks until it fits the major one ("inside_major"), and it is shifted inside the
  image where it fits; what remains outside is replicate-padded.
- Crops and pastes are one affine warp each (OpenCV): bilinear for images and probabilities, nearest for
  label masks; pasted logits are -100 outside the region.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

OUTSIDE_LOGIT = -100.0


@dataclass(frozen=True)
class Box:
    cx: float
    cy: float
    width: float
    height: float


def box_from_probability(probability: np.ndarray, previous: Box | None = None, min_mass: float = 100.0,
                         scale_change: tuple[float, float] = (0.95, 1.1)) -> Box | None:
    """The target estimate from a probability (or binary) map (H, W); None if empty and no previous box."""
    p = probability.astype(np.float64)
    mass = p.sum()
    if mass < min_mass and previous is not None:
        return previous
    if mass <= 0:
        return None
    box = _moments(p, mass)
    if previous is None:
        return box
    low, high = scale_change
    width = float(np.clip(box.width, previous.width * low, previous.width * high))
    height = float(np.clip(box.height, previous.height * low, previous.height * high))
    return Box(box.cx, box.cy, width, height)


def _moments(p: np.ndarray, mass: float) -> Box:
    ys, xs = np.arange(p.shape[0]), np.arange(p.shape[1])
    row, col = p.sum(1), p.sum(0)
    cy, cx = float(row @ ys / mass), float(col @ xs / mass)
    sy = float(np.sqrt(max(row @ (ys - cy) ** 2 / mass, 0.0)))
    sx = float(np.sqrt(max(col @ (xs - cx) ** 2 / mass, 0.0)))
    return Box(cx, cy, max(4 * sx, 1.0), max(4 * sy, 1.0))


def box_mask(mask: np.ndarray) -> np.ndarray:
    """The mask's bounding box rasterised, same shape and dtype (box initialisation's input, §3.7)."""
    out = np.zeros_like(mask)
    ys, xs = np.nonzero(mask > 0.5)
    if len(ys):
        out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = 1
    return out


@dataclass(frozen=True)
class Region:
    """An axis-aligned region of the frame (x0, y0, width, height) mapped onto a crop of `crop_size` (H, W)."""

    x0: float
    y0: float
    width: float
    height: float
    crop_size: tuple[int, int]

    def to_crop(self) -> np.ndarray:
        """2x3 affine map from frame pixel centres to crop pixel centres."""
        sx, sy = self.crop_size[1] / self.width, self.crop_size[0] / self.height
        return np.array([[sx, 0, (0.5 - self.x0) * sx - 0.5], [0, sy, (0.5 - self.y0) * sy - 0.5]], np.float64)


def search_region(box: Box, image_size: tuple[int, int], crop_size: tuple[int, int], scale: float = 5.0) -> Region:
    height, width = image_size
    aspect = crop_size[1] / crop_size[0]  # W / H of the crop
    area = scale * scale * box.width * box.height
    region_h = float(np.sqrt(area / aspect))
    region_w = region_h * aspect
    shrink = min(region_w / width, region_h / height)  # > 1: larger than the image in both directions
    if shrink > 1:
        region_w, region_h = region_w / shrink, region_h / shrink
    x0 = _place(box.cx - region_w / 2, region_w, width)
    y0 = _place(box.cy - region_h / 2, region_h, height)
    return Region(x0, y0, region_w, region_h, tuple(crop_size))


def _place(start: float, extent: float, limit: float) -> float:
    """Shift inside [0, limit] where it fits; centre it where it does not (replicate padding both sides)."""
    if extent >= limit:
        return (limit - extent) / 2
    return float(np.clip(start, 0, limit - extent))


def crop(image: np.ndarray, region: Region, nearest: bool = False) -> np.ndarray:
    """The region of an image (H, W[, C]) at the crop size; outside the frame the border is replicated."""
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    size = (region.crop_size[1], region.crop_size[0])
    return cv2.warpAffine(image, region.to_crop(), size, flags=flags, borderMode=cv2.BORDER_REPLICATE)


def paste(values: np.ndarray, region: Region, image_size: tuple[int, int], fill: float = OUTSIDE_LOGIT) -> np.ndarray:
    """Crop-sized values (h, w) back into a frame of image_size, `fill` outside the region (bilinear)."""
    size = (image_size[1], image_size[0])
    return cv2.warpAffine(values.astype(np.float32), region.to_crop(), size,
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=fill)
