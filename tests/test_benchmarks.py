"""The benchmark scripts' own logic (their timings are benchmarks, never tests)."""

from __future__ import annotations

import cProfile
import pstats
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.frtm_stage_profile import stage_seconds  # noqa: E402
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
    seconds = stage_seconds(pstats.Stats(profiler))
    assert seconds["target model updates (Gauss-Newton)"] > 0
    assert all(value == 0 for stage, value in seconds.items() if stage != "target model updates (Gauss-Newton)")
