"""The benchmark scripts' own logic (their timings are benchmarks, never tests)."""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

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


def test_gpu_check_quick_cpu_smoke_run_writes_every_row(tmp_path):
    """The GPU check script works end to end (tiny CPU inputs) before anyone spends GPU time on it."""
    from benchmarks.gpu_check import main as gpu_check

    out = tmp_path / "RESULTS-gpu.md"
    assert gpu_check(["--device", "cpu", "--quick", "--out", str(out)]) == 0
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
