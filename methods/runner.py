"""Runs one method over a dataset: DAVIS result folders (written atomically) and a timing record.

FPS protocols (`fps_protocol`; docs/frtm.md "Timing (FPS)"):
- "authors" (default), the released frtm-vos `Tracker.run_dataset` / `run_sequence`: per sequence, every frame
  is read (and, for a method with a `preload` hook, put on its device) before the clock starts; a warm-up
  (`warm_up_frames`: the method run, untimed and unsaved, on the sequence's first frames; frtm-vos's
  `speedrun` initialises on frame 0 and tracks one frame, i.e. 2) precedes every sequence; the clock then
  runs over the whole sequence with the labels left on the device (methods with `labels_on_device`) and
  stops after one synchronise at its end. PNG writing comes after.
- "streaming", this suite's earlier protocol: each frame is timed as it comes, its reading from disk and a
  synchronise per frame included (PNG writing excluded), the warm-up as above.
Either way FPS = frames / seconds per sequence, reported as the unweighted mean over sequences (frtm-vos's
AverageMeter) and as total frames / total seconds. The record names the device the method ran on, its model
(GPU name, else the CPU's) and torch's thread count, as the machine that ran the job saw them.
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


FPS_PROTOCOLS = ("authors", "streaming")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what platform reports) and its core count."""
    name = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    name = name or platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores ({platform.system()})"


def method_device(method) -> str:
    """The device a method computes on ("cuda:0", "cpu"): its `device`, else the CPU (no torch: first-frame copy)."""
    device = getattr(method, "device", None)
    return str(device) if device is not None else "cpu"


def device_model(device: str) -> str:
    """The GPU's name for a CUDA device, else the CPU's model (asked on the machine the method runs on)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def synchronise(device: str) -> None:
    """Wait for a CUDA device's queued work; a no-op on the CPU (its work is done when a call returns)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(torch.device(device))


class PreloadedSequence:
    """A sequence whose frames were read before the clock started: `read_image` returns them from memory;
    `frames` may be its first frames only (the warm-up). Everything else is the wrapped sequence's."""

    def __init__(self, sequence, images: dict[str, np.ndarray], frames: tuple[str, ...] | None = None) -> None:
        self._sequence, self._images = sequence, images
        self.frames = tuple(sequence.frames if frames is None else frames)

    def __getattr__(self, name: str):
        return getattr(self._sequence, name)

    def read_image(self, frame: str) -> np.ndarray:
        return self._images[frame]

    def object_first_frames(self) -> dict[int, str]:
        shown = set(self.frames)
        return {oid: frame for oid, frame in self._sequence.object_first_frames().items() if frame in shown}

    def first(self, count: int) -> PreloadedSequence:
        return PreloadedSequence(self._sequence, self._images, self.frames[:count])


def _threads() -> int | None:
    """torch's CPU threads, where the method ran on torch (a method that never imported it, the first-frame
    copy, has none to report: importing torch only to ask would cost its start-up)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def _check_protocol(fps_protocol: str, warm_up_frames: int) -> None:
    if fps_protocol not in FPS_PROTOCOLS:
        raise ValueError(f"fps_protocol={fps_protocol!r}: choose one of {list(FPS_PROTOCOLS)}")
    if warm_up_frames < 0:
        raise ValueError(f"warm_up_frames={warm_up_frames}: 0 (none) or more frames")


def score_map_sequences_kept(method, names: list[str], asked: list[str] | None) -> set[str]:
    """The sequences whose score maps are saved: `asked` (["all"]: every one), default the first by name."""
    if not hasattr(method, "enable_score_maps"):
        raise ValueError(f"{method.name} has no coarse score maps to save (only FRTM's target model has)")
    if asked == ["all"]:
        keep = set(names)
    elif asked:
        keep = set(asked)
    else:
        keep = {min(names)} if names else set()
    unknown = keep - set(names)
    if unknown:
        raise ValueError(f"score maps asked for sequences not in the dataset: {sorted(unknown)}")
    return keep


def _save_score_maps(method, folder: Path, sequence: str) -> None:
    """D's coarse scores of one sequence, one array per (frame, object), for the figures; then dropped."""
    np.savez_compressed(folder / f"{sequence}.npz",
                        **{f"{frame}_{oid}": np.asarray(m.cpu() if hasattr(m, "cpu") else m)
                           for (frame, oid), m in method.score_maps.items()})
    method.score_maps.clear()


def _run_sequence(method, sequence, device: str, timed, warm_up_frames: int, out: Path, maps_out: Path | None,
                  keep_maps: set[str]) -> dict:
    """One sequence's masks written under `out` (and its score maps under `maps_out` where kept): its timing
    entry. The warm-up keeps no score maps; a method that skips a frame is an error naming it."""
    after_warm_up = None
    if maps_out is not None:
        method.disable_score_maps()
        if sequence.name in keep_maps:
            after_warm_up = method.enable_score_maps
    seconds, outputs = timed(method, sequence, device, warm_up_frames, after_warm_up, out)
    if maps_out is not None and sequence.name in keep_maps:
        _save_score_maps(method, maps_out, sequence.name)
    frames = len(outputs)
    if frames != len(sequence.frames):
        raise ValueError(f"{method.name} produced {frames} of {len(sequence.frames)} frames of {sequence.name}")
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds if seconds > 0 else float("inf")}


def timing_record(method, fps_protocol: str, warm_up_frames: int, device: str, sequences: list,
                  per_sequence: dict, keep_maps: set[str], extra: dict | None) -> dict:
    """The timing.json record: the protocol, the device as the machine that ran it saw it, the FPS (mean over
    sequences and total), the method's own description, and each sequence's entry."""
    total_frames = sum(s["frames"] for s in per_sequence.values())
    total_seconds = sum(s["seconds"] for s in per_sequence.values())
    return {
        "method": method.name,
        "fps_protocol": fps_protocol,
        "timed": TIMED[fps_protocol],
        "warm_up_frames": warm_up_frames,
        "device": device,  # what the method computed on: "cuda:0", "cpu"
        "device_model": device_model(device),  # the GPU's name, else the CPU's: as the machine that ran it saw it
        "threads": _threads(),  # CPU threads the method ran on (side-by-side one-thread jobs: 1)
        "mean_fps_over_sequences": float(np.mean([s["fps"] for s in per_sequence.values()])) if per_sequence else 0.0,
        "total_fps": total_frames / total_seconds if total_seconds > 0 else float("inf"),
        "frames": total_frames,
        "resolution": sorted({"x".join(map(str, seq.size[::-1])) for seq in sequences}),
        **{key: value for key, value in (method.describe() if hasattr(method, "describe") else {}).items()
           if key != "device"},
        "sequences": per_sequence,
        "score_maps_kept_for": sorted(keep_maps),
        **(extra or {}),
    }


def run(method: VOSMethod, dataset, out_dir: str | Path, timing_path: str | Path | None = None,
        progress: bool = True, extra: dict | None = None, warm_up_frames: int = 0, fps_protocol: str = "authors",
        score_maps_dir: str | Path | None = None, score_map_sequences: list[str] | None = None) -> dict:
    """Write <out_dir>/<sequence>/<frame>.png for every frame and return the timing record.

    fps_protocol, warm_up_frames: how FPS is measured (module doc). score_maps_dir: save the target model's
    coarse scores (FRTM) of `score_map_sequences` there (default: the first sequence by name; ["all"]: every
    sequence). They stay on the method's device until the sequence is done (no GPU synchronisation inside
    the timed loop); only the figures' sequences keep them.
    """
    _check_protocol(fps_protocol, warm_up_frames)
    sequences = list(dataset)
    keep_maps: set[str] = set()
    if score_maps_dir is not None:
        keep_maps = score_map_sequences_kept(method, [s.name for s in sequences], score_map_sequences)
    device = method_device(method)
    timed = _timed_sequence if fps_protocol == "authors" else _streamed_sequence
    per_sequence = {}
    with atomic_directory(out_dir) as tmp, contextlib.ExitStack() as stack:
        maps_tmp = stack.enter_context(atomic_directory(score_maps_dir)) if score_maps_dir is not None else None
        for sequence in tqdm(sequences, desc=f"{method.name}", unit="seq", disable=not progress):
            per_sequence[sequence.name] = _run_sequence(method, sequence, device, timed, warm_up_frames, tmp,
                                                        maps_tmp, keep_maps)
    record = timing_record(method, fps_protocol, warm_up_frames, device, sequences, per_sequence, keep_maps, extra)
    if timing_path is not None:
        atomic_write_text(timing_path, json.dumps(record, indent=1))
    return record


TIMED = {
    "authors": "per sequence, frames read (and on the device) before the clock, after a warm-up on its first "
               "frames; the whole sequence timed with one synchronise at its end; PNG writing after",
    "streaming": "per frame as it comes: its reading from disk and a synchronise included, PNG writing excluded",
}


def _check_labels(method, sequence, frame: str, labels) -> np.ndarray:
    labels = np.asarray(labels.cpu()) if hasattr(labels, "cpu") else labels
    if labels.dtype != np.uint8 or labels.shape != sequence.size:
        raise ValueError(f"{method.name} returned a {labels.dtype} {labels.shape} map for "
                         f"{sequence.name}/{frame}; expected uint8 {sequence.size}")
    return labels


def _warm_up(method, sequence: PreloadedSequence, frames: int, device: str) -> None:
    if frames:
        for _ in method.run_sequence(sequence.first(frames)):
            pass
        synchronise(device)


@contextlib.contextmanager
def _preloaded(method, sequence):
    """The sequence with its frames read into memory, and the method's own preloading (its device) done."""
    images = {frame: sequence.read_image(frame) for frame in sequence.frames}
    preloaded = PreloadedSequence(sequence, images)
    if hasattr(method, "preload"):
        method.preload(preloaded)
    try:
        yield preloaded
    finally:
        if hasattr(method, "preload"):
            method.preload(None)


@contextlib.contextmanager
def _labels_on_device(method):
    """Let a method leave its labels on its device (no synchronise per frame) while a sequence is timed."""
    if not hasattr(method, "labels_on_device"):
        yield
        return
    method.labels_on_device = True
    try:
        yield
    finally:
        method.labels_on_device = False


def _timed_sequence(method, sequence, device: str, warm_up_frames: int, after_warm_up, out: Path):
    """The authors' protocol (module doc): (seconds, frames written)."""
    with _preloaded(method, sequence) as preloaded:
        _warm_up(method, preloaded, warm_up_frames, device)
        if after_warm_up is not None:
            after_warm_up()
        with _labels_on_device(method):
            started = time.perf_counter()
            outputs = list(method.run_sequence(preloaded))
            synchronise(device)
            seconds = time.perf_counter() - started
    for frame, labels in outputs:
        write_label_png(out / sequence.name / f"{frame}.png", _check_labels(method, sequence, frame, labels))
    return seconds, [frame for frame, _ in outputs]


def _streamed_sequence(method, sequence, device: str, warm_up_frames: int, after_warm_up, out: Path):
    """This suite's earlier protocol (module doc): (seconds, frames written)."""
    if warm_up_frames:
        images = {frame: sequence.read_image(frame) for frame in sequence.frames[:warm_up_frames]}
        _warm_up(method, PreloadedSequence(sequence, images, tuple(images)), warm_up_frames, device)
    if after_warm_up is not None:
        after_warm_up()
    seconds, written = 0.0, []
    results = method.run_sequence(sequence)
    while True:
        started = time.perf_counter()
        try:
            frame, labels = next(results)
        except StopIteration:
            break
        synchronise(device)
        seconds += time.perf_counter() - started
        write_label_png(out / sequence.name / f"{frame}.png", _check_labels(method, sequence, frame, labels))
        written.append(frame)
    return seconds, written
