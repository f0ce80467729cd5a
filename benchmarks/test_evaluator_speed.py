"""Evaluator speed (pytest-benchmark) on the official-toolkit fixtures: the suite's evaluator cold, building its
ground-truth cache and warm, beside vos-benchmark on identical inputs with the same number of workers, one
benchmark group per fixture. `python benchmarks/report.py RUN.json` adds each row's speed relative to
vos-benchmark and to the official toolkit's wall time recorded in the fixture.

    make bench        # installs vos-benchmark (pip --no-deps), runs every benchmark, writes the JSON and report
    pytest benchmarks/test_evaluator_speed.py -o addopts= --benchmark-min-rounds=5 --evaluator-workers 2

What each configuration times: benchmarks/evaluator_speed.py. Every round's J&F of the suite's evaluator must
equal the official toolkit's (asserted); vos-benchmark's is recorded beside its time (on the multi-object
fixture it differs: RESULTS-evaluator.md says why).
"""

from __future__ import annotations

import shutil

import pytest

from benchmarks.evaluator_speed import (
    OFFICIAL,
    VOS_BENCHMARK,
    copy_for_vos_benchmark,
    fixture_record,
    prepare,
    score_ours,
    score_vos_benchmark,
)

# id -> (row label, ground truth: the fixture's or the 0/1 copy both evaluators read, ground-truth cache)
CONFIGURATIONS = {
    "ours-cold": ("ours, cold (no cache), fixture inputs", "gt", None),
    "ours-cache-build": ("ours, building the ground-truth cache", "gt", "build"),
    "ours-warm": ("ours, warm cache, fixture inputs", "gt", "warm"),
    "ours-cold-side-by-side": ("ours, cold, side-by-side inputs", "gt_same_for_both", None),
    "vos-benchmark-side-by-side": (f"{VOS_BENCHMARK}, side-by-side inputs", "gt_same_for_both", None),
}
# The multi-object fixture's inputs are already the side-by-side ones (palette PNGs, the same files); a warm cache
# holds decoded labels, so its time does not depend on the PNGs' format.
RUNS = [(case, configuration) for case in ("davis16", "multiobject") for configuration in CONFIGURATIONS
        if not (case == "multiobject" and configuration == "ours-cold-side-by-side")]


@pytest.fixture(scope="module")
def inputs(shared, tmp_path_factory) -> dict:
    return prepare(tmp_path_factory.mktemp("evaluator-speed"), shared)


@pytest.mark.parametrize(("case", "configuration"), RUNS, ids=[f"{case}-{conf}" for case, conf in RUNS])
def test_evaluator_speed(benchmark, pedantic, request, shared, inputs, tmp_path, case, configuration):
    label, gt_key, cache_use = CONFIGURATIONS[configuration]
    workers = request.config.getoption("evaluator_workers")
    case_inputs, gt = inputs[case], inputs[case][gt_key]
    if case == "multiobject" and gt_key == "gt":
        label += " (= side-by-side inputs)"
    official_seconds, official_jf = fixture_record(shared, case_inputs)
    benchmark.group = f"evaluator speed: {case} fixture, {workers} workers"
    benchmark.extra_info.update(label=label, recorded_seconds={OFFICIAL: official_seconds})
    setup = None
    if configuration.startswith("vos-benchmark"):
        pytest.importorskip("vos_benchmark", reason="vos-benchmark is not installed (make bench installs it: "
                                                    "pip install --no-deps vos-benchmark==0.1.0)")
        benchmark.extra_info["reference"] = True
        pred_copy = copy_for_vos_benchmark(case_inputs["pred"], tmp_path)
        jf = benchmark.pedantic(lambda: score_vos_benchmark(gt, pred_copy, workers), **pedantic)
    else:
        cache = tmp_path / "gt-cache" if cache_use else None
        if cache_use == "build":
            def setup():
                shutil.rmtree(cache, ignore_errors=True)
        elif cache_use == "warm":
            score_ours(case_inputs, gt, workers, cache)  # fills the cache, untimed
        jf = benchmark.pedantic(lambda: score_ours(case_inputs, gt, workers, cache), setup=setup, **pedantic)
        assert abs(jf - official_jf) < 1e-6, f"{label}: J&F {jf} differs from the official toolkit's {official_jf}"
    benchmark.extra_info["J&F"] = jf
