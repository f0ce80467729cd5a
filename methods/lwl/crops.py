"""LWL's search regions (paper §3.5; notes §2.4): each object is processed in a crop around its previous
estimate, 5 times the target's size, resized to the network's input size with the aspect ratio kept, and
the output is pasted back into the full frame.

The tracker's geometry is the released tracker's (pytracking `tracker/lwl/lwl.py` with `lwl_ytvos` /
`lwl_boxinit` parameters, `features/preprocessing.py: sample_patch`), step by step, in float32 as there:

- `Target`: the object's position (y, x) and ONE scale factor (the search region is `scale` x the crop size).
  It starts from the ground-truth box (`mask_box`: the box the released evaluation reads, top-left and
  max - min size) with centre y + (h - 1) / 2. Each later frame it follows the merged probability map P of
  the previous frame: P-weighted centroid and 4 standard deviations per axis (the previous state if P sums
  to less than 100), whose scale sqrt(h w / base area) may change by a factor in [0.95, 1.1] per frame.
- The region is centred half a feature cell off the target where the crop's target-model feature grid plus
  the filter size is even (`Target.centred_pos`: 8 x scale px at 480x832 with a 3x3 filter).
- `place_patch` (sample_patch, border mode `inside_major`): integer crop placement on the frame subsampled
  by an integer step when the crop is >= ~2.1x the output; larger than the image in both directions it
  shrinks to fit the major one, then it is shifted inside the image and centred where it does not fit.
  `crop` resizes the patch with F.interpolate: images bilinear with replicate padding, masks and
  probabilities (`mask=True`) nearest with zero padding.
- The first frame (`initial_sample`, released generate_init_samples) is cropped at twice the output size
  around the rounded position with replicate placement, and the output-size window is cut from it with the
  inside_major shift.
- `paste` (convert_scores_crop_to_image): the crop's scores resized by the patch's scale factor (bilinear)
  and copied into a frame of -100 at the integer position of the patch centre.

Training's crops (`Box`, `Region`, `search_region`) are float affine warps of a jittered box
(methods/lwl/training.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

OUTSIDE_LOGIT = -100.0
BOX_SIZE_FACTOR = 4.0  # the target's size is 4 standard deviations of P per axis (released seg_to_bb_sz_factor)
INIT_EXPANSION = 2.0  # the first frame is cropped at twice the output size (released aug_expansion_factor)


# --- the target --------------------------------------------------------------------------------------------
def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """The ground-truth box (x, y, w, h) the released evaluation gives the tracker (ltr/dataset/vos_base.py
    `_mask_to_bbox`): the top-left pixel and max - min per axis, one less than the pixel extent."""
    ys, xs = np.nonzero(mask > 0.5)
    if not len(ys):
        raise ValueError("an empty mask has no box")
    return float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())


def rasterise_box(box: tuple[float, float, float, float], size: tuple[int, int]) -> torch.Tensor:
    """The box as the box encoder sees it (released `bbox_to_mask`), a (1, 1, H, W) float mask."""
    x, y, w, h = (int(v) for v in box)
    x, y, w, h = int(x + 0.5), int(y + 0.5), int(w + 0.5), int(h + 0.5)
    mask = torch.zeros(1, 1, *size)
    mask[..., max(y, 0) : y + h, max(x, 0) : x + w] = 1.0
    return mask


def moments(probability: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre (y, x) and 4-sigma size (h, w) of a probability map (H, W) (released get_target_state, 'var')."""
    p = probability.float()
    mass = p.sum()
    rows, cols = p.sum(dim=-1), p.sum(dim=-2)
    ys = torch.arange(p.shape[-2], dtype=torch.float32)
    xs = torch.arange(p.shape[-1], dtype=torch.float32)
    cy, cx = torch.sum(rows * ys) / mass, torch.sum(cols * xs) / mass
    var_y = torch.sum(rows * (ys - cy) ** 2) / mass
    var_x = torch.sum(cols * (xs - cx) ** 2) / mass
    return torch.stack([cy, cx]), torch.stack([var_y.sqrt(), var_x.sqrt()]) * BOX_SIZE_FACTOR


@dataclass
class Target:
    """One object's estimate: pos (y, x), the scale of its search region (region = scale x crop size) and
    its size (h, w) = base_size x scale; base_size is fixed by the first box, so only the scale changes."""

    pos: torch.Tensor
    scale: torch.Tensor
    base_size: torch.Tensor
    crop_size: torch.Tensor  # (H, W) of the network input

    @classmethod
    def from_box(cls, box: tuple[float, float, float, float], crop_size: tuple[int, int],
                 search_area_scale: float = 5.0) -> Target:
        x, y, w, h = box
        pos = torch.tensor([y + (h - 1) / 2, x + (w - 1) / 2])
        # a one-pixel-wide object has a size of 0 in the released reader (and a scale of 0 there): 1 px here
        size = torch.tensor([max(h, 1.0), max(w, 1.0)])
        crop = torch.tensor([float(crop_size[0]), float(crop_size[1])])
        search_area = torch.prod(size * search_area_scale).item()
        scale = math.sqrt(search_area) / crop.prod().sqrt()
        return cls(pos, scale, size / scale, crop)

    @property
    def size(self) -> torch.Tensor:
        return self.base_size * self.scale

    def follow(self, probability: torch.Tensor, min_mass: float = 100.0,
               scale_change: tuple[float, float] = (0.95, 1.1)) -> None:
        """The next estimate from the merged probability map of the frame just segmented."""
        if probability.sum() < min_mass or probability.sum() <= 0:  # likely occluded: keep the estimate
            size = self.size
        else:
            self.pos, size = moments(probability)
        scale = torch.sqrt(size.prod() / self.base_size.prod())
        low, high = scale_change
        change = scale / self.scale
        if change < low:
            scale = self.scale * low
        elif change > high:
            scale = self.scale * high
        self.scale = scale

    def centred_pos(self, feature_size: tuple[int, int], filter_size: int) -> torch.Tensor:
        """The region's centre: half a feature cell off `pos` per axis where feature size + filter size is even
        (released get_centered_sample_pos), so the target sits on a cell centre of the target model's output."""
        features = torch.tensor([float(feature_size[0]), float(feature_size[1])])
        kernel = torch.tensor([float(filter_size), float(filter_size)])
        return self.pos + ((features + kernel) % 2) * self.scale * self.crop_size / (2 * features)


# --- patches -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Patch:
    """Where a crop comes from (released sample_patch): rows top:bottom and columns left:right (integers,
    possibly outside) of the frame subsampled by `step` from `offset` (y, x), resized to `output_size`;
    `coords` = step x (top-left, bottom-right) as floats, the frame box the released paste uses."""

    step: int
    offset: tuple[int, int]
    top: int
    left: int
    bottom: int
    right: int
    coords: tuple[float, float, float, float]
    output_size: tuple[int, int]


def place_patch(image_size: tuple[int, int], pos: torch.Tensor, sample_size: torch.Tensor,
                output_size: tuple[int, int], inside_major: bool = True) -> Patch:
    """sample_patch's placement of a region `sample_size` (h, w) centred at `pos` (y, x) of an image of
    `image_size`: border mode 'inside_major' (tracking) or 'replicate' (the first frame's expanded crop)."""
    output = torch.tensor([float(output_size[0]), float(output_size[1])])
    posl = pos.long().clone()
    if inside_major:
        image = torch.tensor([float(image_size[0]), float(image_size[1])])
        shrink = (sample_size.float() / image).min().clamp(min=1)
        sample_size = (sample_size.float() / shrink).long()
    step = int(max(int(torch.min(sample_size.float() / output).item() - 0.1), 1))
    size = sample_size.float() / step
    offset = (0, 0)
    height, width = image_size
    if step > 1:
        remainder = posl % step
        posl = (posl - remainder) / step
        offset = (int(remainder[0]), int(remainder[1]))
        height, width = -(-(height - offset[0]) // step), -(-(width - offset[1]) // step)
    sizel = torch.max(size.round(), torch.Tensor([2])).long()
    tl = posl - (sizel - 1) / 2
    br = posl + sizel / 2 + 1
    if inside_major:
        bounds = torch.LongTensor([height, width])
        shift = (-tl).clamp(0) - (br - bounds).clamp(0)  # inside where it fits
        tl, br = tl + shift, br + shift
        outside = ((-tl).clamp(0) + (br - bounds).clamp(0)) // 2  # centred where it does not
        shift = (-tl - outside) * (outside > 0).long()
        tl, br = tl + shift, br + shift
    coords = (step * torch.cat((tl, br))).float()
    return Patch(step, offset, int(tl[0].int()), int(tl[1].int()), int(br[0].int()), int(br[1].int()),
                 tuple(float(c) for c in coords), tuple(output_size))


def _window(x: torch.Tensor, top: int, left: int, bottom: int, right: int, replicate: bool) -> torch.Tensor:
    """x[..., top:bottom, left:right] of (N, C, H, W), beyond the edges replicated or zero (F.pad)."""
    height, width = x.shape[-2:]
    if not replicate:
        return F.pad(x, (-left, right - width, -top, bottom - height))
    inner = x[..., max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    if inner.numel() == 0:  # entirely outside: every pixel is the nearest edge pixel
        rows = torch.arange(top, bottom, device=x.device).clamp(0, height - 1)
        cols = torch.arange(left, right, device=x.device).clamp(0, width - 1)
        return x[..., rows, :][..., cols]
    pads = (max(-left, 0), max(right - width, 0), max(-top, 0), max(bottom - height, 0))
    return F.pad(inner, pads, mode="replicate") if any(pads) else inner


def crop(image: torch.Tensor, patch: Patch, mask: bool = False) -> torch.Tensor:
    """The patch of an image or mask (N, C, H, W) at the output size: bilinear with the border replicated,
    or (mask) nearest with zeros outside."""
    if patch.step > 1:
        image = image[..., patch.offset[0] :: patch.step, patch.offset[1] :: patch.step]
    out = _window(image, patch.top, patch.left, patch.bottom, patch.right, replicate=not mask)
    if tuple(out.shape[-2:]) == patch.output_size:
        return out.clone()
    return F.interpolate(out, list(patch.output_size), mode="nearest" if mask else "bilinear")


@dataclass(frozen=True)
class InitialSample:
    """The first frame's crop (released generate_init_samples): `patch` (twice the output size) resized,
    then the output-size window from (top, left) of it."""

    patch: Patch
    top: int
    left: int
    output_size: tuple[int, int]


def initial_sample(image_size: tuple[int, int], target: Target) -> InitialSample:
    crop_size = target.crop_size
    image = torch.tensor([float(image_size[0]), float(image_size[1])])
    sample_size = target.scale * crop_size
    shrink = (sample_size.float() / image).min().clamp(min=1)  # inside_major
    sample_size = sample_size.float() / shrink
    sample_scale = (sample_size / crop_size).prod().sqrt()
    tl = target.pos - (sample_size - 1) / 2
    br = target.pos + sample_size / 2 + 1
    shift = (-((-tl).clamp(0) - (br - image).clamp(0)) / sample_scale).long()
    expanded = (crop_size * INIT_EXPANSION).long()
    expanded += (expanded - crop_size.long()) % 2
    patch = place_patch(image_size, target.pos.round(), sample_scale * expanded.float(),
                        tuple(expanded.tolist()), inside_major=False)
    # augmentation.Identity.crop_to_output: pad by floor((output - expanded) / 2) + shift (negative: a crop)
    output = tuple(int(v) for v in crop_size.long())
    top = -(math.floor((output[0] - int(expanded[0])) / 2) + int(shift[0]))
    left = -(math.floor((output[1] - int(expanded[1])) / 2) + int(shift[1]))
    return InitialSample(patch, top, left, output)


def crop_initial(image: torch.Tensor, sample: InitialSample, mask: bool = False) -> torch.Tensor:
    expanded = crop(image, sample.patch, mask)
    height, width = sample.output_size
    return _window(expanded, sample.top, sample.left, sample.top + height, sample.left + width, replicate=True)


def paste(scores: torch.Tensor, patch: Patch, image_size: tuple[int, int], fill: float = OUTSIDE_LOGIT) -> torch.Tensor:
    """Crop-sized scores (h, w) back into a frame of image_size, `fill` outside (convert_scores_crop_to_image)."""
    coords = torch.tensor(patch.coords)
    output = torch.tensor([float(patch.output_size[0]), float(patch.output_size[1])])
    centre = 0.5 * (coords[:2] + coords[2:] - 1)
    scale = ((coords[2:] - coords[:2]) / output).prod().sqrt()
    resized = F.interpolate(scores[None, None].float(), scale_factor=scale.item(), mode="bilinear")[0, 0]
    out = torch.full(image_size, fill, dtype=resized.dtype)
    r1 = int(centre[0].item() - 0.5 * resized.shape[-2])
    c1 = int(centre[1].item() - 0.5 * resized.shape[-1])
    r2, c2 = r1 + resized.shape[-2], c1 + resized.shape[-1]
    pad_r1, pad_c1 = max(0, -r1), max(0, -c1)
    pad_r2, pad_c2 = max(r2 - image_size[0], 0), max(c2 - image_size[1], 0)
    out[r1 + pad_r1 : r2 - pad_r2, c1 + pad_c1 : c2 - pad_c2] = \
        resized[pad_r1 : resized.shape[0] - pad_r2, pad_c1 : resized.shape[1] - pad_c2]
    return out


# --- training's crops ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    cx: float
    cy: float
    width: float
    height: float


def box_mask(mask: np.ndarray) -> np.ndarray:
    """The mask's bounding box (pixel extent) rasterised, same shape and dtype (the box encoder's training
    input; the released training annotations use masks_to_bboxes, max - min + 1)."""
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
    """Training's crop region: 25x the box area with the crop's aspect, shrunk to fit the image's major
    direction if larger than it in both, shifted inside where it fits and centred where it does not."""
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
