"""Every method's settings by method name, built as the jobs build them: a row's inference settings as
`python -m methods infer` does (the tracker's `<Method>Settings.from_dict`), a training's as
`python -m methods.<method>.training` does (`TrainingConfig.from_dict`).

The workflow runs these on every row and training when it builds the DAG (workflow/rules/common.smk), so a
typo or a wrong type in config/variants.yaml or a preset fails `snakemake -n` rather than a job after the
trainings. Nothing here builds a network or reads weights; each method's module is imported only when a row
or training of that method is checked.
"""

from __future__ import annotations

import importlib

# method -> "module:callable" building its settings from a dict (ValueError when they are refused)
INFERENCE = {
    "first_frame_copy": "methods.first_frame_copy:FirstFrameCopy",  # no settings: its constructor refuses any
    "frtm": "methods.frtm.settings:FRTMSettings.from_dict",
    "lwl": "methods.lwl.settings:LWLSettings.from_dict",
}
TRAINING = {
    "frtm": "methods.frtm.training:TrainingConfig.from_dict",
    "lwl": "methods.lwl.training:TrainingConfig.from_dict",
}


def _builder(table: dict, method: str, what: str):
    if method not in table:
        raise ValueError(f"unknown method {method!r} for {what}; known: {sorted(table)}")
    module, _, name = table[method].partition(":")
    built = importlib.import_module(module)
    for part in name.split("."):
        built = getattr(built, part)
    return built


def inference_settings(method: str, values: dict):
    """The settings object a row's job builds from `values` (its --settings JSON); ValueError (a
    methods.core.settings.SettingError where one key is to blame) when the job would refuse them."""
    build = _builder(INFERENCE, method, "inference")
    return build(**values) if method == "first_frame_copy" else build(values)


def training_settings(method: str, values: dict):
    """The TrainingConfig a training's job builds from `values` (its --config JSON); ValueError as above."""
    return _builder(TRAINING, method, "training")(values)
