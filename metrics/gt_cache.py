"""Decoded ground truth of a sequence, kept between evaluations.

Every method of the suite is scored against the same annotations, and decoding their PNGs costs more
than scoring them (DAVIS 2016's grayscale PNGs take ~1.3 ms each). So the first evaluation stores,
per scored frame, the label map and each object's boundary map and its dilation by the F-measure
disk, run-length encoded (a few KB a frame), and later evaluations read that instead.

The cache can never hide a change: its key covers every annotation file's name, size and
modification time, the mask convention, the dilation radius and the void handling; any difference
gives a new key (and a new decode). Delete the folder at any time; `--no-cache` bypasses it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vos_datasets.fileio import atomic_path

from .measures import _disk, boundary_map

CACHE_VERSION = 1
_LABELS, _BOUNDARY, _DILATED = 0, 1, 2


def default_cache_dir() -> Path:
    base = os.environ.get("VOS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vos-repro")
    return Path(base) / "ground-truth"


@dataclass
class GroundTruthFrame:
    """A scored frame's labels (void already removed) and, per object present, (boundary, dilated)."""

    ids: np.ndarray
    void: np.ndarray | None
    boundaries: dict[int, tuple[np.ndarray, np.ndarray]]


def build_frame(ids: np.ndarray, radius: int, ignore_void: bool, with_boundaries: bool = True,
                void_id: int = 255) -> GroundTruthFrame:
    """Labels without void, the void mask when it is ignored, and (optionally) each object's boundary
    map and its dilation, computed on a crop around the object (same result as full-frame)."""
    void_mask = ids == void_id
    has_void = bool(void_mask.any())
    void = void_mask if (ignore_void and has_void) else None
    if has_void:
        ids = np.where(void_mask, 0, ids).astype(np.uint8)
    boundaries: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if not with_boundaries:
        return GroundTruthFrame(ids, void, boundaries)
    kernel = _disk(radius)
    height, width = ids.shape
    for oid in np.flatnonzero(np.bincount(ids.ravel(), minlength=256)):
        if oid == 0:
            continue
        mask = ids == oid
        if void is not None:
            mask &= ~void
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        bmap, dilated = np.zeros_like(mask), np.zeros_like(mask)
        if w:
            # margin: 1 pixel for the boundary (it reaches one pixel above/left), radius for the dilation
            margin = radius + 1
            y0, x0 = max(y - margin, 0), max(x - margin, 0)
            y1, x1 = min(y + h + margin, height), min(x + w + margin, width)
            crop_b = boundary_map(mask[y0:y1, x0:x1])
            bmap[y0:y1, x0:x1] = crop_b
            dilated[y0:y1, x0:x1] = cv2.dilate(crop_b.view(np.uint8), kernel).view(bool)
        boundaries[int(oid)] = (bmap, dilated)
    return GroundTruthFrame(ids, void, boundaries)


def cache_key(paths: list[Path], convention: str, radius: int, ignore_void: bool) -> str:
    entries = []
    for path in paths:
        stat = path.stat()
        entries.append([path.name, stat.st_size, stat.st_mtime_ns])
    payload = json.dumps([CACHE_VERSION, str(paths[0].parent.resolve()), convention, radius, ignore_void, entries])
    return hashlib.sha1(payload.encode()).hexdigest()[:20]


def _encode(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = array.ravel().view(np.uint8)
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    return flat[starts], np.diff(np.r_[starts, flat.size]).astype(np.int32)


def save(path: Path, frames: list[GroundTruthFrame]) -> None:
    values, lengths, index = [], [], []  # index rows: frame, object id, kind, number of runs
    for number, frame in enumerate(frames):
        items = [(0, _LABELS, frame.ids)]
        if frame.void is not None:
            items.append((255, _LABELS, frame.void))
        for oid, (bmap, dilated) in frame.boundaries.items():
            items += [(oid, _BOUNDARY, bmap), (oid, _DILATED, dilated)]
        for oid, kind, array in items:
            v, n = _encode(array)
            values.append(v)
            lengths.append(n)
            index.append((number, oid, kind, len(v)))
    shape = frames[0].ids.shape if frames else (0, 0)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, values=np.concatenate(values) if values else np.zeros(0, np.uint8),
                 lengths=np.concatenate(lengths) if lengths else np.zeros(0, np.int32),
                 index=np.array(index, dtype=np.int64).reshape(-1, 4), shape=np.array(shape))


def load(path: Path) -> list[GroundTruthFrame]:
    with np.load(path) as data:
        values, lengths, index, shape = data["values"], data["lengths"], data["index"], tuple(data["shape"])
    entries: dict[int, dict] = {}
    offset = 0
    for number, oid, kind, runs in index.tolist():
        array = np.repeat(values[offset:offset + runs], lengths[offset:offset + runs]).reshape(shape)
        offset += runs
        entry = entries.setdefault(number, {"ids": None, "void": None, "boundary": {}, "dilated": {}})
        if kind == _LABELS and oid == 0:
            entry["ids"] = array
        elif kind == _LABELS:
            entry["void"] = array.view(bool)
        elif kind == _BOUNDARY:
            entry["boundary"][oid] = array.view(bool)
        else:
            entry["dilated"][oid] = array.view(bool)
    return [GroundTruthFrame(e["ids"], e["void"], {oid: (b, e["dilated"][oid]) for oid, b in e["boundary"].items()})
            for _, e in sorted(entries.items())]
