"""A dataset reader from its config entry, the one place that maps a preset's dataset `kind` to a reader
(inference jobs, trainings and benchmarks all build their datasets here)."""

from __future__ import annotations

from .davis import DavisDataset
from .splits import read_split
from .youtube_vos import YouTubeVOSDataset


def build_dataset(spec: dict):
    """A dataset from its config entry: {"kind": "davis"|"youtube_vos", "root": ..., "split": ..., ...}; its videos
    are `sequences` (a list) or `videos_list` (a split's name or file, vos_datasets.splits), else the whole split.
    YouTube-VOS: `all_frames` (default true) reads the frames from <split>_all_frames, an error where absent."""
    kind = spec.get("kind", "davis")
    videos = spec.get("sequences")
    if spec.get("videos_list"):
        if videos:
            raise ValueError(f"dataset {spec.get('root')}: give `sequences` or `videos_list`, not both")
        videos = read_split(spec["videos_list"])
    if kind == "davis":
        return DavisDataset(spec["root"], split=spec.get("split", "val"), year=str(spec.get("year", "2017")),
                            resolution=spec.get("resolution", "480p"), sequences=videos)
    if kind == "youtube_vos":
        # all_frames (default): the methods run on <split>_all_frames, as the authors'; trainings read the
        # annotated frames of <split>/ only (all_frames false), as the released trainings
        return YouTubeVOSDataset(spec["root"], split=spec.get("split", "valid"), videos=videos,
                                 all_frames=spec.get("all_frames", True))
    raise ValueError(f"unknown dataset kind {kind!r}; use 'davis' or 'youtube_vos'")
