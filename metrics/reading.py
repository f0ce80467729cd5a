"""How the evaluator opens its input masks.

* Regular files only, at most MAX_MASK_BYTES: a FIFO named like a frame would block the read forever, a
  link to /dev/zero would fill the memory, a folder named `<frame>.png` would end in a traceback. Each
  becomes an EvaluationError naming the file. Files are opened non-blocking and checked on the open
  descriptor, so nothing waits on a FIFO. Each mask is opened once: the bytes checked and read there are
  the bytes decoded (and, for the ground-truth cache, hashed).
* Pillow's decompression-bomb guard becomes an EvaluationError naming the file.
* The mask convention of a ground-truth sequence is decided once, from all its frames
  (`read_ground_truth`), not frame by frame.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from vos_datasets.masks import Convention, decode_label_bytes

from .errors import EvaluationError

MAX_MASK_BYTES = 64 << 20  # an uncompressed 8-bit 4096x4096 PNG is 16 MiB; DAVIS masks are a few KB
_GREY_COLOUR_TYPES = (0, 4)  # PNG colour types: 0 grey, 4 grey + alpha (3 palette, 2 RGB, 6 RGBA)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(path: Path, mode: int, size: int) -> None:
    if not stat.S_ISREG(mode):
        raise EvaluationError(f"{path}: {_kind(mode)}, not a PNG file; masks must be regular files "
                              "(replace it with the PNG, or remove it)")
    if size > MAX_MASK_BYTES:
        raise EvaluationError(f"{path}: {size} bytes, over the {MAX_MASK_BYTES >> 20} MiB limit for a mask PNG; "
                              "a label mask is a few KB: re-export it as an indexed PNG")


def require_regular(path: Path) -> None:
    """Raise EvaluationError unless `path` (links followed) is a regular file within the size cap."""
    try:
        info = os.stat(path)
    except FileNotFoundError as err:
        raise EvaluationError(f"{path}: not found (a dangling link?); results need one PNG per frame") from err
    except OSError as err:
        raise EvaluationError(f"{path}: cannot be read ({err.strerror}); check its permissions") from err
    _refuse(path, info.st_mode, info.st_size)


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of `path` (all of them, or the first `limit`), refusing anything but a regular file
    within MAX_MASK_BYTES. Checked on the open descriptor; opening is non-blocking, so a FIFO never waits."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as err:
        raise EvaluationError(f"{path}: not found (a dangling link?); results need one PNG per frame") from err
    except OSError as err:
        raise EvaluationError(f"{path}: cannot be read ({err.strerror}); check its permissions") from err
    try:
        info = os.fstat(fd)
        _refuse(path, info.st_mode, info.st_size)
        wanted = min(info.st_size if limit is None else limit, MAX_MASK_BYTES)
        chunks, got = [], 0
        while got < wanted:
            chunk = os.read(fd, wanted - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def decode(path: Path, data: bytes, convention: Convention) -> np.ndarray:
    """vos_datasets.masks.decode_label_bytes on the bytes `read_regular` gave (the file is opened once),
    with Pillow's decompression-bomb error naming the file."""
    try:
        return decode_label_bytes(path, data, convention)
    except Image.DecompressionBombError as err:
        raise EvaluationError(f"{path}: too many pixels for a mask ({err}); re-export it at the size of "
                              "the annotations") from err


def read_mask(path: Path, convention: Convention) -> np.ndarray:
    """A prediction or ground-truth mask as object ids: a checked regular file, read once, then decoded."""
    return decode(path, read_regular(path), convention)


def png_colour_type(data: bytes) -> int | None:
    """The colour type of a PNG's IHDR (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA), or None."""
    if len(data) >= 26 and data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return data[25]
    return None


def frame_convention(ids: np.ndarray, colour_type: int | None) -> str | None:
    """How "auto" reads one frame on its own: "davis2016" (a grey PNG holding 0 and 255 only, 255 = the
    object), "davis2017" (ids, 255 = void) or None (all background: both readings agree)."""
    top = int(ids.max(initial=0))
    if top == 0:
        return None
    if colour_type in _GREY_COLOUR_TYPES and not bool(((ids - np.uint8(1)) < 254).any()):
        return "davis2016"
    return "davis2017"


_WORDS = {"davis2016": "DAVIS 2016 masks (0/255, 255 = the object)", "davis2017": "DAVIS 2017 ids (255 = void)"}


def read_ground_truth(paths: Sequence[Path], contents: Sequence[bytes], convention: Convention,
                      sequence: str) -> list[np.ndarray]:
    """The label maps of one ground-truth sequence, every frame read with the same convention.

    convention "auto" decides once for the sequence: frames that hold only background agree with
    either reading; every other frame must read the same way ("davis2016": grey 0/255 PNGs,
    "davis2017": palette PNGs or grey ones holding ids). A frame that disagrees with the others (one
    stray grey pixel in a DAVIS 2016 mask, which would turn 255 into void) is an error naming it.
    contents: each file's bytes, as `read_regular` gave them (decoded, and their header tells the PNG
    colour type). All frames must have the size of the first.
    """
    labels = []
    for path, data in zip(paths, contents, strict=True):
        ids = decode(path, data, "davis2017" if convention == "auto" else convention)
        if labels and ids.shape != labels[0].shape:
            raise EvaluationError(
                f"{path}: mask is {ids.shape[1]}x{ids.shape[0]} but {paths[0]} is "
                f"{labels[0].shape[1]}x{labels[0].shape[0]}; every ground-truth frame of {sequence} needs one size"
            )
        labels.append(ids)
    if convention != "auto":
        return labels
    readings = [frame_convention(ids, png_colour_type(data)) for ids, data in zip(labels, contents, strict=True)]
    counts = {kind: readings.count(kind) for kind in _WORDS}
    if counts["davis2016"] and counts["davis2017"]:
        minority = min(counts, key=lambda kind: (counts[kind], kind == "davis2016"))
        majority = "davis2017" if minority == "davis2016" else "davis2016"
        odd = readings.index(minority)
        found = np.unique(labels[odd]).tolist()
        raise EvaluationError(
            f"{paths[odd]}: reads as {_WORDS[minority]} (values {found[:8]}{' ...' if len(found) > 8 else ''}) but "
            f"{counts[majority]} other frames of {sequence} read as {_WORDS[majority]}; a sequence has one mask "
            "convention: fix this frame, or pass --gt-format davis2016 or davis2017 to read every frame one way"
        )
    if counts["davis2016"]:
        return [(ids == 255).view(np.uint8) for ids in labels]
    return labels
