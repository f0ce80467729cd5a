"""A row's or a training's settings are checked when the workflow builds its DAG, as their jobs will read them
(methods.settings): a typo or a wrong type fails `snakemake -n` in one line, not an infer job after the
trainings (issue 19, item 18)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from methods.core.settings import SettingError
from methods.settings import inference_settings, training_settings

from .test_workflow import REPO, edit_embedded_preset, snakemake, workflow_copy, youtube_vos_paths


def edit_variants(work: Path, change) -> None:
    variants = work / "config/variants.yaml"
    data = yaml.safe_load(variants.read_text())
    change(data)
    variants.write_text(yaml.safe_dump(data))


def refused(work: Path, *args: str) -> str:
    """The error line of a dry run that must fail while the Snakefile is parsed (one line, no traceback)."""
    done = snakemake(work, "-n", *args, check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-2000:]
    assert "Traceback" not in out and len(out.splitlines()) < 8, out[-2000:]
    return out


def test_a_typo_in_a_variant_fails_the_dry_run(tmp_path):
    work = workflow_copy(tmp_path)
    edit_variants(work, lambda data: data["frtm"]["fast"]["settings"].update(updte_interval=16))
    out = refused(work)
    assert (
        "config/variants.yaml frtm.fast (preset embedded, row frtm-fast): unknown FRTM settings "
        "['updte_interval'] (did you mean 'update_interval'?); known settings: augmented_samples, "
    ) in out


def test_a_typo_in_a_preset_row_fails_the_dry_run(tmp_path):
    work = workflow_copy(tmp_path)
    edit_embedded_preset(
        work, lambda data: data["rows"]["frtm-base-net-ft"]["settings"].update(fine_tune_iteratons=5)
    )
    out = refused(work)
    assert (
        "config/presets/embedded.yaml rows.frtm-base-net-ft.settings: unknown FRTM settings "
        "['fine_tune_iteratons'] (did you mean 'fine_tune_iterations'?)"
    ) in out
    work = workflow_copy(tmp_path / "second")
    edit_embedded_preset(work, lambda data: data["rows"]["first-frame-copy"].update(settings={"c": 1}))
    assert (
        "config/presets/embedded.yaml rows.first-frame-copy: first_frame_copy takes no settings, got ['c']"
        in refused(work)
    )


def test_a_wrong_type_fails_the_dry_run(tmp_path):
    work = workflow_copy(tmp_path)
    edit_embedded_preset(work, lambda data: data["method_defaults"]["lwl"].update(init_iterations="20"))
    assert (
        "config/presets/embedded.yaml method_defaults.lwl (row lwl): LWL settings: init_iterations='20' is a "
        "string, expected an integer (a number in quotes?"
    ) in refused(work)
    work = workflow_copy(tmp_path / "second")
    edit_variants(work, lambda data: data["frtm"]["fast"]["settings"].update(init_cg_iterations=[5, "ten"]))
    assert (
        "config/variants.yaml frtm.fast (preset embedded, row frtm-fast): FRTM settings: "
        "init_cg_iterations=[5, 'ten'] is a list, expected a list of integers"
    ) in refused(work)


def test_a_training_settings_typo_or_wrong_type_fails_the_dry_run(tmp_path):
    work = workflow_copy(tmp_path)
    edit_embedded_preset(
        work, lambda data: data["trainings"]["frtm-d-only"]["settings"].update(learning_rat=0.05)
    )
    assert (
        "config/presets/embedded.yaml trainings.frtm-d-only.settings: unknown FRTM training settings "
        "['learning_rat'] (did you mean 'learning_rate'?)"
    ) in refused(work)
    work = workflow_copy(tmp_path / "second")
    edit_embedded_preset(work, lambda data: data["trainings"]["lwl-stage2"]["settings"].update(epochs="1"))
    assert (
        "config/presets/embedded.yaml trainings.lwl-stage2.settings: LWL training settings: epochs='1' is a "
        "string, expected an integer"
    ) in refused(work)


PRESETS = sorted(p.stem for p in (REPO / "config/presets").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_a_typo_in_any_preset_fails_the_dry_run(tmp_path, preset):
    """Every row and training of every preset is checked while the DAG is built: a typo in the preset's last
    row (the paper's: a released-weights row, checked although it is left out without the weights) or in its
    last training fails `snakemake -n` in one line naming the file, the entry and the key. A preset that is part
    of another (`subset_of`: the released preset) has that one's rows: the message names the file they are in."""
    data = yaml.safe_load((REPO / f"config/presets/{preset}.yaml").read_text())
    rows_in = data.get("subset_of", {}).get("preset", preset)
    row = list(yaml.safe_load((REPO / f"config/presets/{rows_in}.yaml").read_text())["rows"])[-1]

    def misspell(entry):  # a copy: YAML anchors may share one settings mapping between entries
        entry["settings"] = {**entry.get("settings", {}), "no_such_setting": 1}

    work = workflow_copy(tmp_path)
    edit_preset(work, rows_in, lambda data: misspell(data["rows"][row]))
    out = refused(work, "--config", f"preset={preset}")
    assert f"config/presets/{rows_in}.yaml rows.{row}" in out and "['no_such_setting']" in out, out
    if not data.get("trainings"):  # the released preset trains nothing
        return
    training = list(data["trainings"])[-1]
    work = workflow_copy(tmp_path / "training")
    edit_preset(work, preset, lambda data: misspell(data["trainings"][training]))
    out = refused(work, "--config", f"preset={preset}")
    assert (f"config/presets/{preset}.yaml trainings.{training}.settings: unknown" in out
            and "['no_such_setting']" in out), out


def edit_preset(work: Path, preset: str, change) -> None:
    path = work / f"config/presets/{preset}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_shipped_preset_passes_the_check(tmp_path, preset):
    """No false positives: every row (the released-weights ones too) and every training of every preset.
    Parsing the Snakefile runs the check: listing the rules parses it without a DAG (no dataset needed).
    Snakemake runs with torch unimportable: the check and the DAG need none (methods.registry)."""
    released = tmp_path / "released"
    released.mkdir()
    # the paper preset's reports name every dataset's folder, YouTube-VOS's too
    paths = [youtube_vos_paths(tmp_path)] if preset == "paper" else []
    done = snakemake(
        workflow_copy(tmp_path),
        "--list-rules",
        "--config",
        f"preset={preset}",
        f"released_weights={released}",
        *paths,
        torch=False,
    )
    assert "infer" in done.stdout.split()


def test_the_check_is_the_jobs_own():
    """The check builds what the jobs build, with the types the dataclasses declare."""
    settings = inference_settings(
        "frtm",
        {"checkpoint": "x.pt", "input_size": None, "regularisation": [0, 1e-4], "cg_forgetting_rate": 750},
    )
    assert settings.cg_forgetting_rate == 750 and settings.input_size is None
    assert (
        inference_settings("lwl", {"checkpoint": "x.pt", "first_weight_floor": None}).first_weight_floor
        is None
    )
    assert inference_settings("first_frame_copy", {}) is None  # it takes no settings: nothing to build
    with pytest.raises(SettingError, match=r"device=3 is an integer, expected a string") as error:
        inference_settings("lwl", {"checkpoint": "x.pt", "device": 3})
    assert error.value.key == "device"
    with pytest.raises(SettingError, match="update=1 is an integer, expected true or false"):
        inference_settings("frtm", {"checkpoint": "x.pt", "update": 1})
    with pytest.raises(SettingError, match="epochs=True is true or false, expected an integer"):
        training_settings("frtm", {"sources": [{"dataset": {}, "repeats": 1}], "epochs": True})
    with pytest.raises(ValueError, match="target_feature_scale='0.5' is a string, expected a number or null"):
        inference_settings("frtm", {"checkpoint": "x.pt", "target_feature_scale": "0.5"})
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        inference_settings("nope", {})


def test_backbone_weights_are_checked_by_name():
    """The named pretrained weights (methods.core.backbone_names): V1 by default, V2 only when named, a name
    the backbone lacks (or a file path, which goes in backbone_weights_file) refused in one line."""
    assert inference_settings("frtm", {"checkpoint": "x.pt"}).pretrained_weights().name == "IMAGENET1K_V1"
    named = inference_settings("frtm", {"checkpoint": "x.pt", "backbone_weights": "IMAGENET1K_V2"})
    assert named.pretrained_weights().file_name == "resnet101-cd907fc2.pth"
    with pytest.raises(ValueError, match=r"^FRTM setting backbone_weights='IMAGENET1K_V2' is not a weights name "
                                         r"of resnet18: choose one of \['IMAGENET1K_V1'\]"):
        inference_settings("frtm", {"checkpoint": "x.pt", "backbone": "resnet18", "backbone_weights": "IMAGENET1K_V2"})
    with pytest.raises(ValueError, match="a local file of those weights goes in backbone_weights_file"):
        training_settings("frtm", {"sources": [{"dataset": "d", "repeats": 1}], "backbone_weights": "/w/r101.pth"})
    sources = [{"dataset": "d", "weight": 1}]
    lwl = training_settings("lwl", {"sources": sources, "network": {"backbone": "resnet50_mrcnn"}})
    assert lwl.pretrained_weights().file_name == "e2e_mask_rcnn_R_50_FPN_1x_converted.pkl"
    with pytest.raises(ValueError, match="not a weights name of resnet50_mrcnn"):
        training_settings("lwl", {"sources": sources, "network": {"backbone": "resnet50_mrcnn"},
                                  "backbone_weights": "IMAGENET1K_V1"})


def test_an_frtm_row_runs_the_weights_its_head_was_trained_on():
    from methods.registry import check_training

    check_training("frtm", {"backbone": "resnet101"}, {"backbone_weights": "IMAGENET1K_V1"})
    with pytest.raises(ValueError, match="it runs backbone resnet101 with weights IMAGENET1K_V2, but its training "
                                         "fits the head on resnet101 with IMAGENET1K_V1"):
        check_training("frtm", {"backbone_weights": "IMAGENET1K_V2"}, {"backbone": "resnet101"})


def test_a_row_on_other_backbone_weights_than_its_training_fails_the_dry_run(tmp_path):
    work = workflow_copy(tmp_path)
    edit_embedded_preset(work, lambda data: data["rows"]["frtm-ours"].setdefault("settings", {}).update(
        backbone="resnet101"))
    out = refused(work)
    assert "rows.frtm-ours: it runs backbone resnet101 with weights IMAGENET1K_V1, but its training fits" in out
