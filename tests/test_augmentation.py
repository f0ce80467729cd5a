"""Tests of the FRTM first-frame augmentation (methods/core/augmentation.py) on a synthetic frame."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from methods.core.augmentation import (
    PARAMETER_LISTS,
    AugmentedSample,
    augment_first_frame,
    initial_sample_weights,
)

HEIGHT, WIDTH = 96, 128
BOX = (slice(30, 54), slice(40, 64))  # the red square: rows 30..53, cols 40..63
RED = (255, 0, 0)


def gradient(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth linear background; its blue channel is >= 100 everywhere, so it is never near-red."""
    return np.stack([20 + 1.5 * x, 30 + 1.2 * y, 100 + 0.5 * x + 0.5 * y], axis=-1)


def near_red(image: np.ndarray) -> np.ndarray:
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return (r >= 180) & (g <= 90) & (b <= 90)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), element).astype(bool)


@pytest.fixture(scope="module")
def frame() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    image = np.rint(gradient(xx, yy)).astype(np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[BOX] = True
    image[mask] = RED
    return image, mask


@pytest.fixture(scope="module")
def samples(frame) -> list[AugmentedSample]:
    image, mask = frame
    return augment_first_frame(image, mask, n_samples=11, seed=3)


def test_original_first_and_shapes(frame, samples):
    image, mask = frame
    assert len(samples) == 11
    assert np.array_equal(samples[0].image, image)
    assert np.array_equal(samples[0].mask, mask)
    assert samples[0].params == {}
    for sample in samples:
        assert sample.image.shape == image.shape and sample.image.dtype == np.uint8
        assert sample.mask.shape == mask.shape and sample.mask.dtype == bool
    assert all(sample.params for sample in samples[1:])


def test_single_sample_is_the_original(frame):
    image, mask = frame
    (only,) = augment_first_frame(image, mask, n_samples=1, seed=0)
    assert np.array_equal(only.image, image) and np.array_equal(only.mask, mask)


def test_deterministic_per_seed(frame, samples):
    image, mask = frame
    again = augment_first_frame(image, mask, n_samples=11, seed=3)
    for a, b in zip(samples, again, strict=True):
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.mask, b.mask)
        assert a.params == b.params
    other = augment_first_frame(image, mask, n_samples=11, seed=4)
    assert any(not np.array_equal(a.mask, b.mask) for a, b in zip(samples[1:], other[1:], strict=True))


def test_parameters_drawn_without_replacement(samples):
    augmented = [sample.params for sample in samples[1:]]  # 10 samples: one pass through the 10 rotations
    assert sorted(p["rotation"] for p in augmented) == sorted(PARAMETER_LISTS["rotation"])
    assert sum(p["flip"] for p in augmented) == 2  # two passes through [True, False x 4]
    for p in augmented:
        for name, values in PARAMETER_LISTS.items():
            assert p[name] in values, name


def test_masks_placed_and_sized_by_the_warp(samples):
    for sample in samples[1:]:
        p = sample.params
        assert sample.mask.any() and not sample.mask.all()
        assert p["scale"] == p["scale_drawn"]  # a 24 px square needs no clipping in a 96x128 frame
        if sample.mask[[0, -1], :].any() or sample.mask[:, [0, -1]].any():
            continue  # clipped by the frame: area and centroid do not apply
        ys, xs = np.nonzero(sample.mask)
        assert abs(xs.mean() - p["centre"][0]) < 1.5 and abs(ys.mean() - p["centre"][1]) < 1.5
        expected_area = 24 * 24 * p["scale"] ** 2 * (1 - p["skew"] ** 2)  # det of the affine map
        assert abs(sample.mask.sum() - expected_area) < 0.2 * expected_area


def test_background_away_from_objects_is_the_warped_background(samples):
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    cx, cy = (WIDTH - 1) / 2, (HEIGHT - 1) / 2
    for sample in samples[1:]:
        p = sample.params
        zoom, sigma = p["background_scale"], p["background_blur"]
        # A Gaussian blur leaves a linear gradient unchanged, so only the zoom about the centre matters.
        src_x, src_y = cx + (xx - cx) / zoom, cy + (yy - cy) / zoom
        expected = gradient(src_x, src_y)
        margin = 2 + math.ceil(3 * sigma) + 4  # inpaint dilation + background blur + slack
        near_hole = (
            (src_x > BOX[1].start - 1 - margin)
            & (src_x < BOX[1].stop + margin)
            & (src_y > BOX[0].start - 1 - margin)
            & (src_y < BOX[0].stop + margin)
        )
        near_object = dilate(sample.mask, math.ceil(3 * p["blur_size"]) + 3)
        border = math.ceil(3 * sigma) + 2  # reflected borders are not linear
        checked = ~near_hole & ~near_object
        checked[:border] = checked[-border:] = False
        checked[:, :border] = checked[:, -border:] = False
        assert checked.sum() > 500
        error = np.abs(sample.image.astype(np.float64) - expected)[checked]
        assert error.max() <= 3.0, p


def test_inpainted_background_has_no_object_colour(samples):
    checked_hole_pixels = 0
    for sample in samples[1:]:
        p = sample.params
        away = ~dilate(sample.mask, math.ceil(3 * p["blur_size"]) + 2)
        assert not near_red(sample.image)[away].any(), p
        # The hole, moved by the background zoom, is part of what was checked.
        hole = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
        hole[BOX] = 1
        zoom = p["background_scale"]
        cx, cy = (WIDTH - 1) / 2, (HEIGHT - 1) / 2
        warp = np.array([[zoom, 0, (1 - zoom) * cx], [0, zoom, (1 - zoom) * cy]])
        moved = cv2.warpAffine(hole, warp, (WIDTH, HEIGHT), flags=cv2.INTER_NEAREST).astype(bool)
        checked_hole_pixels += int((moved & away).sum())
    assert checked_hole_pixels > 24 * 24 * 3


@pytest.mark.parametrize(
    ("box", "low", "high"), [((slice(8, 88), slice(14, 114)), 0.0, 1.2), ((slice(40, 44),) * 2, 2.5, 99)]
)
def test_scale_clipped_to_fit_and_to_min_size(box, low, high):
    image = np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[box] = True  # 80x100 px (fits at scale <= 1.2) or 4x4 px (>= 10 px needs scale >= 2.5)
    for sample in augment_first_frame(image, mask, n_samples=8, seed=1)[1:]:
        assert low - 1e-9 <= sample.params["scale"] <= high + 1e-9, sample.params


def test_background_blur_smooths_a_textured_background():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[BOX] = True
    for sample in augment_first_frame(image, mask, n_samples=11, seed=3)[1:]:
        p = sample.params
        away = ~dilate(sample.mask, math.ceil(3 * p["blur_size"]) + 3)
        detail = np.abs(cv2.Laplacian(sample.image.astype(np.float32), cv2.CV_32F)).sum(axis=-1)[away].mean()
        original = np.abs(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F)).sum(axis=-1)[away].mean()
        if p["background_blur"] >= 1:
            assert detail < 0.5 * original, p
        elif p["background_scale"] == 1:
            assert detail > 0.8 * original, p


def test_pasted_object_is_the_object_colour(samples):
    for sample in samples[1:]:
        inner = cv2.erode(sample.mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert inner.any()
        assert near_red(sample.image)[inner].mean() >= 0.9, sample.params
        assert near_red(sample.image)[sample.mask].mean() >= 0.6, sample.params


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty", "mask is empty"),
        ("size", "does not match"),
        ("gray", "RGB"),
        ("n_samples", "n_samples"),
    ],
)
def test_bad_inputs_raise(frame, case, message):
    image, mask = frame
    kwargs = {"image": image, "mask": mask, "n_samples": 4, "seed": 0}
    if case == "empty":
        kwargs["mask"] = np.zeros_like(mask)
    elif case == "size":
        kwargs["mask"] = mask[:-1]
    elif case == "gray":
        kwargs["image"] = image[..., 0]
    else:
        kwargs["n_samples"] = 0
    with pytest.raises(ValueError, match=message):
        augment_first_frame(**kwargs)


def test_initial_sample_weights():
    weights = initial_sample_weights(5)
    assert weights.shape == (5,)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] == pytest.approx(2 * weights[1])
    assert np.allclose(weights[1:], weights[1])
    assert initial_sample_weights(1) == pytest.approx([1.0])
    with pytest.raises(ValueError, match="n_samples"):
        initial_sample_weights(0)


def test_gives_up_with_a_clear_error(frame, monkeypatch):
    import methods.core.augmentation as augmentation

    monkeypatch.setattr(augmentation, "MAX_ATTEMPTS_PER_SAMPLE", 0)
    image, mask = frame
    with pytest.raises(ValueError, match="could not generate augmented sample 1"):
        augment_first_frame(image, mask, n_samples=3, seed=0)
