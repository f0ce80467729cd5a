"""The official FRTM / LWL fixtures (../shared/fixtures/official: what the RELEASED code computed on the CPU),
read from where they lie, never copied. `VOS_OFFICIAL_FIXTURES` names another folder in the same format;
without either, the equivalence tests skip, saying why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from vos_datasets.shared import shared_dir

ENV_VAR = "VOS_OFFICIAL_FIXTURES"


def official_dir() -> Path | None:
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured)
    shared = shared_dir()
    return shared / "fixtures" / "official" if shared is not None else None


def load_official(name: str) -> dict:
    """One fixture file (e.g. "frtm_refiner.pt") as data (weights_only=True); skips the test when absent."""
    folder = official_dir()
    if folder is None or not (folder / name).is_file():
        where = folder / name if folder is not None else "../shared/fixtures/official"
        pytest.skip(f"needs the official fixture {where} (put ../shared beside the repository or set {ENV_VAR})")
    return torch.load(folder / name, map_location="cpu", weights_only=True)

