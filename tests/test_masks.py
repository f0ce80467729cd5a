from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vos_datasets.masks import DAVIS_PALETTE, MaskFormatError, read_label_png, rgb_to_ids, write_label_png
from vos_datasets.png_fast import decode_label_png


def png_bytes(rows: np.ndarray, filters: list[int], colour: int = 0) -> bytes:
    """A hand-built 8-bit PNG whose rows use the given filter types (None=0, Sub=1, Up=2)."""
    height, width = rows.shape
    raw = bytearray()
    previous = np.zeros(width, np.uint8)
    for row, kind in zip(rows, filters, strict=True):
        if kind == 0:
            encoded = row
        elif kind == 1:
            encoded = (row.astype(np.int16) - np.r_[0, row[:-1]].astype(np.int16)) % 256
        else:
            encoded = (row.astype(np.int16) - previous.astype(np.int16)) % 256
        raw += bytes([kind]) + encoded.astype(np.uint8).tobytes()
        previous = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    palette = chunk(b"PLTE", bytes(DAVIS_PALETTE)) if colour == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + palette + chunk(b"IDAT", zlib.compress(bytes(raw)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("filters", [[0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [2, 2, 2, 2, 2], [0, 2, 2, 1, 2],
                                     [2, 1, 2, 2, 0], [1, 2, 0, 2, 2]])
def test_fast_path_unfilters_none_sub_up(tmp_path, filters):
    rng = np.random.default_rng(len(filters) + sum(filters))
    rows = rng.integers(0, 256, (5, 7)).astype(np.uint8)
    data = png_bytes(rows, filters, colour=3)
    ids, mode = decode_label_png(data)
    assert mode == "P"
    np.testing.assert_array_equal(ids, rows)
    (tmp_path / "m.png").write_bytes(data)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "m.png")), rows)  # Pillow agrees


def test_fast_path_declines_what_it_does_not_handle():
    rows = np.zeros((3, 4), np.uint8)
    data = bytearray(png_bytes(rows, [0, 0, 0]))
    assert decode_label_png(b"not a png") is None
    data[16 + 8] = 16  # bit depth 16 in IHDR
    assert decode_label_png(bytes(data)) is None


@pytest.mark.shared
def test_fast_path_matches_pillow_on_all_shared_pngs(shared):
    checked = 0
    for png in sorted(shared.rglob("*.png")):
        data = png.read_bytes()
        fast = decode_label_png(data)
        if fast is None:
            continue
        with Image.open(png) as image:
            np.testing.assert_array_equal(fast[0], np.asarray(image), err_msg=str(png))
            assert fast[1] == image.mode
        checked += 1
    assert checked > 3000


def test_palette_is_the_voc_colour_map():
    assert DAVIS_PALETTE[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
    assert len(DAVIS_PALETTE) == 768


@pytest.mark.shared
def test_palette_matches_real_davis_pngs(shared):
    with Image.open(shared / "data/davis2017-val-osvos/bike-packing/00000.png") as image:
        assert image.getpalette() == DAVIS_PALETTE


def test_write_and_read_roundtrip(tmp_path):
    ids = np.arange(60, dtype=np.uint8).reshape(6, 10) % 5
    write_label_png(tmp_path / "a.png", ids)
    with Image.open(tmp_path / "a.png") as image:
        assert image.mode == "P"
    np.testing.assert_array_equal(read_label_png(tmp_path / "a.png"), ids)


def test_conventions(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = 255
    Image.fromarray(mask, mode="L").save(tmp_path / "d16.png")
    assert read_label_png(tmp_path / "d16.png").max() == 1  # auto: 0/255 grayscale is DAVIS 2016
    assert read_label_png(tmp_path / "d16.png", "davis2017").max() == 255  # as ids: 255 is void
    write_label_png(tmp_path / "d17.png", np.where(mask, 255, 1).astype(np.uint8))
    assert set(np.unique(read_label_png(tmp_path / "d17.png"))) == {1, 255}
    Image.fromarray(np.where(mask, 3, 0).astype(np.uint8), mode="L").save(tmp_path / "ids.png")
    assert read_label_png(tmp_path / "ids.png").max() == 3  # grayscale ids stay ids
    with pytest.raises(MaskFormatError, match="only 0 and 255"):
        read_label_png(tmp_path / "ids.png", "davis2016")


def test_rgb_is_refused_with_the_fix(tmp_path):
    Image.new("RGB", (4, 4), (128, 0, 0)).save(tmp_path / "rgb.png")
    with pytest.raises(MaskFormatError, match="rgb.png.*RGB.*indexed"):
        read_label_png(tmp_path / "rgb.png")
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (128, 0, 0)
    np.testing.assert_array_equal(rgb_to_ids(rgb), [[1, 0], [0, 0]])
    rgb[1, 1] = (1, 2, 3)
    with pytest.raises(MaskFormatError, match="not DAVIS palette"):
        rgb_to_ids(rgb)


@pytest.mark.shared
def test_grayscale_with_opaque_alpha_is_read(shared):
    # bear/00077.png of DAVIS 2016 is grayscale + alpha; the alpha is fully opaque
    ids = read_label_png(shared / "data/davis2016/Annotations/480p/bear/00077.png")
    assert ids.shape == (480, 854) and set(np.unique(ids)) == {0, 1}


def test_transparent_alpha_is_refused(tmp_path):
    Image.new("LA", (4, 4), (255, 0)).save(tmp_path / "la.png")
    with pytest.raises(MaskFormatError, match="transparent"):
        read_label_png(tmp_path / "la.png")


# --- decompression bombs ---------------------------------------------------------------------------------


def bomb_png(width: int, height: int, inflated: int, colour: int = 3) -> bytes:
    """A PNG whose header declares width x height but whose IDAT inflates to `inflated` zero bytes."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    deflate = zlib.compressobj(9)
    block, parts = bytes(1 << 20), []
    for start in range(0, inflated, len(block)):
        parts.append(deflate.compress(block[:inflated - start]))
    parts.append(deflate.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    palette = chunk(b"PLTE", bytes(DAVIS_PALETTE)) if colour == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + palette + chunk(b"IDAT", b"".join(parts))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("colour", [0, 3])
def test_png_data_past_its_header_size_is_not_inflated(tmp_path, colour):
    """A 64 KB file whose data inflates to 64 MB costs the memory of its 64x48 image, not of its data."""
    import tracemalloc

    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(64, 48, 64 << 20, colour))
    assert path.stat().st_size < 100_000

    tracemalloc.start()
    try:
        ids = read_label_png(path, "davis2017")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 4 << 20, f"peak {peak / 2**20:.0f} MiB"
    with Image.open(path) as image:  # what Pillow reads from it too: the header's image
        np.testing.assert_array_equal(ids, np.asarray(image))
    assert ids.shape == (48, 64) and not ids.any()


@pytest.mark.parametrize("width, height", [(10_000, 10_000), (20_000, 20_000)])  # over the limit; over twice it
def test_png_declaring_more_pixels_than_pil_allows_is_refused_naming_the_file(tmp_path, width, height):
    path = tmp_path / "huge.png"
    path.write_bytes(bomb_png(width, height, 1 << 20))

    with pytest.raises(MaskFormatError) as excinfo:
        read_label_png(path)

    message = str(excinfo.value)
    assert message.startswith(f"{path}: declares {width}x{height} pixels, over the limit of {Image.MAX_IMAGE_PIXELS}")
    assert "PIL.Image.MAX_IMAGE_PIXELS" in message and "\n" not in message


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_pixel_limit_is_pils(tmp_path, monkeypatch):
    write_label_png(tmp_path / "m.png", np.ones((48, 64), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    with pytest.raises(MaskFormatError, match="m.png: declares 64x48 pixels, over the limit of 2000"):
        read_label_png(tmp_path / "m.png")
    Image.new("L", (64, 48)).save(tmp_path / "m.gif")  # Pillow's path (not a PNG) checks it as well
    with pytest.raises(MaskFormatError, match="m.gif: declares 64x48 pixels, over the limit of 2000"):
        read_label_png(tmp_path / "m.gif")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # over twice the limit: Pillow's own error, one line
    with pytest.raises(MaskFormatError, match=r"m.gif: Image size \(3072 pixels\) exceeds limit .*MAX_IMAGE_PIXELS"):
        read_label_png(tmp_path / "m.gif")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's switch for no limit
    assert read_label_png(tmp_path / "m.png").shape == (48, 64)


def _convert(in_dir, out_dir):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "vos_datasets.masks", "to-indexed", str(in_dir), str(out_dir)],
                          capture_output=True, text=True, timeout=120)


def test_to_indexed_converts_davis_coloured_masks(tmp_path):
    labels = np.zeros((6, 8), np.uint8)
    labels[1:3, 2:5], labels[4:, 6:] = 1, 2
    (tmp_path / "rgb" / "bear").mkdir(parents=True)
    colours = np.array(DAVIS_PALETTE, np.uint8).reshape(256, 3)
    Image.fromarray(colours[labels]).save(tmp_path / "rgb" / "bear" / "00000.png")
    done = _convert(tmp_path / "rgb", tmp_path / "ids")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(read_label_png(tmp_path / "ids" / "bear" / "00000.png", "davis2017"), labels)


def test_to_indexed_refuses_a_damaged_mask_in_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "rgb").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb" / "00000.png")
    (tmp_path / "rgb" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    done = _convert(tmp_path / "rgb", tmp_path / "ids")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "00001.png" in done.stderr and "re-export" in done.stderr
    assert not (tmp_path / "ids").exists() and not list(tmp_path.glob("*.tmp"))


def test_to_indexed_refuses_a_non_empty_output_folder(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "ids").mkdir()
    (tmp_path / "ids" / "keep.txt").write_text("a user's file")
    done = _convert(tmp_path / "rgb", tmp_path / "ids")
    assert done.returncode == 1 and "already exists" in done.stderr
    assert (tmp_path / "ids" / "keep.txt").read_text() == "a user's file"
