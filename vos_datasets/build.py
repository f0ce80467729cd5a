"""A dataset reader from its config entry, the one place that maps a preset's dataset `kind` to a reader
(inference jobs, trainings and benchmarks all build their datasets here)."""

from __future__ import annotations

from .davis import DavisDataset
from .youtube_vos import YouTubeVOSDataset


def build_dataset(spec: dict):
    """A dataset from its config entry: {"kind": "davis"|"youtube_vos", "root": ..., "split": ..., ...}."""
    kind = spec.get("kind", "davis")
    if kind == "davis":
        return DavisDataset(spec["root"], split=spec.get("split", "val"), year=str(spec.get("year", "2017")),
                            resolution=spec.get("resolution", "480p"), sequences=spec.get("sequences"))
    if kind == "youtube_vos":
        return YouTubeVOSDataset(spec["root"], split=spec.get("split", "valid"), videos=spec.get("sequences"))
    raise ValueError(f"unknown dataset kind {kind!r}; use 'davis' or 'youtube_vos'")
