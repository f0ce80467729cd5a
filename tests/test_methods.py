from __future__ import annotations

import json

import numpy as np
import pytest

from methods.__main__ import main as cli
from methods.runner import build_method, run
from vos_datasets import synthetic
from vos_datasets.build import build_dataset
from vos_datasets.masks import read_label_png, write_label_png


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("emb") / "d", seed=1, n_train=1, n_val=2, n_frames=8)


def test_first_frame_copy_repeats_the_given_masks(embedded, tmp_path):
    dataset = build_dataset({"kind": "davis", "root": str(embedded), "split": "val"})
    record = run(build_method("first_frame_copy"), dataset, tmp_path / "out", tmp_path / "t.json", progress=False)
    assert record["frames"] == 16 and json.loads((tmp_path / "t.json").read_text())["method"] == "first_frame_copy"
    for seq in dataset:
        firsts = seq.object_first_frames()
        last = read_label_png(tmp_path / "out" / seq.name / f"{seq.frames[-1]}.png")
        for oid, frame in firsts.items():
            np.testing.assert_array_equal(last == oid, seq.read_mask(frame) == oid)
        before = [f for f in seq.frames if all(f < first for first in firsts.values())]
        for frame in before:  # nothing is predicted before any object is given
            assert not read_label_png(tmp_path / "out" / seq.name / f"{frame}.png").any()


def test_empty_first_mask_is_refused_and_nothing_is_left(embedded, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(embedded, copy)
    write_label_png(copy / "Annotations/480p/synth-val-00/00000.png", np.zeros((240, 432), np.uint8))
    meta = json.loads((copy / "meta.json").read_text())
    meta["videos"]["synth-val-00"]["objects"]["1"]["frames"][0] = "00000"
    (copy / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    code = cli(["infer", "--method", "first_frame_copy", "--dataset",
                json.dumps({"kind": "davis", "root": str(copy), "split": "val"}), "--out", str(out), "--quiet"])
    assert code == 1
    assert "00000.png: object 1 is empty" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_unknown_method_and_settings():
    with pytest.raises(ValueError, match="unknown method"):
        build_method("nope")
    with pytest.raises(ValueError, match="takes no settings"):
        build_method("first_frame_copy", {"c": 96})
