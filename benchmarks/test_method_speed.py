"""Method speed (pytest-benchmark): every FRTM and LWL variant beside its backbone's own forward pass on the same
frames, one benchmark group per method so the table shows them side by side. `python benchmarks/report.py
RUN.json` turns a run's medians into FPS and the ratio to backbone-only (the FRTM paper's speed figure).

    pytest benchmarks/test_method_speed.py -o addopts= --benchmark-min-rounds=3 --benchmark-json=run.json
    pytest benchmarks/test_method_speed.py -o addopts= -k frtm --speed-sequences blackswan camel --speed-frames 0 \\
        --speed-checkpoint frtm:ours=results/davis2016/training/frtm-refiner/head.pt

A round is one pass of the method (or of the backbone alone) over every frame of --speed-sequences (the first
--speed-frames of each), the method built before timing starts; the protocol is in benchmarks/method_speed.py.
FPS = frames / median seconds of a round: over several sequences that is weighted by frames, where the FRTM
paper averages FPS over sequences. Options: benchmarks/conftest.py (`pytest benchmarks --help`, "speed").
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.method_speed import VARIANTS, load_sequences, parse_checkpoints, speed_runs

BACKBONE_ONLY = "backbone only"
RUNS = [(method, run) for method, variants in VARIANTS.items() for run in [BACKBONE_ONLY, *variants]]


@pytest.fixture(scope="module")
def sequences(request, shared) -> list:
    option = request.config.getoption
    return load_sequences(shared / "data/davis2016", option("speed_sequences"), option("speed_frames") or None)


@pytest.fixture(scope="module")
def method_runs(request, tmp_path_factory):
    """method -> its SpeedRuns, built once (random weights are written to a scratch folder)."""
    option = request.config.getoption
    try:
        checkpoints = parse_checkpoints(option("speed_checkpoint"))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    built = {}

    def get(method: str):
        if method not in built:
            built[method] = speed_runs(method, option("speed_backbone"), option("speed_input_size"),
                                       option("speed_device"), tmp_path_factory.mktemp(f"speed-{method}"),
                                       checkpoints[method], option("speed_lwl_decoder_widths"))
        return built[method]
    return get


@pytest.mark.parametrize(("method", "run"), RUNS, ids=[f"{method}-{run}" for method, run in RUNS])
def test_method_speed(benchmark, pedantic, sequences, method_runs, method, run):
    runs = method_runs(method)
    size = "x".join(map(str, runs.input_size)) if runs.input_size else "native"
    benchmark.group = f"{method.upper()} speed: {runs.backbone_name}, input {size}, {runs.device.type}"
    benchmark.extra_info.update(label=run, frames=sum(len(s.frames) for s in sequences),
                                sequences=[s.name for s in sequences], threads=torch.get_num_threads())
    if run == BACKBONE_ONLY:
        benchmark.extra_info["reference"] = True
        target = runs.backbone_round(sequences)
    else:
        benchmark.extra_info["weights"] = runs.weights(run)
        target = runs.variant_round(runs.build_variant(run), sequences)
    benchmark.pedantic(target, **pedantic)
