"""The benchmark scripts' own logic (their timings are benchmarks, never tests)."""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stage_profile import STAGES, stage_seconds  # noqa: E402
from methods.frtm.target_model import TargetModel, TargetModelSettings  # noqa: E402


def test_stage_profile_finds_the_stage_that_ran_and_only_it():
    generator = torch.Generator().manual_seed(0)
    model = TargetModel(8, TargetModelSettings(channels=4), seed=0)
    projected = torch.randn(3, 4, 5, 6, generator=generator)
    labels = (torch.rand(3, 20, 24, generator=generator) > 0.6).float()
    profiler = cProfile.Profile()
    profiler.enable()
    model.update(projected, labels, torch.tensor([0.5, 0.3, 0.2]))
    profiler.disable()
    seconds = stage_seconds(pstats.Stats(profiler), STAGES["frtm"])
    assert seconds["target model updates (Gauss-Newton)"] > 0
    assert all(value == 0 for stage, value in seconds.items() if stage != "target model updates (Gauss-Newton)")


def _work():
    time.sleep(0.02)


def _from_here():
    _work()


def _from_there():
    _work()
    _work()


def test_stage_profile_counts_a_function_only_from_the_caller_its_stage_names():
    profiler = cProfile.Profile()
    profiler.enable()
    _from_here()
    _from_there()
    profiler.disable()
    stats = pstats.Stats(profiler)
    seconds = stage_seconds(stats, {"here": [(_work, _from_here)], "there": [(_work, _from_there)],
                                    "all": [_work], "absent": [(_work, test_stage_profile_finds_the_stage_that_ran_and_only_it)]})
    # sleep never returns early: one call from here, two from there; the two callers add up to the whole
    assert seconds["here"] >= 0.019 and seconds["there"] >= 0.039
    assert abs(seconds["here"] + seconds["there"] - seconds["all"]) < 1e-6
    assert seconds["absent"] == 0


def test_gpu_check_quick_cpu_smoke_run_writes_every_row(tmp_path, monkeypatch):
    """The GPU check script works end to end (tiny CPU inputs) before anyone spends GPU time on it, and removes
    its scratch folder (frames and random weights; 0.3 GB in the full check) when done."""
    import tempfile

    from benchmarks.gpu_check import main as gpu_check

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    out = tmp_path / "RESULTS-gpu.md"
    assert gpu_check(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    assert list((tmp_path / "tmp").glob("gpu-check-*")) == []  # (torch keeps its own compile cache there)
    text = out.read_text()
    assert "QUICK CPU SMOKE TEST" in text and "Weights: random" in text
    for row in ("FRTM backbone only", "FRTM Ours (ResNet-101)", "FRTM Ours fast", "LWL backbone only", "LWL (",
                "FRTM R (frtm-refiner)", "LWL stage 2 (lwl-stage2)"):
        assert row in text
    assert "| 0.00 |" not in text and "not run" not in text and "out of GPU memory" not in text


def test_gpu_check_refuses_without_cuda(capsys):
    from benchmarks.gpu_check import main as gpu_check

    if torch.cuda.is_available():
        return  # the refusal is for machines without a GPU
    assert gpu_check(["--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def _bench(name, median, group="g", rounds=3, **extra):
    return {"name": name, "group": group, "stats": {"median": median, "rounds": rounds}, "extra_info": extra}


def test_report_gives_each_row_its_speed_relative_to_the_reference_and_the_recorded_time():
    from benchmarks.report import render

    run = {"datetime": "2026-12-01T00:00:00", "commit_info": {"id": "abcdef123", "dirty": True},
           "machine_info": {"cpu": {"brand_raw": "Some CPU", "count": 2}, "python_version": "3.11.7"},
           "benchmarks": [
               _bench("test[vb]", 8.0, label="vos-benchmark", reference=True, recorded_seconds={"official": 20.0}),
               _bench("test[ours]", 2.0, label="ours", recorded_seconds={"official": 20.0}, **{"J&F": 0.7661}),
               _bench("test[backbone]", 0.5, group="speed", label="backbone only", reference=True, frames=10),
               _bench("test[variant]", 2.5, group="speed", label="variant", frames=10)]}
    text = render(run)
    assert "commit abcdef1 with uncommitted changes; Some CPU, 2 cores" in text
    assert "| run | median s | rounds | speed vs vos-benchmark | speed vs official | J&F |" in text
    assert "| vos-benchmark | 8 | 3 | 1.000 | 2.500 |  |" in text
    assert "| ours | 2 | 3 | 4.000 | 10.0 | 76.61 |" in text  # 8 / 2 and 20 / 2
    assert "| official | 20 | recorded | 0.400 | 1.000 |  |" in text
    assert "| run | median s | rounds | FPS | speed vs backbone only |" in text
    assert "| backbone only | 0.5 | 3 | 20.00 | 1.000 |" in text
    assert "| variant | 2.5 | 3 | 4.00 | 0.200 |" in text  # FPS ratio 4 / 20


def test_report_refuses_a_group_with_two_references_and_a_file_that_is_no_run(tmp_path):
    import pytest

    from benchmarks.report import group_table, load_run, main

    with pytest.raises(ValueError, match="group 'g' has 2 reference rows"):
        group_table("g", [_bench("a", 1.0, reference=True), _bench("b", 1.0, reference=True)])
    other = tmp_path / "other.json"
    other.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="other.json: no 'benchmarks' list"):
        load_run(other)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.json")])


def test_speed_checkpoints_name_a_benchmarked_variant_and_an_existing_file(tmp_path):
    import pytest

    from benchmarks.method_speed import parse_checkpoints

    head = tmp_path / "head.pt"
    head.write_bytes(b"")
    assert parse_checkpoints([f"frtm:ours={head}"]) == {"frtm": {"ours": str(head)}, "lwl": {}}
    with pytest.raises(ValueError, match="give METHOD:VARIANT=PATH"):
        parse_checkpoints([f"frtm:dv17={head}"])
    with pytest.raises(ValueError, match="is not a file"):
        parse_checkpoints([f"lwl:full={tmp_path / 'missing.pt'}"])


def test_speed_sequences_are_cut_to_the_first_frames(shared):
    from benchmarks.method_speed import load_sequences

    root = shared / "data/davis2016"
    (whole,) = load_sequences(root, ["blackswan"], None)
    (cut,) = load_sequences(root, ["blackswan"], 5)
    assert len(whole.frames) == 50 and cut.frames == whole.frames[:5] and cut.name == "blackswan"


def test_benchmarks_collect_with_their_options_and_groups():
    """The benchmark modules and their options load (no timing: --collect-only)."""
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "-o", "addopts=", "-p", "no:cacheprovider",
                             "--collect-only", "-q", "--speed-frames", "5", "--evaluator-workers", "1"],
                            cwd=repo, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for test in ("test_method_speed[frtm-backbone only]", "test_method_speed[lwl-full]",
                 "test_evaluator_speed[davis16-vos-benchmark-side-by-side]",
                 "test_evaluator_speed[multiobject-ours-warm]",
                 "test_upsampler_forward_backward[shifted sums, autograd-2x16x120x216]",
                 "test_upsampler_forward_backward[shifted sums, written-out backward-2x16x120x216]"):
        assert test in result.stdout
    assert "multiobject-ours-cold-side-by-side" not in result.stdout


def test_coarse_ceiling_grid_is_that_of_four_padded_stride_two_convolutions():
    from benchmarks.frtm_coarse_ceiling import feature_grid

    halving = torch.nn.Sequential(*[torch.nn.Conv2d(1, 1, 3, stride=2, padding=1) for _ in range(4)])
    for size in [(240, 432), (480, 854), (17, 31)]:
        assert feature_grid(size) == tuple(halving(torch.zeros(1, 1, *size)).shape[-2:])
    assert feature_grid((240, 432)) == (15, 27)


def test_coarse_ceiling_keeps_what_the_grid_can_draw_and_loses_what_it_cannot():
    from benchmarks.frtm_coarse_ceiling import best_coarse_mask
    from metrics.measures import jaccard

    block = np.zeros((240, 432), dtype=bool)
    block[64:160, 96:288] = True  # a large object on the stride-16 grid
    assert jaccard(block, best_coarse_mask(block, (240, 432), block.shape)) > 0.95
    line = np.zeros((240, 432), dtype=bool)
    line[100:103, 40:400] = True  # 3 pixels thin: below what a 16-pixel grid can draw
    at_cpu_size = jaccard(line, best_coarse_mask(line, (240, 432), line.shape))
    at_native = jaccard(line, best_coarse_mask(line, (480, 864), line.shape))
    assert at_cpu_size < 0.5
    assert at_native > at_cpu_size  # a finer grid draws more of it


def _osvos_like(root: Path) -> Path:
    """A folder laid out as ../shared/data/davis2017-val-osvos: two multi-object sequences, one single."""
    from vos_datasets.masks import write_label_png

    rng = np.random.default_rng(0)
    for name, n_objects in (("zebra", 1), ("apes", 3), ("bees", 2)):
        for frame in range(5):
            ids = np.zeros((40, 60), np.uint8)
            for oid in range(1, n_objects + 1):
                y, x = rng.integers(0, 30), rng.integers(0, 50)
                ids[y:y + 10, x:x + 10] = oid
            write_label_png(root / name / f"{frame:05d}.png", ids)
    return root


def test_toolkit_side_by_side_set_choice_and_layout(tmp_path):
    """The side-by-side set: multi-object sequences first; the toolkit's DAVIS folder (ImageSets naming them,
    the ground truth as it is, an empty JPEG per mask) and predictions with only the first frame's ids."""
    from benchmarks.evaluator_vs_toolkit import build_set, choose_sequences
    from vos_datasets.masks import read_label_png

    osvos = _osvos_like(tmp_path / "osvos")
    assert choose_sequences(osvos) == ["apes", "bees", "zebra"]
    assert choose_sequences(osvos, 2) == ["apes", "bees"]
    paths = build_set(tmp_path / "work", osvos, ["apes", "zebra"])
    assert (paths["root"] / "ImageSets/2017/val.txt").read_text() == "apes\nzebra\n"
    for name, n_objects in (("apes", 3), ("zebra", 1)):
        for png in sorted((osvos / name).glob("*.png")):
            np.testing.assert_array_equal(read_label_png(paths["gt"] / name / png.name), read_label_png(png))
            pred = read_label_png(paths["pred"] / name / png.name)
            assert pred.shape == (40, 60) and int(pred.max()) <= n_objects
            assert (paths["root"] / "JPEGImages/480p" / name / f"{png.stem}.jpg").stat().st_size == 0


def test_toolkit_side_by_side_predictions_are_perturbed_and_reproducible():
    from benchmarks.evaluator_vs_toolkit import perturbed_prediction

    ids = np.zeros((120, 160), np.uint8)
    ids[10:60, 10:70], ids[50:110, 80:150], ids[0:20, 100:160] = 1, 2, 4  # id 4: above the objects scored
    first = [perturbed_prediction(ids, 3, np.random.default_rng(seed)) for seed in range(20)]
    again = [perturbed_prediction(ids, 3, np.random.default_rng(seed)) for seed in range(20)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(set(np.unique(p).tolist()) <= {0, 1, 2, 3} for p in first)
    assert sum(not np.array_equal(p, np.where(ids > 3, 0, ids)) for p in first) >= 10


def test_toolkit_side_by_side_needs_the_toolkit(monkeypatch, capsys):
    from benchmarks.evaluator_vs_toolkit import main

    monkeypatch.delenv("DAVIS2017_TOOLKIT_PYTHON", raising=False)
    monkeypatch.delenv("DAVIS2017_TOOLKIT_SOURCE", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2 and "--toolkit-python" in capsys.readouterr().err


def test_unsupervised_side_by_side_set_has_void_and_proposals_under_other_ids(tmp_path):
    """The unsupervised side-by-side set: the toolkit's folder (Annotations_unsupervised, an empty JPEG per mask),
    ground truth = the masks with a void ring, proposals 1..objects + 4 that score like the objects under other ids;
    built the same way twice."""
    from benchmarks.unsupervised_vs_toolkit import build_osvos_set
    from metrics import evaluate
    from vos_datasets.masks import read_label_png

    osvos = _osvos_like(tmp_path / "osvos")
    paths = build_osvos_set(tmp_path / "work", osvos, ["apes", "bees"])
    again = build_osvos_set(tmp_path / "again", osvos, ["apes", "bees"])
    assert (paths["root"] / "ImageSets/2017/val.txt").read_text() == "apes\nbees\n"
    for name, n_objects in (("apes", 3), ("bees", 2)):
        for png in sorted((osvos / name).glob("*.png")):
            ids, gt = read_label_png(png), read_label_png(paths["gt"] / name / png.name)
            assert np.array_equal(gt[gt != 255], ids[gt != 255]) and (gt == 255).any() and not (ids[gt == 255]).any()
            pred = read_label_png(paths["pred"] / name / png.name)
            assert 0 < int(pred.max()) <= n_objects + 4
            assert np.array_equal(pred, read_label_png(again["pred"] / name / png.name))
            assert (paths["root"] / "JPEGImages/480p" / name / f"{png.stem}.jpg").stat().st_size == 0
    result = evaluate(paths["gt"], paths["pred"], workers=1, progress=False, task="unsupervised")
    assert {seq.sequence: sorted(obj for _, obj in seq.matches.values()) for seq in result.sequences} == \
        {"apes": [1, 2, 3], "bees": [1, 2]}  # every object matched to a proposal


def test_unsupervised_side_by_side_needs_the_toolkit(monkeypatch, capsys):
    from benchmarks.unsupervised_vs_toolkit import main

    monkeypatch.delenv("DAVIS2017_TOOLKIT_PYTHON", raising=False)
    monkeypatch.delenv("DAVIS2017_TOOLKIT_SOURCE", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2 and "--toolkit-python" in capsys.readouterr().err


def test_lwl_decoder_init_gives_each_init_its_first_step_and_the_preflights_verdict(tmp_path, capsys):
    """benchmarks/lwl_decoder_init.py on the ci preset's LWL training with the paper's recipe (Lovasz, frozen
    BatchNorm) in place of its CPU one, random backbone: a row per init; He init's logits saturate, PyTorch's
    start near 0 (docs/lwl.md, "Decoder initialisation")."""
    import yaml

    from benchmarks.lwl_decoder_init import main as decoder_init_main
    from vos_datasets import synthetic

    repo = Path(__file__).resolve().parent.parent
    preset = yaml.safe_load((repo / "config/presets/ci.yaml").read_text())
    training = preset["trainings"]["lwl-weight-predictor"]
    training["settings"].update(loss="lovasz", decoder_batch_statistics=False, learning_rates={})
    (tmp_path / "preset.yaml").write_text(yaml.safe_dump({"trainings": {"lwl-paper-recipe": training}}))
    frames = synthetic.generate(tmp_path / "d", seed=5, n_train=2, n_val=1, n_frames=8)
    assert decoder_init_main(["--preset", str(tmp_path / "preset.yaml"), "--training", "lwl-paper-recipe",
                              "--dataset", str(frames), "--batch-size", "1"]) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        if " | init " in line:
            columns = dict(column.rsplit(" ", 1) for column in line.split(" | ") if not column.startswith("preflight"))
            rows[columns["init"]] = {key: value if key == "init" else float(value) for key, value in columns.items()}
            rows[columns["init"]]["preflight"] = line.split(" | preflight ")[1].split(" | ")[0]
    assert sorted(rows) == ["he", "pytorch"]
    assert rows["he"]["saturated %"] > 50 and rows["he"]["std"] > 20 and rows["he"]["loss"] > 90
    assert rows["pytorch"]["saturated %"] == 0 and rows["pytorch"]["std"] < 0.1 and rows["pytorch"]["preflight"] == "passes"
    assert all(rows[init]["|g| decoder"] > 0 for init in rows)
    with pytest.raises(SystemExit):
        decoder_init_main(["--preset", str(tmp_path / "preset.yaml"), "--training", "nope", "--dataset", str(frames)])
    assert "no LWL training 'nope'" in capsys.readouterr().err
