"""The pre-flight of every training (methods.core.preflight, run by methods.core.trainer after the first step):
the CPU-scale LWL recipe that cannot train (the paper's Lovasz loss and frozen BatchNorm with the He-initialised
decoder: docs/lwl.md, "Decoder initialisation") stops at its first step in one line naming the setting; the
recipes that train pass untouched; FRTM's training is checked by the same loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

import methods.frtm.training as frtm_training
from methods.core.preflight import SATURATED_FRACTION, ZERO_GRADIENT, OutputRecord, first_step_problem
from methods.lwl import training as lwl_training
from tests.test_frtm_training import tiny_config as tiny_frtm_config
from vos_datasets import synthetic

REPO = Path(__file__).resolve().parent.parent
# The paper's recipe (Lovasz, every BatchNorm frozen, the paper's learning rates) in place of the ci preset's
# CPU deviations, with the decoder He-initialised
PAPER_RECIPE = {"loss": "lovasz", "decoder_batch_statistics": False, "learning_rates": {}}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("preflight") / "d", seed=5, n_train=2, n_val=1, n_frames=8)


def ci_lwl_training(frames: Path, decoder_init: str | None, **changes) -> dict:
    """The ci preset's LWL training (EfficientNet-Lite0, 240x432 crops, batch 2) for one step on synthetic frames,
    its decoder initialised by `decoder_init` (None: the setting's default)."""
    preset = yaml.safe_load((REPO / "config/presets/ci.yaml").read_text())
    settings = dict(preset["trainings"]["lwl-weight-predictor"]["settings"])
    network = {key: value for key, value in settings["network"].items() if key != "decoder_init"}
    settings["network"] = network if decoder_init is None else {**network, "decoder_init": decoder_init}
    return {**settings, "epochs": 1, "iterations_per_epoch": 1, "milestones": [1],
            "sources": [{"dataset": {"kind": "davis", "root": str(frames), "split": "train"}, "weight": 1}],
            **changes}


def train_lwl(config: dict, out: Path, capsys) -> tuple[int, str]:
    """The training CLI, in this process: its exit status and what it wrote to stderr."""
    code = lwl_training.main(["--config", json.dumps(config), "--out", str(out), "--quiet"])
    return code, capsys.readouterr().err


def test_the_cpu_scale_paper_recipe_with_he_init_stops_at_the_first_step(frames, tmp_path, capsys):
    out = tmp_path / "head.pt"
    code, err = train_lwl(ci_lwl_training(frames, "he", **PAPER_RECIPE), out, capsys)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(f"error: training {out}: decoder output saturated (")
    assert "at the first step: set network decoder_init: pytorch" in err and "preflight: false" in err
    assert not out.exists() and not out.with_name(out.name + ".work").exists()  # stopped before any checkpoint


@pytest.mark.parametrize("recipe", ["ci preset (cross-entropy, decoder batch statistics, He init)",
                                    "paper recipe with the default init (the released code's)"])
def test_recipes_that_train_pass_the_preflight(frames, tmp_path, capsys, recipe):
    config = (ci_lwl_training(frames, "he") if recipe.startswith("ci")
              else ci_lwl_training(frames, None, **PAPER_RECIPE))
    code, err = train_lwl(config, tmp_path / "head.pt", capsys)
    assert code == 0, err
    assert (tmp_path / "head.pt").is_file()


def test_preflight_false_trains_the_recipe_it_would_stop(frames, tmp_path, capsys):
    code, err = train_lwl(ci_lwl_training(frames, "he", **PAPER_RECIPE, preflight=False), tmp_path / "h.pt", capsys)
    assert code == 0, err


def test_the_preflight_setting_is_not_part_of_a_checkpoints_identity(frames):
    on = lwl_training.TrainingConfig.from_dict(ci_lwl_training(frames, "he"))
    off = lwl_training.TrainingConfig.from_dict(ci_lwl_training(frames, "he", preflight=False))
    assert lwl_training.LWLTrainingJob(on).settings_json == lwl_training.LWLTrainingJob(off).settings_json
    assert "preflight" not in json.loads(lwl_training.LWLTrainingJob(on).settings_json)


def test_a_training_that_passes_trains_as_without_the_preflight(tmp_path):
    from tests.test_lwl_training import tiny_config

    embedded = synthetic.generate(tmp_path / "d", seed=4, n_train=2, n_val=1, n_frames=8, height=96, width=160)
    weights = []
    for preflight in (True, False):
        out = tmp_path / f"{preflight}.pt"
        lwl_training.train(lwl_training.TrainingConfig.from_dict(tiny_config(embedded, epochs=1, preflight=preflight)),
                           out, progress=False)
        weights.append(torch.load(out, weights_only=True)["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_a_zero_gradient_stops_frtm_training(tmp_path, monkeypatch):
    embedded = synthetic.generate(tmp_path / "d", seed=3, n_train=2, n_val=1, n_frames=6, height=96, width=160)
    config = frtm_training.TrainingConfig.from_dict(tiny_frtm_config(embedded, tmp_path / "cache", epochs=1))
    bce = frtm_training.F.binary_cross_entropy_with_logits
    monkeypatch.setattr(frtm_training.F, "binary_cross_entropy_with_logits", lambda *a, **k: bce(*a, **k) * 0.0)
    with pytest.raises(ValueError, match=r"head.pt: zero gradient \(largest element 0\) at the first step: check "
                                         r"learning_rate and head"):
        frtm_training.train(config, tmp_path / "head.pt", progress=False)
    assert not (tmp_path / "head.pt").exists()


def record(logits: list[float]) -> OutputRecord:
    outputs = OutputRecord()
    outputs.add(torch.tensor(logits))
    return outputs


def test_the_thresholds():
    """Saturated: at least 99 % of the pixels beyond |logit| 20 (only where asked: a loss that saturates, from the
    initialisation); zero: the largest gradient element below 1e-11; non-finite, unless a scaler handles it."""
    saturated = record([25.0] * 99 + [-30.0])
    assert saturated.saturated_fraction == 1.0 >= SATURATED_FRACTION
    assert saturated.std == pytest.approx(torch.tensor([25.0] * 99 + [-30.0], dtype=torch.float64).std(
        unbiased=False).item())
    assert first_step_problem(saturated, 1e-3, check_saturation=True).startswith("decoder output saturated (100.0 %")
    assert first_step_problem(saturated, 1e-3, check_saturation=False) is None
    assert first_step_problem(record([25.0] * 98 + [0.0] * 2), 1e-3, check_saturation=True) is None  # 98 %
    assert first_step_problem(record([20.0] * 100), 1e-3, check_saturation=True) is None  # not beyond 20
    calm = record([0.1, -0.2])
    assert first_step_problem(calm, ZERO_GRADIENT / 2, check_saturation=True).startswith("zero gradient")
    assert first_step_problem(calm, ZERO_GRADIENT, check_saturation=True) is None
    assert first_step_problem(calm, math.nan, check_saturation=True) == "gradient not finite"
    assert first_step_problem(calm, math.inf, check_saturation=True, check_finite=False) is None
    assert first_step_problem(saturated, 0.0, check_saturation=True).endswith("and zero gradient (largest element 0)")
