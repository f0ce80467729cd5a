"""Runs one method over a dataset: DAVIS result folders (written atomically) and a timing record.

Timing follows the FRTM protocol where it applies to a generic method: per sequence, the wall time of
the method's own work (reading its inputs included, writing PNGs excluded); FPS = frames / seconds,
reported as the unweighted mean over sequences and as total frames / total seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vos_datasets.fileio import atomic_directory, atomic_write_text
from vos_datasets.masks import write_label_png

from .base import VOSMethod
from .registry import METHODS, load, method

__all__ = ["METHODS", "build_method", "run"]  # METHODS: the registry's, for `python -m methods infer --method`


def build_method(name: str, settings: dict | None = None) -> VOSMethod:
    """The registry's tracker of method `name` (methods/registry.py), built with its settings."""
    return load(method(name).tracker)(**(settings or {}))


def device_description() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores ({platform.system()})"


def _threads() -> int | None:
    """torch's CPU threads, where the method ran on torch (a method that never imported it, the first-frame
    copy, has none to report: importing torch only to ask would cost its start-up)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def run(method: VOSMethod, dataset, out_dir: str | Path, timing_path: str | Path | None = None,
        progress: bool = True, extra: dict | None = None, warm_up: bool = False,
        score_maps_dir: str | Path | None = None, score_map_sequences: list[str] | None = None) -> dict:
    """Write <out_dir>/<sequence>/<frame>.png for every frame and return the timing record.

    warm_up: run the first sequence once, untimed and unsaved, before the timed pass (FRTM's FPS
    protocol on DAVIS 2016: first calls pay for memory allocation and kernel selection).
    score_maps_dir: save the target model's coarse scores (FRTM) of `score_map_sequences` there (default:
    the first sequence by name; ["all"]: every sequence). They stay on the method's device until the
    sequence is done (no GPU synchronisation inside the timed loop); only the figures' sequences keep them.
    """
    sequences = list(dataset)
    keep_maps: set[str] = set()
    if score_maps_dir is not None:
        if not hasattr(method, "enable_score_maps"):
            raise ValueError(f"{method.name} has no coarse score maps to save (only FRTM's target model has)")
        names = [s.name for s in sequences]
        if score_map_sequences == ["all"]:
            keep_maps = set(names)
        elif score_map_sequences:
            keep_maps = set(score_map_sequences)
        else:
            keep_maps = {min(names)} if names else set()
        unknown = keep_maps - set(names)
        if unknown:
            raise ValueError(f"score maps asked for sequences not in the dataset: {sorted(unknown)}")
    if warm_up and sequences:
        for _ in method.run_sequence(sequences[0]):
            pass
    per_sequence = {}
    with atomic_directory(out_dir) as tmp, contextlib.ExitStack() as stack:
        maps_tmp = stack.enter_context(atomic_directory(score_maps_dir)) if score_maps_dir is not None else None
        for sequence in tqdm(sequences, desc=f"{method.name}", unit="seq", disable=not progress):
            seconds, frames = 0.0, 0
            if score_maps_dir is not None:
                method.enable_score_maps() if sequence.name in keep_maps else method.disable_score_maps()
            results = method.run_sequence(sequence)
            while True:
                started = time.perf_counter()
                try:
                    frame, labels = next(results)
                except StopIteration:
                    break
                seconds += time.perf_counter() - started
                if labels.dtype != np.uint8 or labels.shape != sequence.size:
                    raise ValueError(f"{method.name} returned a {labels.dtype} {labels.shape} map for "
                                     f"{sequence.name}/{frame}; expected uint8 {sequence.size}")
                write_label_png(tmp / sequence.name / f"{frame}.png", labels)
                frames += 1
            if maps_tmp is not None and sequence.name in keep_maps:  # D's coarse scores, one array per (frame, object), for the figures
                np.savez_compressed(maps_tmp / f"{sequence.name}.npz",
                                    **{f"{frame}_{oid}": np.asarray(m.cpu() if hasattr(m, "cpu") else m)
                                       for (frame, oid), m in method.score_maps.items()})
                method.score_maps.clear()
            if frames != len(sequence.frames):
                raise ValueError(f"{method.name} produced {frames} of {len(sequence.frames)} frames of {sequence.name}")
            per_sequence[sequence.name] = {"frames": frames, "seconds": seconds,
                                           "fps": frames / seconds if seconds > 0 else float("inf")}
    total_frames = sum(s["frames"] for s in per_sequence.values())
    total_seconds = sum(s["seconds"] for s in per_sequence.values())
    record = {
        "method": method.name,
        "timed": "the method's work per sequence (its own input reading included, PNG writing excluded)",
        "warm_up": warm_up,
        "device": device_description(),
        "threads": _threads(),  # CPU threads the method ran on (side-by-side one-thread jobs: 1)
        "mean_fps_over_sequences": float(np.mean([s["fps"] for s in per_sequence.values()])) if per_sequence else 0.0,
        "total_fps": total_frames / total_seconds if total_seconds > 0 else float("inf"),
        "frames": total_frames,
        "resolution": sorted({"x".join(map(str, seq.size[::-1])) for seq in sequences}),
        **(method.describe() if hasattr(method, "describe") else {}),
        "sequences": per_sequence,
        "score_maps_kept_for": sorted(keep_maps),
        **(extra or {}),
    }
    if timing_path is not None:
        atomic_write_text(timing_path, json.dumps(record, indent=1))
    return record
