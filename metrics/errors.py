"""The evaluator's error type and the input checks shared by the DAVIS and YouTube-VOS protocols."""

from __future__ import annotations

import os
from pathlib import Path


class EvaluationError(ValueError):
    """Input the evaluator cannot score; the message names the file or folder and the fix."""


def require_predictions(pred_dir: Path, scored: list[str], video: str, which: str) -> None:
    """Raise EvaluationError naming the first scored frame without a prediction PNG in `pred_dir`.

    which: the frames a result must cover, in words, for the message.
    """
    available = set(png_stems(pred_dir))
    absent = [frame for frame in scored if frame not in available]
    if absent:
        raise EvaluationError(
            f"{pred_dir / (absent[0] + '.png')}: missing prediction ({len(absent)} of {len(scored)} scored "
            f"frames absent in {video}); results need one PNG per {which}, named as the annotation"
        )


def png_stems(folder: Path) -> list[str]:
    """The names, without ".png", of the entries `<name>.png` of `folder` in the order of their file names
    (what sorted(folder.glob("*.png")) lists, without a Path object per file); [] when it cannot be listed."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [name[:-4] for name in sorted(names) if name.endswith(".png")]
