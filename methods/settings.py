"""Every method's settings by method name, built as the jobs build them: a row's inference settings as
`python -m methods infer` does (the settings class's `from_dict`), a training's as
`python -m <training module>` does (`TrainingConfig.from_dict`). The table of methods, and which class
each uses, is methods.registry.

The workflow runs these on every row and training of the preset when it builds the DAG
(workflow/rules/validation.smk), so a typo or a wrong type in config/variants.yaml or a preset fails
`snakemake -n` rather than a job after the trainings. Nothing here builds a network or reads weights, and
nothing imports torch.
"""

from methods.registry import inference_settings, training_settings

__all__ = ["inference_settings", "training_settings"]
