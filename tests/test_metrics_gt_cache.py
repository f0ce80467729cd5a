"""metrics.gt_cache, format 3: an entry holds the decoded label maps and nothing derived from them."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from metrics import evaluate, gt_cache
from metrics.davis import Protocol
from tests.conftest import write_sequence
from vos_datasets.masks import read_label_png


def frames_with_void(n: int = 5, shape=(30, 40)) -> list[np.ndarray]:
    frames = []
    for index in range(n):
        ids = np.zeros(shape, np.uint8)
        ids[4:14, 3 + index:15 + index] = 1
        ids[16:26, 20:32] = 2
        ids[15, :] = 255  # void between the objects
        frames.append(ids)
    return frames


@pytest.fixture
def sequence(tmp_path) -> tuple[Path, Path]:
    frames = frames_with_void()
    write_sequence(tmp_path / "gt", "seq", frames)
    write_sequence(tmp_path / "pred", "seq", [np.roll(np.where(f == 255, 0, f), 2, axis=1) for f in frames])
    return tmp_path / "gt", tmp_path / "pred"


def test_an_entry_holds_the_decoded_label_maps_only(tmp_path, sequence):
    """Format 2 stored each object's boundary map and its dilation per frame: writing them cost more than the
    uncached evaluation. An entry now reads back as the label maps of the first and the scored frames, void
    included, exactly as they were decoded."""
    gt, pred = sequence
    evaluate(gt, pred, workers=1, progress=False, cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob(f"*{gt_cache.SUFFIX}")
    labels = gt_cache.load(entry, 4)
    files = sorted((gt / "seq").glob("*.png"))
    expected = [read_label_png(path, "davis2017") for path in [files[0], *files[1:-1]]]
    assert len(labels) == len(expected)
    for stored, decoded in zip(labels, expected, strict=True):
        assert stored.dtype == np.uint8
        np.testing.assert_array_equal(stored, decoded)


def test_one_entry_serves_every_protocol_setting(tmp_path, sequence):
    """The boundary threshold and the void handling act on the labels after they are read back: they are not
    in the key, and the figures equal the uncached ones under each setting."""
    gt, pred = sequence
    cache = tmp_path / "cache"
    for protocol in [Protocol(), Protocol(ignore_void=True), Protocol(bound_th=0.02)]:
        fresh = evaluate(gt, pred, protocol=protocol, workers=1, progress=False).object_statistics()
        cached = evaluate(gt, pred, protocol=protocol, workers=1, progress=False, cache_dir=cache)
        assert cached.object_statistics() == fresh
    assert len(list(cache.iterdir())) == 1


def test_an_entry_of_another_format_is_discarded(tmp_path, sequence, capsys):
    gt, pred = sequence
    cache = tmp_path / "cache"
    expected = evaluate(gt, pred, workers=1, progress=False, cache_dir=cache).global_statistics()
    (entry,) = cache.glob(f"*{gt_cache.SUFFIX}")
    data = bytearray(entry.read_bytes())
    data[len(gt_cache._MAGIC)] = gt_cache.CACHE_VERSION + 1  # the header's format version
    entry.write_bytes(bytes(data))
    capsys.readouterr()
    assert evaluate(gt, pred, workers=1, progress=False, cache_dir=cache).global_statistics() == expected
    assert "damaged ground-truth cache entry (format" in capsys.readouterr().err


@pytest.mark.parametrize("use_cache", [False, True])
def test_each_mask_is_opened_once(tmp_path, sequence, monkeypatch, use_cache):
    """Before: every mask was opened to be checked, then again to be decoded (and, when the cache was built,
    a third time to hash it again). Now the bytes checked on the open descriptor are the bytes decoded."""
    gt, pred = sequence
    opened: list[str] = []

    def counting(real_open):
        def counting_open(path, *args, **kwargs):
            if str(path).endswith(".png"):
                opened.append(str(path))
            return real_open(path, *args, **kwargs)
        return counting_open

    monkeypatch.setattr(os, "open", counting(os.open))
    monkeypatch.setattr(io, "open", counting(io.open))  # what Path.read_bytes opens with
    evaluate(gt, pred, workers=1, progress=False, cache_dir=tmp_path / "cache" if use_cache else None)
    assert opened and len(opened) == len(set(opened)), sorted(opened)
