"""FRTM first-frame augmentation: the initial sample set M0 of the target model.

Implements section 3.1 ("Initial sample generation") of Robinson et al., "Learning Fast and Robust Target
Models for Video Object Segmentation" (CVPR 2020), following implementation notes read from the official
code: the object is cut out, the hole is filled with Telea inpainting, and the object is pasted back under
a random affine warp and motion blur onto a (possibly zoomed and blurred) copy of the background. The
unmodified frame comes first; :func:`initial_sample_weights` gives it twice the weight of the others.

Decisions and deviations:

* OpenCV on the CPU (``cv2.inpaint``, ``cv2.warpAffine``, ``cv2.filter2D``, ``cv2.GaussianBlur``) instead of
  the official GPU/NPP warps: bicubic for the image and alpha, nearest neighbour for the label mask.
* One object per call: every nonzero mask pixel belongs to it. Multi-object frames call this per object.
* Inpainting mask: the object dilated by 2 px (5x5 ellipse), inpaint radius 1.
* Compositing uses premultiplied alpha, so neither the bicubic warp nor the blur darkens the object border.
  The label mask is the nearest-neighbour warp of the input mask and is never blurred.
* Motion blur: an anisotropic Gaussian with standard deviations (size, 0.1) px, rotated by the drawn angle
  and truncated at 3 sigma (the official code puts these numbers on the covariance diagonal instead).
* Skew 0.1 goes on both off-diagonal terms of the shear matrix. Positive rotation is counter-clockwise on
  screen, as in ``cv2.getRotationMatrix2D``.
* Scale clipping uses the unrotated object box: first raised so the smaller side is at least 10 px, then
  lowered so the box fits in the frame (fitting wins when both cannot hold).
* Centres: a jittered grid of about ``n_samples - 1`` cells, shuffled; centres and every parameter list
  are drawn without replacement and reshuffled when they run out.
* Rejection: a sample whose warped mask is empty or covers the whole frame is discarded and a fresh set of
  parameters and centre is drawn; after 20 failures for one sample a ValueError is raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Parameter lists from the implementation notes; repeated entries set the probabilities.
PARAMETER_LISTS: dict[str, tuple] = {
    "rotation": (5.0, -5.0, 10.0, -10.0, 20.0, -20.0, 30.0, -30.0, 45.0, -45.0),
    "flip": (True, False, False, False, False),
    "scale_drawn": (0.5, 0.7, 1.0, 1.5, 2.0, 2.5),
    "skew": (0.1, 0.0, 0.0),
    "blur_size": (0.0, 0.0, 0.0, 2.0),
    "blur_angle": (0.0, 45.0, 90.0, 135.0),
    "background_scale": (1.0, 1.0, 1.2),
    "background_blur": (0.0, 0.0, 1.0, 2.0, 5.0),
}
MIN_OBJECT_SIZE = 10  # px, smaller side of the warped object box
MAX_ATTEMPTS_PER_SAMPLE = 20
INPAINT_DILATION = 2  # px
INPAINT_RADIUS = 1  # px


@dataclass(frozen=True)
class AugmentedSample:
    """One sample of M0. params keys: centre (x, y px), scale (after clipping), scale_drawn, rotation (deg),
    flip, skew, blur_size, blur_angle (motion blur; size 0 = none), background_scale, background_blur."""

    image: np.ndarray  # HxWx3 uint8 RGB, same size as the input
    mask: np.ndarray  # HxW bool
    params: dict  # the drawn parameters; {} for the original


class _Cycler:
    """Draws without replacement from a shuffled list, reshuffling it once it runs out."""

    def __init__(self, values, rng: np.random.Generator):
        self._values = list(values)
        self._rng = rng
        self._queue: list = []

    def draw(self):
        if not self._queue:
            self._queue = [self._values[i] for i in self._rng.permutation(len(self._values))]
        return self._queue.pop()


def _validate(image, mask, n_samples) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an HxWx3 RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D HxW array, got shape {mask.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask size {mask.shape} does not match image size {image.shape[:2]}")
    mask = mask != 0
    if not mask.any():
        raise ValueError("mask is empty: the first frame has no object pixels")
    return image, mask


def _grid_centres(n: int, height: int, width: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Jittered centres (pixel x, y) of a grid with at least n cells shaped like the image."""
    nrows = max(1, round(math.sqrt(n * height / width)))
    ncols = math.ceil(n / nrows)
    centres = []
    for row in range(nrows):
        for col in range(ncols):
            u = (col + 0.5) / ncols + rng.normal(0.0, (0.5 / ncols) / 4)
            v = (row + 0.5) / nrows + rng.normal(0.0, (0.5 / nrows) / 4)
            centres.append((float(u * width - 0.5), float(v * height - 0.5)))
    return [centres[i] for i in rng.permutation(len(centres))]


def _clip_scale(scale: float, box_w: int, box_h: int, height: int, width: int) -> float:
    scale = max(scale, MIN_OBJECT_SIZE / min(box_w, box_h))
    return float(min(scale, width / box_w, height / box_h))


def _object_transform(box_centre, centre, rotation, scale, flip, skew) -> np.ndarray:
    """2x3 affine map T(centre) . skew . R . S(+-s, s) . T(-box_centre)."""
    angle = math.radians(rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    rotate = np.array([[cos, sin], [-sin, cos]])
    shear = np.array([[1.0, skew], [skew, 1.0]])
    stretch = np.diag([-scale if flip else scale, scale])
    linear = shear @ rotate @ stretch
    offset = np.asarray(centre) - linear @ np.asarray(box_centre)
    return np.hstack([linear, offset[:, None]])


def _motion_blur_kernel(size: float, angle: float) -> np.ndarray:
    """Gaussian with standard deviations (size, 0.1) px along axes rotated by angle degrees."""
    a = math.radians(angle)
    rotate = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    inverse_cov = np.linalg.inv(rotate @ np.diag([size**2, 0.1**2]) @ rotate.T)
    radius = math.ceil(3 * size)
    xx, yy = np.meshgrid(np.arange(-radius, radius + 1), np.arange(-radius, radius + 1))
    points = np.stack([xx, yy], axis=-1).astype(np.float64)
    kernel = np.exp(-0.5 * np.einsum("...i,ij,...j->...", points, inverse_cov, points))
    return (kernel / kernel.sum()).astype(np.float32)


def _inpaint_object(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    diameter = 2 * INPAINT_DILATION + 1
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))
    hole = cv2.dilate(mask.astype(np.uint8), element)
    return cv2.inpaint(image, hole, INPAINT_RADIUS, cv2.INPAINT_TELEA)


def _warp_background(background: np.ndarray, scale: float, sigma: float) -> np.ndarray:
    """Zoom about the image centre, then Gaussian blur; returns float32."""
    height, width = background.shape[:2]
    if scale != 1.0:
        cx, cy = (width - 1) / 2, (height - 1) / 2
        zoom = np.array([[scale, 0.0, (1 - scale) * cx], [0.0, scale, (1 - scale) * cy]])
        background = cv2.warpAffine(
            background, zoom, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
        )
    if sigma > 0:
        background = cv2.GaussianBlur(background, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)
    return background.astype(np.float32)


def _paste(background: np.ndarray, cutout: np.ndarray, transform: np.ndarray, blur: np.ndarray | None):
    """Warp the premultiplied RGBA cutout, optionally blur it, and composite it over the background."""
    height, width = background.shape[:2]
    warped = cv2.warpAffine(
        cutout, transform, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT
    )
    if blur is not None:
        warped = cv2.filter2D(warped, -1, blur, borderType=cv2.BORDER_CONSTANT)
    # Bicubic overshoot can leave values slightly outside the valid range.
    colour = np.clip(warped[..., :3], 0.0, 255.0)
    alpha = np.clip(warped[..., 3:], 0.0, 1.0)
    return np.clip(np.rint(colour + background * (1.0 - alpha)), 0, 255).astype(np.uint8)


def augment_first_frame(
    image: np.ndarray, mask: np.ndarray, n_samples: int, seed: int
) -> list[AugmentedSample]:
    """n_samples samples in total, the original first (so n_samples - 1 augmented ones).

    Deterministic per seed (numpy.random.default_rng(seed); the global RNG is never used). Raises
    ValueError for an empty mask, a mask/image size mismatch, a non-RGB image or n_samples < 1.
    """
    image, mask = _validate(image, mask, n_samples)
    samples = [AugmentedSample(image=image.copy(), mask=mask.copy(), params={})]
    n_augmented = int(n_samples) - 1
    if n_augmented == 0:
        return samples

    rng = np.random.default_rng(seed)
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    box_w, box_h = int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
    box_centre = ((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2)
    alpha = mask.astype(np.float32)[..., None]  # hard alpha
    cutout = np.concatenate([image.astype(np.float32) * alpha, alpha], axis=-1)
    background = _inpaint_object(image, mask)

    centres = _Cycler(_grid_centres(n_augmented, height, width, rng), rng)
    draws = {name: _Cycler(values, rng) for name, values in PARAMETER_LISTS.items()}
    mask_u8 = mask.astype(np.uint8)

    for index in range(1, n_samples):
        for _ in range(MAX_ATTEMPTS_PER_SAMPLE):
            drawn = {name: cycler.draw() for name, cycler in draws.items()}
            scale = _clip_scale(drawn["scale_drawn"], box_w, box_h, height, width)
            params = {"centre": centres.draw(), "scale": scale, **drawn}
            transform = _object_transform(
                box_centre,
                params["centre"],
                params["rotation"],
                params["scale"],
                params["flip"],
                params["skew"],
            )
            new_mask = cv2.warpAffine(
                mask_u8, transform, (width, height), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT
            ).astype(bool)
            if new_mask.any() and not new_mask.all():
                break
        else:
            raise ValueError(
                f"could not generate augmented sample {index}: the warped object was empty or covered the "
                f"whole frame in {MAX_ATTEMPTS_PER_SAMPLE} attempts"
            )
        blur = (
            _motion_blur_kernel(params["blur_size"], params["blur_angle"])
            if params["blur_size"] > 0
            else None
        )
        warped_background = _warp_background(
            background, params["background_scale"], params["background_blur"]
        )
        new_image = _paste(warped_background, cutout, transform, blur)
        samples.append(AugmentedSample(image=new_image, mask=new_mask, params=params))
    return samples


def initial_sample_weights(n_samples: int) -> np.ndarray:
    """Original weighs twice the others, normalised to sum to one: [2, 1, 1, ...] / (n_samples + 1)."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    weights = np.ones(int(n_samples), dtype=np.float64)
    weights[0] = 2.0
    return weights / weights.sum()
