from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vos_datasets.masks import write_label_png
from vos_datasets.shared import ENV_VAR, shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data folder; tests that need it skip, saying why, when it is absent."""
    root = shared_dir()
    if root is None:
        pytest.skip(f"needs the shared data folder (../shared beside the repository, or ${ENV_VAR})")
    return root


@pytest.fixture(scope="session")
def davis16_val_names(shared) -> list[str]:
    from vos_datasets.davis import read_image_set

    return read_image_set(shared / "data/davis2016/ImageSets/480p/val.txt")


@pytest.fixture(scope="session")
def davis16_osvos_pred(shared, davis16_val_names, tmp_path_factory) -> Path:
    """Prediction of the DAVIS 2016 fixture: the OSVOS DAVIS 2017 masks with every id > 0 merged into 1."""
    from PIL import Image

    out = tmp_path_factory.mktemp("davis16-osvos")
    for name in davis16_val_names:
        for png in sorted((shared / "data/davis2017-val-osvos" / name).glob("*.png")):
            ids = np.asarray(Image.open(png))
            write_label_png(out / name / png.name, (ids > 0).astype(np.uint8))
    return out


def write_sequence(root: Path, name: str, frames: list[np.ndarray]) -> Path:
    for index, ids in enumerate(frames):
        write_label_png(root / name / f"{index:05d}.png", ids)
    return root / name


@pytest.fixture(scope="session")
def small_embedded(tmp_path_factory) -> Path:
    """A small embedded set (1 train, 2 val videos of 6 frames at 96x160) shared by the method tests."""
    from vos_datasets import synthetic

    return synthetic.generate(tmp_path_factory.mktemp("small-embedded") / "d", seed=2, n_train=1, n_val=2,
                              n_frames=6, height=96, width=160)
