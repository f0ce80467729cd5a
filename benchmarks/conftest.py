"""Options and fixtures of the speed benchmarks (pytest-benchmark). They run outside the test suite (testpaths is
tests/, and addopts skips benchmarks): `make bench`, or

    pytest benchmarks -o addopts= --benchmark-min-rounds=3 --benchmark-json=run.json [--speed-... options]

Benchmarks whose setup must stay outside the timing run in pedantic mode: --benchmark-min-rounds rounds (default
5) and, with --benchmark-warmup=on, one untimed round first. Without it the median discards a first round's
start-up costs (kernel selection, memory allocation) anyway.
"""

from __future__ import annotations

import pytest

from vos_datasets.shared import ENV_VAR, shared_dir


def pytest_addoption(parser):
    group = parser.getgroup("speed", "the suite's speed benchmarks (benchmarks/)")
    group.addoption("--speed-sequences", nargs="+", default=["blackswan"], metavar="NAME",
                    help="method speed: DAVIS 2016 val sequences (default: blackswan)")
    group.addoption("--speed-frames", type=int, default=20, metavar="N",
                    help="method speed: the first N frames of each sequence; 0: all (default: 20)")
    group.addoption("--speed-input-size", nargs=2, type=int, default=[240, 432], metavar=("H", "W"),
                    help="method speed: FRTM's frame size, LWL's crop size (default: 240 432, the CPU presets')")
    group.addoption("--speed-backbone", default="efficientnet_lite0",
                    help="method speed: backbone of FRTM and of LWL's random networks (default: efficientnet_lite0)")
    group.addoption("--speed-lwl-decoder-widths", nargs=4, type=int, default=[64, 64, 64, 32], metavar="C",
                    help="method speed: decoder widths of LWL's random networks (default: 64 64 64 32, the "
                         "CPU presets')")
    group.addoption("--speed-device", default="cpu", help="method speed: torch device (default: cpu)")
    group.addoption("--speed-threads", type=int, metavar="N",
                    help="method speed: torch CPU threads (default: torch's own, one per core)")
    group.addoption("--speed-checkpoint", action="append", default=[], metavar="METHOD:VARIANT=PATH",
                    help="method speed: a variant's trained checkpoint, e.g. "
                         "frtm:ours=results/davis2016/training/frtm-refiner/head.pt (repeatable); "
                         "variants without one get random weights")
    group.addoption("--evaluator-workers", type=int, default=2, metavar="N",
                    help="evaluator speed: worker processes of each evaluator (default: 2)")


@pytest.fixture(scope="session")
def shared():
    """The shared data folder; benchmarks that need it skip, saying why, when it is absent."""
    root = shared_dir()
    if root is None:
        pytest.skip(f"needs the shared data folder (../shared beside the repository, or ${ENV_VAR})")
    return root


@pytest.fixture(scope="session")
def pedantic(request) -> dict:
    """benchmark.pedantic's rounds from the command line: --benchmark-min-rounds, --benchmark-warmup."""
    config = request.config
    return {"rounds": config.getoption("benchmark_min_rounds"),
            "warmup_rounds": 1 if config.getoption("benchmark_warmup") else 0}


def pytest_configure(config):
    if config.getoption("speed_threads"):
        import torch

        torch.set_num_threads(config.getoption("speed_threads"))


def pytest_benchmark_update_machine_info(config, machine_info):
    """torch's version and CPU threads beside pytest-benchmark's machine description (--benchmark-compare warns
    when they differ from the stored run's)."""
    import torch

    machine_info["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                             "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
