"""A stand-in for DAVIS 2017 val with scribbles, built from the shared folder (../shared, env VOS_SHARED).

The interactive track needs DAVIS 2017 val with its scribbles (DAVIS-2017-scribbles-trainval.zip), which a
plain checkout does not have. Two stand-ins give the protocol real frames and real object masks:

- single: DAVIS 2016 val, real frames and the real single-object ground truth (255 -> object 1);
- multi: the DAVIS 2016 frames of the sequences that data/davis2017-val-osvos covers, with those OSVOS result
  masks (up to 5 objects) as stand-in ground truth.

The first scribble of every sequence (Scribbles/<seq>/001.json, the only one) is drawn by the package's robot
(the session's own parameters, its tie-break pinned: interactive.compat) on an empty prediction: "stand-in
scribbles", not the human scribbles of the benchmark. standin.json says so, and every output of a session on
the stand-in carries its label. The build is deterministic: two builds are byte-identical (the robot's
timestamps are set to 0).

    python -m interactive standin --shared ../shared --kind single --sequences blackswan,dog --out ROOT
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from vos_datasets.davis import read_image_set
from vos_datasets.fileio import atomic_directory
from vos_datasets.masks import read_label_png, write_label_png

from .compat import load_davisinteractive
from .dataset import METADATA_FILE, RESOLUTION, InteractiveDataError

KINDS = ("single", "multi")
DAVIS2016 = Path("data/davis2016")
OSVOS = Path("data/davis2017-val-osvos")
LABEL = "stand-in"
SCRIBBLES_LABEL = "stand-in scribbles"


def available_sequences(shared: Path, kind: str) -> list[str]:
    """The sequences a stand-in of `kind` can hold, in DAVIS 2016 val order."""
    val = read_image_set(shared / DAVIS2016 / "ImageSets/480p/val.txt")
    frames = shared / DAVIS2016 / "JPEGImages" / RESOLUTION
    if kind == "single":
        return [name for name in val if (frames / name).is_dir()]
    if kind == "multi":
        return [name for name in val if (frames / name).is_dir() and (shared / OSVOS / name).is_dir()]
    raise InteractiveDataError(f"unknown stand-in kind {kind!r}; choose one of {KINDS}")


def _sources(shared: Path, kind: str, name: str) -> tuple[list[Path], list[Path], str]:
    frames = sorted((shared / DAVIS2016 / "JPEGImages" / RESOLUTION / name).glob("*.jpg"))
    if kind == "single":
        masks, convention = sorted((shared / DAVIS2016 / "Annotations" / RESOLUTION / name).glob("*.png")), "davis2016"
    else:
        masks, convention = sorted((shared / OSVOS / name).glob("*.png")), "davis2017"
    if not frames or [p.stem for p in frames] != [p.stem for p in masks]:
        raise InteractiveDataError(f"{shared}: {name}: the frames ({len(frames)}) and masks ({len(masks)}) of "
                                   "the stand-in's sources do not pair up; check the shared folder")
    return frames, masks, convention


def _resized(image: Image.Image, scale: float, resample) -> Image.Image:
    if scale == 1.0:
        return image
    width, height = image.size
    return image.resize((max(1, round(width * scale)), max(1, round(height * scale))), resample)


def _empty_prediction_scribble(package, name: str, masks: np.ndarray, num_objects: int) -> dict:
    """The robot's scribble on an empty prediction (it picks the worst frame itself: the first frame where
    every object is present), with its wall-clock timestamps set to 0 so that builds are identical."""
    robot = package.InteractiveScribblesRobot(**package.ROBOT_DEFAULT_PARAMETERS)
    scribble = robot.interact(name, np.zeros_like(masks), masks, nb_objects=num_objects)
    for frame in scribble["scribbles"]:
        for line in frame:
            line["start_time"] = line["end_time"] = 0
    if not any(scribble["scribbles"]):
        raise InteractiveDataError(f"{name}: the robot drew no scribble on the empty prediction (objects too "
                                   "small at this scale?); build without --scale or leave the sequence out")
    return {"sequence": name, "scribbles": scribble["scribbles"], "label": SCRIBBLES_LABEL}


def build_standin(shared: str | Path, kind: str, out: str | Path, sequences: list[str] | None = None,
                  max_frames: int | None = None, scale: float = 1.0, progress: bool = False) -> Path:
    """Write a DAVIS-layout root (JPEGImages/480p, Annotations/480p, Scribbles/<seq>/001.json,
    ImageSets/2017/val.txt) and its metadata (standin.json) to `out`, atomically. `max_frames` (the first N
    frames) and `scale` make small stand-ins for tests; both are recorded in the metadata."""
    shared, out = Path(shared), Path(out)
    if not (shared / DAVIS2016).is_dir():
        raise InteractiveDataError(f"{shared / DAVIS2016}: not found; pass --shared (or set VOS_SHARED) to the "
                                   "shared folder holding data/davis2016")
    available = available_sequences(shared, kind)
    names = list(sequences) if sequences else available
    unknown = [name for name in names if name not in available]
    if unknown:
        raise InteractiveDataError(f"{shared}: no {kind} stand-in for {unknown}; available: {available}")
    package = load_davisinteractive()
    entries = {}
    with atomic_directory(out) as tmp:
        for name in names:
            frames, masks, convention = _sources(shared, kind, name)
            frames, masks = frames[:max_frames], masks[:max_frames]
            stack = []
            for index, (frame, mask) in enumerate(zip(frames, masks, strict=True)):
                target = tmp / "JPEGImages" / RESOLUTION / name / f"{index:05d}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                if scale == 1.0:
                    shutil.copyfile(frame, target)
                else:
                    with Image.open(frame) as image:
                        _resized(image.convert("RGB"), scale, Image.Resampling.BILINEAR).save(target, quality=90)
                ids = read_label_png(mask, convention)
                ids = np.asarray(_resized(Image.fromarray(ids), scale, Image.Resampling.NEAREST))
                write_label_png(tmp / "Annotations" / RESOLUTION / name / f"{index:05d}.png", ids)
                stack.append(ids)
            ground_truth = np.stack(stack).astype(np.int64)
            num_objects = int(ground_truth[ground_truth < 255].max())
            scribble = _empty_prediction_scribble(package, name, ground_truth, num_objects)
            scribble_file = tmp / "Scribbles" / name / "001.json"
            scribble_file.parent.mkdir(parents=True)
            scribble_file.write_text(json.dumps(scribble, indent=1) + "\n")
            height, width = ground_truth.shape[1:]
            entries[name] = {"name": name, "set": "val", "num_frames": len(stack), "num_objects": num_objects,
                             "num_scribbles": 1, "image_size": [width, height]}
            if progress:
                print(f"{name}: {len(stack)} frames, {num_objects} object(s), {SCRIBBLES_LABEL}", flush=True)
        (tmp / "ImageSets/2017").mkdir(parents=True)
        (tmp / "ImageSets/2017/val.txt").write_text("".join(f"{name}\n" for name in names))
        metadata = {
            "label": LABEL,
            "kind": kind,
            "description": ("single: DAVIS 2016 val frames and ground truth (255 -> 1)" if kind == "single" else
                            "multi: DAVIS 2016 frames with the OSVOS result masks of DAVIS 2017 val as stand-in "
                            "ground truth"),
            "scribbles": f"{SCRIBBLES_LABEL}: 001.json drawn by the pinned robot of davisinteractive "
                         f"{package.version} on an empty prediction",
            "robot_parameters": package.ROBOT_DEFAULT_PARAMETERS,
            "max_frames": max_frames,
            "scale": scale,
            "sequences": entries,
        }
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=1) + "\n")
    return out
