from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from vos_datasets import synthetic
from vos_datasets.davis import DavisDataset, read_image_set
from vos_datasets.masks import write_label_png
from vos_datasets.sequence import DatasetError
from vos_datasets.splits import available_splits, read_split


@pytest.mark.shared
def test_davis2016_reader(shared):
    dataset = DavisDataset(shared / "data/davis2016", split="val", year="2016")
    assert len(dataset) == 20
    seq = dataset.sequence("blackswan")
    assert len(seq.frames) == 50 and seq.size == (480, 854)
    assert seq.read_image(seq.frames[0]).shape == (480, 854, 3)
    assert set(np.unique(seq.read_mask("00000"))) == {0, 1}  # 255 read as object 1
    assert seq.object_first_frames() == {1: "00000"}
    seq.validate()
    train = DavisDataset(shared / "data/davis2016", split="train", year="2016")
    assert "bear" in train.sequence_names and len(train) == 12


def test_image_set_formats(tmp_path):
    (tmp_path / "a.txt").write_text("bear\nboat\n\n")
    (tmp_path / "b.txt").write_text("/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png\n"
                                   "/JPEGImages/480p/bear/00001.jpg /Annotations/480p/bear/00001.png\n"
                                   "/JPEGImages/480p/boat/00000.jpg /Annotations/480p/boat/00000.png\n")
    assert read_image_set(tmp_path / "a.txt") == ["bear", "boat"]
    assert read_image_set(tmp_path / "b.txt") == ["bear", "boat"]


def digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("emb") / "embedded", seed=3, n_train=2, n_val=2, n_frames=12)


def test_embedded_dataset_is_deterministic(embedded, tmp_path):
    again = synthetic.generate(tmp_path / "again", seed=3, n_train=2, n_val=2, n_frames=12)
    other = synthetic.generate(tmp_path / "other", seed=4, n_train=2, n_val=2, n_frames=12)
    assert digest(embedded) == digest(again)
    assert digest(embedded) != digest(other)


def test_unknown_sequences_are_named_in_one_short_line(embedded):
    """Names that are not sequences (e.g. a split file's frame paths passed whole) give a short error that
    names a few of them and the split's own sequences, not thousands of entries."""
    wrong = [f"/Annotations/480p/synth-val-00/{i:05d}.png" for i in range(40)]
    with pytest.raises(DatasetError) as error:
        DavisDataset(embedded, split="val", sequences=wrong)
    message = str(error.value)
    assert "and 35 more are not in" in message and "its 2 sequences: synth-val-00, synth-val-01" in message
    assert len(message) < 400 and "\n" not in message


def test_embedded_dataset_content(embedded):
    dataset = DavisDataset(embedded, split="val")
    assert dataset.sequence_names == ["synth-val-00", "synth-val-01"]
    meta = json.loads((embedded / "meta.json").read_text())["videos"]
    entering = [(name, oid) for name, video in meta.items() for oid, obj in video["objects"].items()
                if obj["frames"][0] != "00000"]
    assert entering, "some video must have an object entering mid-video"
    for seq in DavisDataset(embedded, split="train"):
        seq.validate()
        firsts = seq.object_first_frames()
        assert len(firsts) >= 2  # several objects
        for oid, frame in firsts.items():
            assert (seq.read_mask(frame) == oid).sum() >= synthetic.MIN_FIRST_MASK_PIXELS
            earlier = [f for f in seq.frames if f < frame]
            assert all((seq.read_mask(f) != oid).all() for f in earlier)  # not labelled before it is given
        assert seq.size == (240, 432)


def test_distractor_looks_like_a_target_but_is_background():
    frames, labels, _ = synthetic.render_sequence(seed=0, index=0, n_frames=8, size=(120, 200), with_entering=False)
    # the distractor copies target 1's texture: pixels with target-1 colours appear outside its label
    assert len(frames) == 8 and labels[0].max() >= 2


def test_generation_rejects_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="n_frames"):
        synthetic.generate(tmp_path / "x", n_frames=2)
    assert not (tmp_path / "x").exists()


def test_validate_names_mismatched_mask(embedded, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(embedded, copy)
    bad = copy / "Annotations/480p/synth-val-00/00003.png"
    write_label_png(bad, np.zeros((10, 10), np.uint8))
    with pytest.raises(DatasetError, match="00003.png.*10x10"):
        DavisDataset(copy, split="val").sequence("synth-val-00").validate()
    (copy / "JPEGImages/480p/synth-val-01/00004.jpg").write_bytes(b"garbage")
    seq = DavisDataset(copy, split="val").sequence("synth-val-01")
    with pytest.raises(DatasetError, match="00004.jpg.*corrupt"):
        seq.read_image("00004")


def test_a_frame_over_pils_pixel_limit_is_a_dataset_error_naming_it(embedded, tmp_path, monkeypatch):
    """A frame declaring more pixels than PIL allows (a decompression bomb) is a one-line DatasetError naming the
    file, from every reader of frames (before: PIL's DecompressionBombError traceback, not an OSError)."""
    import shutil

    from PIL import Image

    copy = tmp_path / "copy"
    shutil.copytree(embedded, copy)
    seq = DavisDataset(copy, split="val").sequence("synth-val-00")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the 240x432 frames are then "bombs" (> 2x the limit)
    for read in (lambda: seq.read_image(seq.frames[0]), lambda: seq.size):
        with pytest.raises(DatasetError, match=r"synth-val-00/00000\.jpg: .*decompression bomb.*re-download"):
            read()


def test_missing_layout_is_explained(tmp_path):
    with pytest.raises(DatasetError, match="not a DAVIS folder"):
        DavisDataset(tmp_path)


def test_ablation_splits_ship_with_the_package():
    assert available_splits() == ["frtm_ytvos2018_jjtrain", "frtm_ytvos2018_jjvalid",
                                  "lwl_ytvos2019_jjtrain", "lwl_ytvos2019_jjvalid"]
    assert len(read_split("frtm_ytvos2018_jjvalid")) == 300
    assert len(read_split("lwl_ytvos2019_jjvalid")) == 300
    assert not set(read_split("frtm_ytvos2018_jjvalid")) & set(read_split("frtm_ytvos2018_jjtrain"))


@pytest.mark.shared
def test_shipped_splits_equal_the_shared_originals(shared):
    for name in available_splits():  # the shipped copies equal the shared originals
        assert read_split(name) == read_split(shared / "data/splits" / f"{name}.txt")


def test_images_are_rgb(embedded):
    seq = DavisDataset(embedded, split="val").sequence("synth-val-00")
    with Image.open(seq.image_path("00000")) as image:
        assert image.mode == "RGB"


def test_a_dataset_entry_names_its_videos_by_a_split_file(embedded, tmp_path):
    from vos_datasets.build import build_dataset

    names = [line for line in (embedded / "ImageSets/2017/train.txt").read_text().split() if line]
    (tmp_path / "one.txt").write_text(f"{names[1]}\n")
    spec = {"kind": "davis", "root": str(embedded), "split": "train", "year": "2017", "sequences": None}
    assert [s.name for s in build_dataset({**spec, "videos_list": str(tmp_path / "one.txt")})] == [names[1]]
    assert len(list(build_dataset({**spec, "videos_list": None}))) == len(names)
    with pytest.raises(ValueError, match="not both"):
        build_dataset({**spec, "sequences": names[:1], "videos_list": str(tmp_path / "one.txt")})
