"""Decoded ground truth of a sequence, kept between evaluations.

Every method of the suite is scored against the same annotations, and decoding their PNGs costs more
than scoring them (DAVIS 2016's grayscale PNGs take ~1.3 ms each). So the first evaluation stores,
per scored frame, the label map and each object's boundary map and its dilation by the F-measure
disk, run-length encoded (a few KB a frame), and later evaluations read that instead.

The cache can never hide a change: its key is a hash of every needed annotation file's name and
*content* (BLAKE2b of the bytes, not the size or modification time, which an edit can keep), the mask
convention, the boundary threshold, the void handling and the cache format. Reading and hashing cost
~11 us per 480p annotation more than the stat of a size/mtime key (all 2218 DAVIS 2016 annotations:
49 ms against 25 ms, measured on a busy 2-core machine), against ~1.3 ms to decode one. An entry is only
stored if the files hashed the same before and after they were decoded.

Entries are written durably (fsync before the rename). An entry that cannot be read back (empty,
truncated, not a zip, inconsistent) is discarded with a one-line note and the sequence is decoded
again. Delete the folder at any time; `--no-cache` bypasses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vos_datasets.fileio import atomic_path

from .measures import boundary_map, dilate_disk, present_labels

CACHE_VERSION = 2  # 2: content-hash keys; conventions decided per sequence
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
    height, width = ids.shape
    for oid in present_labels(ids):
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
            dilated[y0:y1, x0:x1] = dilate_disk(crop_b.view(np.uint8), radius).view(bool)
        boundaries[int(oid)] = (bmap, dilated)
    return GroundTruthFrame(ids, void, boundaries)


def cache_key(names: list[str], contents: list[bytes], convention: str, bound_th: float,
              ignore_void: bool) -> str:
    """The key of a sequence's entry: a hash of each needed annotation's name and bytes, and the settings
    that change the decoded result. Equal content gives the same key wherever the files lie."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(json.dumps([CACHE_VERSION, convention, bound_th, ignore_void, len(names)]).encode())
    for name, data in zip(names, contents, strict=True):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.blake2b(data, digest_size=20).digest())
    return digest.hexdigest()


class DamagedEntry(ValueError):
    """A cache entry that cannot be read back as the frames it should hold."""


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
        handle.flush()
        os.fsync(handle.fileno())  # the data is on disk before the rename makes it visible
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder
    finally:
        os.close(fd)


def load_or_discard(path: Path, n_frames: int) -> list[GroundTruthFrame] | None:
    """The entry's frames; None when there is no entry, or when it is damaged (then it is deleted, with a
    one-line note on stderr, so that the caller decodes again and stores a good one)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise DamagedEntry("not a regular file")
        return load(path, n_frames)
    except FileNotFoundError:
        return None
    except DamagedEntry as err:
        print(f"note: {path}: damaged ground-truth cache entry ({err}); discarded, decoding again",
              file=sys.stderr)
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def load(path: Path, n_frames: int | None = None) -> list[GroundTruthFrame]:
    """The frames of an entry; DamagedEntry if it is unreadable or inconsistent (or holds other than
    `n_frames` frames)."""
    try:
        with np.load(path) as data:
            values, lengths, index = data["values"], data["lengths"], data["index"]
            shape = tuple(int(n) for n in data["shape"])
    except FileNotFoundError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise DamagedEntry(f"{type(err).__name__}: {err}") from err
    size = int(np.prod(shape))
    if (index.ndim != 2 or index.shape[1] != 4 or len(shape) != 2 or values.shape != lengths.shape
            or int(index[:, 3].sum()) != values.size):
        raise DamagedEntry("inconsistent index")
    entries: dict[int, dict] = {}
    offset = 0
    for number, oid, kind, runs in index.tolist():
        run_lengths = lengths[offset:offset + runs]
        if int(run_lengths.sum()) != size or (run_lengths <= 0).any():
            raise DamagedEntry(f"frame {number}: runs do not cover {shape[1]}x{shape[0]} pixels")
        array = np.repeat(values[offset:offset + runs], run_lengths).reshape(shape)
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
    if sorted(entries) != list(range(len(entries))) or any(e["ids"] is None for e in entries.values()):
        raise DamagedEntry("frames missing")
    if any(set(e["boundary"]) != set(e["dilated"]) for e in entries.values()):
        raise DamagedEntry("boundary maps missing")
    if n_frames is not None and len(entries) != n_frames:
        raise DamagedEntry(f"{len(entries)} frames, expected {n_frames}")
    return [GroundTruthFrame(e["ids"], e["void"], {oid: (b, e["dilated"][oid]) for oid, b in e["boundary"].items()})
            for _, e in sorted(entries.items())]
