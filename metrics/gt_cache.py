"""Decoded ground truth of a sequence, kept between evaluations.

Every method of the suite is scored against the same annotations, and decoding some of them costs more
than scoring them: DAVIS 2016's grayscale PNGs are Paeth-filtered, which only Pillow decodes (~1.3 ms
each). So the first evaluation stores the sequence's decoded label maps (after the mask convention,
void still in them), each deflated by zlib-ng at level 1 into one file per sequence (~8 KB a 480p frame,
written in ~0.15 ms and inflated in ~0.2-0.3 ms), and later evaluations read that instead. Nothing
derived from the labels is stored: the void mask and the boundary maps are recomputed from them on
every run, as cheaply as they would be read back, so one entry serves every protocol setting.

The cache can never hide a change: its key is a hash of every needed annotation file's name and
*content* (BLAKE2b of the bytes, not the size or modification time, which an edit can keep), the mask
convention and the cache format, and the labels stored are decoded from the very bytes that were
hashed (each file is read once). Hashing costs ~11 us per 480p annotation more than the stat of a
size/mtime key (all 2218 DAVIS 2016 annotations: 49 ms against 25 ms, measured on a busy 2-core
machine), against ~1.3 ms to decode one.

Entries are written durably (fsync before the rename). An entry that cannot be read back (empty,
truncated, not an entry, inconsistent) is discarded with a one-line note and the sequence is decoded
again. Delete the folder at any time; `--no-cache` bypasses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import struct
import sys
from pathlib import Path

import numpy as np
from zlib_ng import zlib_ng

from vos_datasets.fileio import atomic_path

# 3: the label maps only, one deflated stack per sequence (2 also stored each object's boundary maps)
CACHE_VERSION = 3
SUFFIX = ".labels"
_MAGIC = b"vos-repro ground truth\n"
_HEADER = struct.Struct("<4I")  # format version, frames, height, width
_LEVEL = 1  # zlib-ng's fastest deflate: label maps are long runs, so it still packs ~50:1


def default_cache_dir() -> Path:
    base = os.environ.get("VOS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vos-repro")
    return Path(base) / "ground-truth"


def cache_key(names: list[str], contents: list[bytes], convention: str) -> str:
    """The key of a sequence's entry: a hash of each needed annotation's name and bytes, the mask convention
    and the cache format. Equal content gives the same key wherever the files lie."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(json.dumps([CACHE_VERSION, convention, len(names)]).encode())
    for name, data in zip(names, contents, strict=True):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.blake2b(data, digest_size=20).digest())
    return digest.hexdigest()


def entry_path(cache_dir: Path, sequence: str, key: str) -> Path:
    return Path(cache_dir) / f"{sequence}-{key}{SUFFIX}"


class DamagedEntry(ValueError):
    """A cache entry that cannot be read back as the frames it should hold."""


def save(path: Path, labels: list[np.ndarray]) -> None:
    """Store a sequence's label maps (uint8, one size) as one entry, durably."""
    height, width = labels[0].shape
    # One deflate stream per frame: each inflates into a buffer that stays in the processor's cache.
    payloads = [zlib_ng.compress(np.ascontiguousarray(ids, dtype=np.uint8).data, _LEVEL) for ids in labels]
    lengths = np.array([len(p) for p in payloads], dtype="<u4")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(_MAGIC + _HEADER.pack(CACHE_VERSION, len(labels), height, width) + lengths.tobytes())
        handle.writelines(payloads)
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


def load_or_discard(path: Path, n_frames: int) -> list[np.ndarray] | None:
    """The entry's label maps; None when there is no entry, or when it is damaged (then it is deleted, with a
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


def load(path: Path, n_frames: int | None = None) -> list[np.ndarray]:
    """The label maps of an entry (read-only arrays); DamagedEntry if it is unreadable or
    inconsistent (or holds other than `n_frames` frames)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise DamagedEntry(f"{type(err).__name__}: {err}") from err
    start = len(_MAGIC) + _HEADER.size
    if len(data) < start or not data.startswith(_MAGIC):
        raise DamagedEntry("not a ground-truth cache entry")
    version, frames, height, width = _HEADER.unpack_from(data, len(_MAGIC))
    if version != CACHE_VERSION:
        raise DamagedEntry(f"format {version}, expected {CACHE_VERSION}")
    if n_frames is not None and frames != n_frames:
        raise DamagedEntry(f"{frames} frames, expected {n_frames}")
    lengths = np.frombuffer(data, "<u4", count=frames, offset=start) if len(data) >= start + 4 * frames else None
    if lengths is None or len(data) != start + 4 * frames + int(lengths.sum(dtype=np.int64)):
        raise DamagedEntry("truncated, or not its size")
    offset, size, labels = start + 4 * frames, height * width, []
    view = memoryview(data)
    for number, length in enumerate(lengths.tolist()):
        inflater = zlib_ng.decompressobj()
        try:
            # at most one byte more than a frame: a damaged entry cannot inflate without bound
            raw = inflater.decompress(view[offset:offset + length], size + 1)
        except zlib_ng.error as err:
            raise DamagedEntry(f"frame {number}: zlib: {err}") from err
        if len(raw) != size or not inflater.eof or inflater.unused_data:
            raise DamagedEntry(f"frame {number}: not {width}x{height} pixels")
        labels.append(np.frombuffer(raw, np.uint8).reshape(height, width))
        offset += length
    return labels
