"""A fast path for decoding label PNGs: zlib-ng inflation plus vectorised unfiltering.

Pillow inflates with plain zlib, which costs ~0.7 ms for a 854x480 mask and dominates evaluation.
Label PNGs are simple: 8-bit grayscale or palette, not interlaced, and (Pillow's own palette
output, the DAVIS and OSVOS masks) filtered with None, Sub or Up only. Those are decoded here in
~0.1 ms; anything else (Average/Paeth rows, other depths or colour types, a damaged file) returns
None and the caller falls back to Pillow, which also produces the error messages. Inflation stops at the
size the header needs: a small file whose data inflates far beyond it (a decompression bomb) costs no more
memory than its image. tests/test_masks.py checks this path against Pillow on every PNG of the shared data.
"""

from __future__ import annotations

import struct

import numpy as np
from zlib_ng import zlib_ng

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_NONE, _FILTER_SUB, _FILTER_UP = 0, 1, 2


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header (IHDR, the first chunk), or None when `data` is not a PNG."""
    if not data.startswith(_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return struct.unpack(">II", data[16:24])


def decode_label_png(data: bytes, max_pixels: int | None = None) -> tuple[np.ndarray, str] | None:
    """(ids, "L" or "P") for a simple 8-bit grayscale/palette PNG, else None (also for one whose header
    declares more than `max_pixels` pixels, or whose data inflates to more than the header declares)."""
    if not data.startswith(_SIGNATURE):
        return None
    position, idat, header = 8, [], None
    try:
        while position < len(data):
            length, kind = struct.unpack(">I4s", data[position:position + 8])
            body = data[position + 8:position + 8 + length]
            if kind == b"IHDR":
                header = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
            position += 12 + length
        if header is None:
            return None
        width, height, depth, colour, _, _, interlace = header
        if depth != 8 or colour not in (0, 3) or interlace != 0:
            return None
        if max_pixels is not None and width * height > max_pixels:
            return None
        expected = height * (width + 1)  # each row: a filter byte and its pixels
        inflater = zlib_ng.decompressobj()
        raw = inflater.decompress(b"".join(idat), expected + 1)  # one byte more tells too much data apart
    except (struct.error, zlib_ng.error):
        return None
    if len(raw) != expected or not inflater.eof:
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, width + 1)
    kinds, pixels = rows[:, 0], rows[:, 1:]
    if kinds.max(initial=0) > _FILTER_UP:
        return None
    if not kinds.any():
        return pixels.copy(), "P" if colour == 3 else "L"
    out = pixels.copy()
    sub = kinds == _FILTER_SUB
    if sub.any():  # each byte adds its left neighbour: a running sum modulo 256 along the row
        out[sub] = np.cumsum(pixels[sub], axis=1, dtype=np.uint8)
    up = kinds == _FILTER_UP
    up[0] = False  # Up on the first row adds a row of zeros: the row is its own value
    if up.any():
        # An Up row adds the decoded row above it: within each run of Up rows that is a running sum
        # down the rows, started from the last non-Up row (the anchor). All modulo 256.
        running = np.cumsum(np.where(up[:, None], pixels, 0).astype(np.uint8), axis=0, dtype=np.uint8)
        anchor = np.maximum.accumulate(np.where(~up, np.arange(height), 0))
        out = out[anchor] + running - running[anchor]
    return out, "P" if colour == 3 else "L"
