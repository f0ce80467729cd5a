"""Reading and writing label masks in the conventions of DAVIS 2016, DAVIS 2017 and YouTube-VOS.

A label mask is a uint8 array of object ids: 0 = background, 1..254 = objects, and (DAVIS 2017 only)
255 = void. DAVIS 2017 and YouTube-VOS store ids in indexed (palette) PNGs; DAVIS 2016 stores a
single object as an 8-bit grayscale PNG with values {0, 255}, where 255 is the object, not void.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from .fileio import atomic_directory
from .png_fast import decode_label_png, png_size

VOID_ID = 255
Convention = Literal["auto", "davis2017", "davis2016"]
CONVENTIONS: tuple[str, ...] = ("auto", "davis2017", "davis2016")


class MaskFormatError(ValueError):
    """A mask file that cannot be read as object ids; the message names the file and the fix."""


def davis_palette() -> list[int]:
    """The 256-colour palette of DAVIS and YouTube-VOS annotations (the PASCAL VOC colour map)."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette.extend((red, green, blue))
    return palette


DAVIS_PALETTE = davis_palette()

_FIX_RGB = (
    "masks must hold object ids: save them as indexed (palette) PNGs, e.g. "
    "vos_datasets.masks.write_label_png(path, ids), or convert DAVIS-coloured RGB masks with "
    "`python -m vos_datasets.masks to-indexed IN_DIR OUT_DIR`"
)


def read_label_png(path: str | os.PathLike, convention: Convention = "auto") -> np.ndarray:
    """Read one mask PNG as a uint8 array of object ids (see the module docstring).

    convention: "davis2017" (ids, 255 = void), "davis2016" (0/255 grayscale, 255 -> object 1) or
    "auto" (palette PNGs are DAVIS 2017; grayscale PNGs holding only 0 and 255 are DAVIS 2016).
    """
    path = Path(path)
    return decode_label_bytes(path, path.read_bytes(), convention)  # FileNotFoundError names the path


def decode_label_bytes(path: str | os.PathLike, data: bytes, convention: Convention = "auto") -> np.ndarray:
    """`read_label_png` on the bytes of `path` already read (`path` names the file in errors)."""
    path = Path(path)
    _check_pixels(path, png_size(data))
    fast = decode_label_png(data, Image.MAX_IMAGE_PIXELS)
    ids, mode = fast if fast is not None else _decode_with_pillow(path, data)
    binary = mode == "L" and not _has_values_between_0_and_255(ids)
    if convention == "davis2016" or (convention == "auto" and binary):
        if convention == "davis2016" and not binary:
            raise MaskFormatError(
                f"{path}: a DAVIS 2016 mask must hold only 0 and 255, found {np.unique(ids).tolist()}; "
                "read it with convention='davis2017' if it holds object ids"
            )
        return (ids == 255).view(np.uint8)
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown mask convention {convention!r}; choose one of {CONVENTIONS}")
    return ids


def decompression_bomb_message(path, err: Exception, fix: str) -> str:
    """The one-line error for a file declaring more pixels than PIL allows (Image.DecompressionBombError)."""
    return (f"{path}: {str(err).rstrip('.')} (PIL.Image.MAX_IMAGE_PIXELS is the limit): a decompression bomb or "
            f"a damaged file; {fix}")


def _decode_with_pillow(path: Path, data: bytes) -> tuple[np.ndarray, str]:
    """Pillow decoding for what the fast path does not take; raises MaskFormatError on bad files."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_pixels(path, image.size)
            mode = image.mode
            ids = np.array(image)
    except MaskFormatError:
        raise
    except Image.DecompressionBombError as err:  # a non-PNG file over twice the limit
        raise MaskFormatError(decompression_bomb_message(path, err, "re-export or re-download it")) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise MaskFormatError(f"{path}: not a readable PNG ({err}); re-export or re-download this file") from err
    if mode == "LA":
        # One real DAVIS 2016 file (bear/00077.png) is grayscale + an all-opaque alpha channel.
        if not (ids[..., 1] == 255).all():
            raise MaskFormatError(f"{path}: grayscale mask with a transparent alpha channel; {_FIX_RGB}")
        return np.ascontiguousarray(ids[..., 0]), "L"
    if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "HSV", "LAB", "PA", "RGBX"):
        raise MaskFormatError(f"{path}: {mode} image, not an indexed mask; {_FIX_RGB}")
    if mode == "1":
        return ids.astype(np.uint8) * 255, "L"
    if mode not in ("P", "L") or ids.dtype != np.uint8:
        raise MaskFormatError(f"{path}: unsupported PNG mode {mode!r}; {_FIX_RGB}")
    return ids, mode


def _check_pixels(path: Path, size: tuple[int, int] | None) -> None:
    """A mask larger than PIL.Image.MAX_IMAGE_PIXELS (89 million pixels; DAVIS 1080p has 2 million) is refused
    before it is decoded: a small file can declare, and inflate to, gigabytes (a decompression bomb)."""
    limit = Image.MAX_IMAGE_PIXELS
    if size is not None and limit is not None and size[0] * size[1] > limit:
        raise MaskFormatError(f"{path}: declares {size[0]}x{size[1]} pixels, over the limit of {limit} for a mask "
                              "(PIL.Image.MAX_IMAGE_PIXELS): a decompression bomb or a damaged file; re-export or "
                              "re-download it")


def _has_values_between_0_and_255(ids: np.ndarray) -> bool:
    # uint8 arithmetic wraps: 0 - 1 = 255 and 255 - 1 = 254, every other value lands below 254.
    return bool(((ids - np.uint8(1)) < 254).any())


def write_label_png(path: str | os.PathLike, ids: np.ndarray) -> None:
    """Write object ids as an indexed PNG with the DAVIS palette (the DAVIS result format)."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"{path}: a label mask must be 2-D, got shape {ids.shape}")
    if ids.dtype != np.uint8:
        if ids.min(initial=0) < 0 or ids.max(initial=0) > 255:
            raise ValueError(f"{path}: object ids must lie in 0..255")
        ids = ids.astype(np.uint8)
    image = Image.fromarray(ids, mode="P")
    image.putpalette(DAVIS_PALETTE)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")


def rgb_to_ids(rgb: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Map an RGB mask drawn with the DAVIS palette back to object ids."""
    palette = np.asarray(DAVIS_PALETTE, dtype=np.uint8).reshape(256, 3)
    codes = (palette[:, 0].astype(np.int64) << 16) | (palette[:, 1].astype(np.int64) << 8) | palette[:, 2]
    lookup = {int(code): index for index, code in enumerate(codes)}
    pixel_codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    unique, inverse = np.unique(pixel_codes, return_inverse=True)
    unknown = [int(code) for code in unique if int(code) not in lookup]
    if unknown:
        colours = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in unknown[:5]]
        raise MaskFormatError(f"{source}: colours {colours} are not DAVIS palette colours; cannot map them to ids")
    return np.array([lookup[int(code)] for code in unique], dtype=np.uint8)[inverse].reshape(rgb.shape[:2])


def _convert_folder(in_dir: Path, out_dir: Path) -> int:
    """Convert every RGB mask under in_dir into an indexed PNG at the same place under out_dir, a new folder
    that appears complete or not at all (a bad mask stops the conversion with nothing written)."""
    if not in_dir.is_dir():
        raise MaskFormatError(f"{in_dir}: not a folder; give the folder holding the RGB mask PNGs")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise MaskFormatError(f"{out_dir}: already exists; give a new folder for the indexed masks")
    count = 0
    with atomic_directory(out_dir) as staging:
        for png in sorted(in_dir.rglob("*.png")):
            try:
                with Image.open(png) as image:
                    _check_pixels(png, image.size)
                    rgb = np.asarray(image.convert("RGB"))
            except Image.DecompressionBombError as err:
                raise MaskFormatError(decompression_bomb_message(png, err, "re-export the mask")) from None
            except OSError as err:
                raise MaskFormatError(f"{png}: not a readable PNG ({err}); re-export the mask") from None
            write_label_png(staging / png.relative_to(in_dir), rgb_to_ids(rgb, str(png)))
            count += 1
    return count


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vos_datasets.masks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("to-indexed", help="convert DAVIS-coloured RGB mask PNGs to indexed PNGs")
    convert.add_argument("in_dir", type=Path)
    convert.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    try:
        print(f"converted {_convert_folder(args.in_dir, args.out_dir)} masks into {args.out_dir}")
    except MaskFormatError as err:
        raise SystemExit(f"error: {err}") from None
