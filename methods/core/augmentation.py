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
* Blur, as the released ``ImageAugmenter._blur_kernel`` (tested against it, tests/test_official_frtm.py):
  an anisotropic Gaussian whose covariance is R diag(size, 0.1) R^T, so `size` is a VARIANCE (sigma =
  sqrt(size)) although the released docstring says sigma; half-width int(size / 2 + 0.5) made odd; applied
  as a correlation with zero padding (the released F.conv2d). The background gets the same kind of kernel
  with its own size and angle lists (released bg_aug_params), not an isotropic Gaussian.
* The object's affine map is the released ``get_transform`` (``object_transform``, tested against it):
  T = translate(location * size) . skew(k, k) . rotate . scale(+-s, s) . translate(-box centre), the box
  from ``centre_box`` (released center_bbox_from_mask); skew 0.1 on both off-diagonal terms; positive
  rotation counter-clockwise on screen. Scale: lowered so the unrotated box fits in the frame, then raised
  so its smaller side is at least 10 px (the minimum size wins when both cannot hold), as released. The
  background zoom is the same map with the whole frame as the box (released bg spec, limit_scale False).
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
    "background_blur": (0.0, 0.0, 1.0, 2.0, 5.0),  # variances, as blur_size
    "background_blur_angle": (0.0, 45.0, 90.0, 135.0),
}
MOTION_BLUR_MINOR = 0.1  # the released get_transform's second variance
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


def scale_matrix(sx: float, sy: float) -> np.ndarray:
    return np.array([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def rotate_matrix(angle: float) -> np.ndarray:
    """Rotation by `angle` radians, counter-clockwise on screen (released _rotate)."""
    ca, sa = np.cos(angle), np.sin(angle)
    return np.array([[ca, sa, 0], [-sa, ca, 0], [0, 0, 1]])


def translate_matrix(dx: float, dy: float) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]])


def skew_matrix(kx: float, ky: float) -> np.ndarray:
    return np.array([[1, kx, 0], [ky, 1, 0], [0, 0, 1]])


def centre_box(mask: np.ndarray) -> tuple[float, float, int, int]:
    """(centre x, centre y, width, height) of the mask's box, as the released center_bbox_from_mask:
    x = first column + width / 2 (so a box over columns 40..63 has its centre at 52)."""
    xs = np.nonzero(mask.any(axis=0))[0]
    ys = np.nonzero(mask.any(axis=1))[0]
    w, h = int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)
    return xs[0] + w / 2, ys[0] + h / 2, w, h


def object_transform(location, rotation: float, scale: float | str, flip: bool, skew: tuple[float, float],
                     box: tuple[float, float, float, float], image_size: tuple[int, int],
                     limit_scale: bool = True, min_size: int = MIN_OBJECT_SIZE) -> tuple[np.ndarray, float]:
    """The released get_transform: 3x3 map moving the box centre to `location` (fractions of width, height)
    under rotation (degrees), scale (mirrored if flip) and skew; returns it and the scale used."""
    box_x, box_y, box_w, box_h = box
    height, width = image_size
    if isinstance(scale, str):  # released: a string is the new box height as a fraction of the frame height
        scale = float(scale) * height / box_h
    if limit_scale:
        if scale * box_w > width or scale * box_h > height:  # fit in the frame
            scale = min(width / box_w, height / box_h)
        if scale * box_w < min_size or scale * box_h < min_size:  # at least min_size px (wins)
            scale = max(min_size / box_w, min_size / box_h)
    transform = (translate_matrix(location[0] * width, location[1] * height) @ skew_matrix(*skew)
                 @ rotate_matrix(rotation * np.pi / 180) @ scale_matrix(-scale if flip else scale, scale)
                 @ translate_matrix(-box_x, -box_y))
    return transform, float(scale)


def blur_kernel(sx: float, sy: float, rotation: np.ndarray) -> np.ndarray:
    """The released _blur_kernel: Gaussian with covariance R diag(sx, sy) R^T (sx, sy are variances),
    half-width int(max(sx, sy) / 2 + 0.5) made odd, normalised, float32."""
    covariance = rotation @ np.diag((sx, sy)) @ rotation.T
    half = int(np.max((sx, sy)) / 2 + 0.5)
    half = half + (half + 1) % 2  # odd
    r = np.arange(-half, half + 1)
    points = np.stack(np.meshgrid(r, r))
    quadratic = (points * np.tensordot(np.linalg.inv(covariance), points, axes=[1, 0])).sum(0)
    kernel = np.exp(-0.5 * quadratic)
    return (kernel / kernel.sum() * 1.0).astype(np.float32)


def motion_blur_kernel(size: float, angle: float) -> np.ndarray:
    """get_transform's blur: variance `size` along the direction `angle` degrees, 0.1 across."""
    return blur_kernel(size, MOTION_BLUR_MINOR, rotate_matrix(angle * np.pi / 180)[:2, :2])


def filter_image(image: np.ndarray, kernel: np.ndarray | None) -> np.ndarray:
    """Per-channel correlation with zero padding (the released filter_image's F.conv2d), float32."""
    image = image.astype(np.float32)
    if kernel is None or kernel.shape == (1, 1):
        return image
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_CONSTANT)


def _inpaint_object(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    diameter = 2 * INPAINT_DILATION + 1
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))
    hole = cv2.dilate(mask.astype(np.uint8), element)
    return cv2.inpaint(image, hole, INPAINT_RADIUS, cv2.INPAINT_TELEA)


def _warp_background(background: np.ndarray, scale: float, blur_size: float, blur_angle: float) -> np.ndarray:
    """Zoom about the frame centre (the released background spec: the whole frame as the box, location
    (0.5, 0.5), no scale limit), then the same anisotropic blur as the object; returns float32."""
    height, width = background.shape[:2]
    if scale != 1.0:
        zoom, _ = object_transform((0.5, 0.5), 0.0, scale, False, (0.0, 0.0), (width / 2, height / 2, width, height),
                                   (height, width), limit_scale=False)
        background = cv2.warpAffine(
            background, zoom[:2], (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
        )
    blur = motion_blur_kernel(blur_size, blur_angle) if blur_size > 0 else None
    return np.clip(filter_image(background, blur), 0.0, 255.0)


def _paste(background: np.ndarray, cutout: np.ndarray, transform: np.ndarray, blur: np.ndarray | None):
    """Warp the premultiplied RGBA cutout, optionally blur it, and composite it over the background."""
    height, width = background.shape[:2]
    warped = cv2.warpAffine(
        cutout, transform, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT
    )
    warped = filter_image(warped, blur)
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
    box = centre_box(mask)
    alpha = mask.astype(np.float32)[..., None]  # hard alpha
    cutout = np.concatenate([image.astype(np.float32) * alpha, alpha], axis=-1)
    background = _inpaint_object(image, mask)

    centres = _Cycler(_grid_centres(n_augmented, height, width, rng), rng)
    draws = {name: _Cycler(values, rng) for name, values in PARAMETER_LISTS.items()}
    mask_u8 = mask.astype(np.uint8)

    for index in range(1, n_samples):
        for _ in range(MAX_ATTEMPTS_PER_SAMPLE):
            drawn = {name: cycler.draw() for name, cycler in draws.items()}
            centre = centres.draw()
            location = ((centre[0] + 0.5) / width, (centre[1] + 0.5) / height)  # pixel centres -> fractions
            transform, scale = object_transform(location, drawn["rotation"], drawn["scale_drawn"], drawn["flip"],
                                                (drawn["skew"], drawn["skew"]), box, (height, width))
            transform = transform[:2]
            params = {"centre": centre, "scale": scale, **drawn}
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
        blur = motion_blur_kernel(params["blur_size"], params["blur_angle"]) if params["blur_size"] > 0 else None
        warped_background = _warp_background(
            background, params["background_scale"], params["background_blur"], params["background_blur_angle"]
        )
        new_image = _paste(warped_background, cutout, transform, blur)
        samples.append(AugmentedSample(image=new_image, mask=new_mask, params=params))
    return samples


def initial_sample_weights(n_samples: int) -> np.ndarray:
    """Original weighs twice the others, normalised to sum to one: [2, 1, 1, ...] / (n_samples + 1)."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    # computed as the released Memory.initialize does (1/K each, 2/K first, normalised): the same values
    # to the last bit, which the chaotic CG of the target model needs to reproduce the released numbers
    weights = np.full(int(n_samples), 1.0 / n_samples, dtype=np.float64)
    weights[0] = 2.0 / n_samples
    return weights / weights.sum()
