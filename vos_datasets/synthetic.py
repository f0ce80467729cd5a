"""The embedded synthetic dataset, generated on the fly in DAVIS 2017 layout.

Each video shows textured objects on a textured, panning background, with what makes VOS hard:
motion, scale and rotation change, appearance drift, occlusion (objects cross, and an unannotated
occluder sweeps through), a distractor that is a copy of a target (same shape and texture, id 0),
several objects, and in some videos an object that enters mid-video. Deterministic per seed; the
default size (10 videos of 24 frames at 240x432) is generated in a few seconds.

Objects that enter mid-video are listed, YouTube-VOS style, in <root>/meta.json with the frame where
their mask is given; every annotation PNG holds the full ground truth of its frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

from .fileio import atomic_directory
from .masks import write_label_png

DEFAULTS = {"n_train": 6, "n_val": 4, "n_frames": 24, "height": 240, "width": 432}
MIN_FIRST_MASK_PIXELS = 150


@dataclass
class _Sprite:
    """A textured shape and how it moves; label 0 for distractors and occluders."""

    label: int
    texture_a: np.ndarray  # h x w x 3 float32, appearance at the start
    texture_b: np.ndarray  # appearance it drifts towards
    mask: np.ndarray  # h x w uint8
    start: np.ndarray  # centre (x, y) at frame 0
    velocity: np.ndarray  # pixels per frame
    scale0: float
    scale_rate: float  # relative change per frame
    angle0: float
    angle_rate: float  # degrees per frame
    drift: float  # fraction of texture_b reached by the last frame
    enter_frame: int = 0

    def transform(self, t: int, n_frames: int, size: tuple[int, int]) -> np.ndarray:
        height, width = size
        steps = t - self.enter_frame
        centre = self.start + self.velocity * steps
        # Bounce off the borders (except while entering) so targets stay in view.
        for axis, limit in ((0, width), (1, height)):
            if self.enter_frame == 0 or steps > 6:
                period = 2 * limit
                pos = centre[axis] % period
                centre[axis] = pos if pos < limit else period - pos
        scale = self.scale0 * (1 + self.scale_rate) ** steps
        angle = self.angle0 + self.angle_rate * steps
        h, w = self.mask.shape
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        matrix[:, 2] += centre - np.array([w / 2, h / 2])
        return matrix

    def appearance(self, t: int, n_frames: int) -> np.ndarray:
        alpha = self.drift * t / max(1, n_frames - 1)
        return (1 - alpha) * self.texture_a + alpha * self.texture_b


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Coloured stripes and blobs: enough structure for a backbone to latch onto."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w, 3), np.float32)
    base = rng.uniform(0.1, 0.9, 3)
    for _ in range(3):
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(0.05, 0.35)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
        out += wave[..., None] * rng.uniform(-0.25, 0.25, 3)
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), rng.uniform(1.0, 3.0))
    out += noise[..., None] * rng.uniform(-0.3, 0.3, 3)
    return np.clip(out + base, 0, 1)


def _shape_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An ellipse or a wobbly star filling most of an h x w box."""
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 1, -1)
    else:
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        radius = 0.5 + 0.45 * rng.random(24)
        radius = np.convolve(np.r_[radius[-1], radius, radius[0]], np.ones(3) / 3, "valid")
        pts = np.stack([w / 2 + radius * np.cos(angles) * (w / 2 - 1), h / 2 + radius * np.sin(angles) * (h / 2 - 1)], 1)
        cv2.fillPoly(mask, [pts.round().astype(np.int32)], 1)
    return mask


def _sprite(rng, label, size, enter_frame=0, like: _Sprite | None = None) -> _Sprite:
    height, width = size
    if like is not None:  # distractor: same look as a target, elsewhere, moving differently
        texture_a, texture_b, mask = like.texture_a, like.texture_b, like.mask
    else:
        h = int(rng.integers(height // 6, height // 3))
        w = int(rng.integers(width // 10, width // 4))
        texture_a, texture_b, mask = _texture(rng, h, w), _texture(rng, h, w), _shape_mask(rng, h, w)
    speed = rng.uniform(1.5, 4.0)
    direction = rng.uniform(0, 2 * np.pi)
    velocity = speed * np.array([np.cos(direction), np.sin(direction)])
    start = np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.25, 0.75) * height])
    if enter_frame > 0:  # start just outside the left or right border, moving inwards
        side = rng.integers(2)
        start = np.array([-mask.shape[1] * 0.5 if side == 0 else width + mask.shape[1] * 0.5, height * rng.uniform(0.3, 0.7)])
        velocity = np.array([rng.uniform(6, 9) * (1 if side == 0 else -1), rng.uniform(-1, 1)])
    return _Sprite(
        label=label,
        texture_a=texture_a,
        texture_b=texture_b,
        mask=mask,
        start=start,
        velocity=velocity,
        scale0=rng.uniform(0.8, 1.2),
        scale_rate=rng.uniform(-0.015, 0.02),
        angle0=rng.uniform(-20, 20),
        angle_rate=rng.uniform(-2, 2),
        drift=rng.uniform(0.3, 0.6) if like is None else like.drift,
        enter_frame=enter_frame,
    )


def _occluder(rng, size) -> _Sprite:
    """An unannotated bar that sweeps across the frame, hiding whatever it passes."""
    height, width = size
    h, w = height, int(width * rng.uniform(0.06, 0.1))
    texture = _texture(rng, h, w)
    return _Sprite(0, texture, texture, np.ones((h, w), np.uint8), np.array([-w, height / 2]),
                   np.array([width / 14, 0.0]), 1.0, 0.0, rng.uniform(-10, 10), 0.0, 0.0)


def render_sequence(seed: int, index: int, n_frames: int, size: tuple[int, int], with_entering: bool):
    """Frames (RGB uint8) and label maps of one video, plus each object's first frame index."""
    rng = np.random.default_rng([seed, index])
    height, width = size
    n_targets = int(rng.integers(2, 4))
    targets = [_sprite(rng, label, size) for label in range(1, n_targets + 1)]
    if with_entering:
        targets.append(_sprite(rng, n_targets + 1, size, enter_frame=int(n_frames // 3)))
    distractor = _sprite(rng, 0, size, like=targets[0])
    occluder = _occluder(rng, size)
    # Painter's order: background, distractor, targets (random depth order), occluder on top.
    order = [distractor, *rng.permutation(np.array(targets, dtype=object)).tolist(), occluder]

    pad = 64
    background = _texture(rng, height + 2 * pad, width + 2 * pad)
    pan = rng.uniform(-1.5, 1.5, 2)

    frames, labels = [], []
    for t in range(n_frames):
        ox, oy = np.clip(pad + pan * t, 0, 2 * pad).astype(int)
        image = background[oy : oy + height, ox : ox + width].copy()
        label = np.zeros((height, width), np.uint8)
        for sprite in order:
            if t < sprite.enter_frame:
                continue
            matrix = sprite.transform(t, n_frames, size)
            mask = cv2.warpAffine(sprite.mask, matrix, (width, height), flags=cv2.INTER_NEAREST) > 0
            texture = cv2.warpAffine(sprite.appearance(t, n_frames), matrix, (width, height), flags=cv2.INTER_LINEAR)
            image[mask] = texture[mask]
            label[mask] = sprite.label
        image += rng.normal(0, 0.015, image.shape).astype(np.float32)
        frames.append((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
        labels.append(label)

    first_frames: dict[int, int] = {}
    for target in targets:
        for t, label in enumerate(labels):
            if (label == target.label).sum() >= MIN_FIRST_MASK_PIXELS:
                first_frames[target.label] = t
                break
    # An object is annotated from the frame where its mask is given (>= MIN_FIRST_MASK_PIXELS visible),
    # as in YouTube-VOS; one never seen well enough is dropped from the annotations altogether.
    for target in targets:
        start = first_frames.get(target.label, n_frames)
        for label in labels[:start]:
            label[label == target.label] = 0
    return frames, labels, first_frames


# Attributes written to db_info.yml (DAVIS layout), measured on the ground truth of each video; DAVIS's codes
# where the meaning matches, with DAVIS's thresholds scaled to the frame height. ENT is ours.
ATTRIBUTES = {
    "FM": "fast motion: an object's centroid moves more than 20 px per frame at 480p on average",
    "SV": "scale variation: an object's bounding box area varies by more than a factor of 2",
    "OCC": "occlusion (a proxy): in some frame an object shows less than half its median visible area",
    "ENT": "an object enters mid-video (given after the first frame)",
}


def sequence_attributes(labels: list[np.ndarray], first_frames: dict[int, int]) -> list[str]:
    """The ATTRIBUTES a video has, from its label maps and each object's first (given) frame."""
    found = set()
    height = labels[0].shape[0]
    for oid, start in first_frames.items():
        if start > 0:
            found.add("ENT")
        centroids, boxes, areas = [], [], []
        for label in labels[start:]:
            ys, xs = np.nonzero(label == oid)
            areas.append(len(ys))
            if len(ys):
                centroids.append((xs.mean(), ys.mean()))
                boxes.append((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
        if len(centroids) > 1:
            steps = np.linalg.norm(np.diff(np.array(centroids), axis=0), axis=1)
            if steps.mean() > 20 * height / 480:
                found.add("FM")
        if boxes and min(boxes) < 0.5 * max(boxes):
            found.add("SV")
        if areas and min(areas) < 0.5 * np.median(areas):
            found.add("OCC")
    return [code for code in ATTRIBUTES if code in found]


def generate(root: str | Path, seed: int = 0, n_train: int = DEFAULTS["n_train"], n_val: int = DEFAULTS["n_val"],
             n_frames: int = DEFAULTS["n_frames"], height: int = DEFAULTS["height"], width: int = DEFAULTS["width"]) -> Path:
    """Write the embedded dataset to `root` (atomically: the folder appears complete or not at all)."""
    root = Path(root)
    if n_frames < 6:
        raise ValueError(f"n_frames must be at least 6, got {n_frames}")
    if height < 64 or width < 64:
        raise ValueError(f"height and width must be at least 64 pixels, got {height}x{width}")
    meta: dict = {"generator": "vos_datasets.synthetic", "seed": seed, "size": [height, width], "videos": {}}
    splits = {"train": [], "val": []}
    info = {"attributes": list(ATTRIBUTES), "definitions": ATTRIBUTES, "sets": ["train", "val"], "sequences": []}
    with atomic_directory(root) as tmp:
        for index in range(n_train + n_val):
            split = "train" if index < n_train else "val"
            name = f"synth-{split}-{index if split == 'train' else index - n_train:02d}"
            # Every other video has an object entering mid-video (all val videos with odd index too).
            frames, labels, first = render_sequence(seed, index, n_frames, (height, width), with_entering=index % 2 == 1)
            image_dir = tmp / "JPEGImages" / "480p" / name
            mask_dir = tmp / "Annotations" / "480p" / name
            image_dir.mkdir(parents=True)
            for t, (frame, label) in enumerate(zip(frames, labels, strict=True)):
                Image.fromarray(frame).save(image_dir / f"{t:05d}.jpg", quality=92)
                write_label_png(mask_dir / f"{t:05d}.png", label)
            meta["videos"][name] = {
                "objects": {
                    str(oid): {"frames": [f"{t:05d}" for t in range(start, n_frames) if (labels[t] == oid).any()]}
                    for oid, start in sorted(first.items())
                }
            }
            splits[split].append(name)
            info["sequences"].append({"name": name, "attributes": sequence_attributes(labels, first),
                                      "num_frames": n_frames, "set": split})
        for split, names in splits.items():
            sets = tmp / "ImageSets" / "2017"
            sets.mkdir(parents=True, exist_ok=True)
            (sets / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        (tmp / "db_info.yml").write_text(yaml.safe_dump(info, sort_keys=False))
    return root


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vos_datasets.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=value)
    args = parser.parse_args()
    generate(args.root, args.seed, args.n_train, args.n_val, args.n_frames, args.height, args.width)
    print(f"wrote the embedded dataset to {args.root}")
