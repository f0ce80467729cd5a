"""The evaluator reproduces the official DAVIS toolkit's figures (../shared/fixtures/metrics) to 1e-6."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from metrics import evaluate
from metrics.__main__ import main as cli

TOLERANCE = 1e-6


def assert_matches(result, fixture):
    glob = result.global_statistics()
    for key, value in fixture["global"].items():
        assert glob[key] == pytest.approx(value, abs=TOLERANCE), key
    objects = {row["Sequence"]: row for row in result.object_statistics()}
    assert set(objects) == set(fixture["objects"])
    for name, figures in fixture["objects"].items():
        for key, value in figures.items():
            assert objects[name][key] == pytest.approx(value, abs=TOLERANCE), (name, key)
    for seq in result.sequences:
        for oid in seq.object_ids:
            expected = fixture["per_frame"][f"{seq.sequence}_{oid}"]
            assert seq.frames[oid] == expected["frames"]
            np.testing.assert_allclose(seq.j[oid], expected["J"], atol=TOLERANCE, rtol=0)
            np.testing.assert_allclose(seq.f[oid], expected["F"], atol=TOLERANCE, rtol=0)


@pytest.mark.shared
@pytest.mark.parametrize("workers, use_cache", [(2, False), (1, True)])
def test_davis16_fixture(shared, davis16_val_names, davis16_osvos_pred, tmp_path, workers, use_cache):
    fixture = json.loads((shared / "fixtures/metrics/davis16-val-osvos.json").read_text())
    cache = tmp_path / "cache" if use_cache else None
    gt = shared / "data/davis2016/Annotations/480p"
    result = evaluate(gt, davis16_osvos_pred, davis16_val_names, workers=workers, progress=False, cache_dir=cache)
    assert_matches(result, fixture)
    if use_cache:  # the second run reads the cache and must give the same figures
        assert any(cache.iterdir())
        again = evaluate(gt, davis16_osvos_pred, davis16_val_names, workers=2, progress=False, cache_dir=cache)
        assert_matches(again, fixture)


@pytest.mark.shared
@pytest.mark.parametrize("use_cache", [False, True])
def test_multiobject_fixture(shared, tmp_path, use_cache):
    fixture = json.loads((shared / "fixtures/metrics/multiobject/official.json").read_text())
    pred = shared / "fixtures/metrics/multiobject/pred"
    names = sorted(p.name for p in pred.iterdir() if p.is_dir())
    result = evaluate(shared / "data/davis2017-val-osvos", pred, names, workers=2, progress=False,
                      cache_dir=tmp_path / "cache" if use_cache else None)
    assert_matches(result, fixture)


@pytest.mark.shared
def test_cli_writes_official_csvs(shared, tmp_path):
    fixture = json.loads((shared / "fixtures/metrics/multiobject/official.json").read_text())
    pred = shared / "fixtures/metrics/multiobject/pred"
    names = sorted(p.name for p in pred.iterdir() if p.is_dir())
    out = tmp_path / "out"
    code = cli([str(shared / "data/davis2017-val-osvos"), str(pred), "--out", str(out), "--sequences", *names,
                "--quiet", "--no-cache"])
    assert code == 0
    glob = pd.read_csv(out / "global_results-val.csv")
    assert list(glob.columns) == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert glob["J&F-Mean"][0] == pytest.approx(fixture["global"]["J&F-Mean"], abs=5e-4)  # written with %.3f
    per_seq = pd.read_csv(out / "per-sequence_results-val.csv")
    assert list(per_seq.columns) == ["Sequence", "J-Mean", "F-Mean"]
    assert set(per_seq["Sequence"]) == set(fixture["objects"])
    per_frame = pd.read_csv(out / "per-frame_results-val.csv")
    row = per_frame[(per_frame.Sequence == "blackswan") & (per_frame.Object == 1)]
    np.testing.assert_allclose(row["J"], fixture["per_frame"]["blackswan_1"]["J"], atol=1e-12)
