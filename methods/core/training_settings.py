"""Settings every training shares, checked without torch (the workflow checks each training's settings when
it builds its DAG: methods.registry); the training loop that reads them is methods.core.trainer."""

from __future__ import annotations

VALIDATION_DEFAULTS = {"samples": 8, "every": 5}


def validation_settings(value: dict | None) -> dict | None:
    """A training's `validation` setting checked, with its defaults: None (no validation) or
    {"dataset": <build_dataset spec>, "samples": N held-out samples (8), "every": E epochs (5; the last
    epoch is always measured)}."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("dataset"), dict):
        raise ValueError(f"validation={value!r}: null, or {{'dataset': {{...}}, 'samples': N, 'every': E}}")
    unknown = sorted(set(value) - {"dataset", *VALIDATION_DEFAULTS})
    if unknown:
        raise ValueError(f"validation: unknown keys {unknown}; known: dataset, samples, every")
    settings = {**VALIDATION_DEFAULTS, **value}
    for key in VALIDATION_DEFAULTS:
        if isinstance(settings[key], bool) or not isinstance(settings[key], int) or settings[key] < 1:
            raise ValueError(f"validation.{key}={settings[key]!r}: a whole number >= 1")
    return settings
