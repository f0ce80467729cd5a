"""One interactive session: the package's DavisInteractiveSession, run locally, driving one method.

For every sample (sequence, scribble) the package hands out the scribble; the runner turns it into a label
map (-1 unlabelled, 0 background, k object k: the package's scribbles2mask at the frames' size) and gives it
to the method (`start(sequence)` on a new sample, `interact(frame_index, scribble_labels) -> masks (T, H, W)`);
a scribble on several frames (a human one may be) is given frame by frame, the last masks submitted;
the package scores the masks, its robot draws the next scribble on the worst frame, up to max_interactions
(and max_time x objects seconds a sample, when given). A sample's timing is the package's: the wall time
between handing out the scribble and receiving the masks.

Every file is checked before the session starts (interactive.dataset.check_files); the package never
downloads (interactive.compat). Outputs, written atomically into --out-dir when the session ends:
report.csv (the package's report), summary.json (the package's summary and the suite's own,
interactive.summary) and timing.json (device, threads, every interaction's times).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vos_datasets.fileio import atomic_path

from .compat import load_davisinteractive
from .dataset import InteractiveDataError, InteractiveDataset, check_files, registered, sequence_of
from .summary import summarize

log = logging.getLogger("interactive")


def load_method(name: str, settings: dict):
    from methods import registry

    try:
        registry.interactive_settings(name, settings)  # refuses bad settings before anything runs
    except ValueError as err:
        raise InteractiveDataError(f"--method {name} --settings {json.dumps(settings)}: {err}") from None
    return registry.load(registry.interactive_method(name).method)(**settings)


def _threads() -> int:
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def scribble_labels(package, scribble: dict, size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Each scribbled frame's label map (H x W: -1 unlabelled, 0 background, k object k). scribbles2mask is
    given one frame at a time: the whole sequence's map would cost the method's time (a sample's timing runs
    from the scribble handed out to the masks received)."""
    return {frame: package.scribbles2mask({**scribble, "scribbles": [lines]}, size)[0]
            for frame, lines in enumerate(scribble["scribbles"]) if lines}


def _check_masks(masks, sequence, method_name: str) -> np.ndarray:
    masks = np.asarray(masks)
    expected = (len(sequence.frames), *sequence.size)
    if masks.shape != expected or not np.issubdtype(masks.dtype, np.integer):
        raise ValueError(f"{method_name}: interact() returned masks of shape {masks.shape} ({masks.dtype}) for "
                         f"{sequence.name}, expected {expected} (frames, height, width) of object ids")
    return masks


def run_session(dataset: InteractiveDataset, method_name: str, settings: dict, max_interactions: int,
                max_time: float | None, out_dir: str | Path, progress: bool = True) -> dict:
    """Run the session and write out_dir/{report.csv, summary.json, timing.json}; returns the summary."""
    out_dir = Path(out_dir)
    package = load_davisinteractive()
    check_files(dataset)
    method = load_method(method_name, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings, sequence, masks = [], None, None
    total = len(dataset.samples) * max_interactions
    started = time.perf_counter()
    with registered(dataset, package), tempfile.TemporaryDirectory(prefix=".session.", dir=out_dir) as scratch, \
            tqdm(total=total, desc=f"{method_name} interactions", unit="int", disable=not progress) as bar:
        session = package.DavisInteractiveSession(
            host="localhost", davis_root=str(dataset.root), subset="val", max_nb_interactions=max_interactions,
            max_time=max_time, report_save_dir=scratch)
        with session:
            while session.next():
                name, scribble, new_sample = session.get_scribbles(only_last=True)
                received = time.perf_counter()
                if new_sample:
                    sequence = sequence_of(dataset, name)
                    log.info("sample %d/%d: %s scribble %d (%d frames, %d object(s), %dx%d)", session.sample_idx + 1,
                             len(session.samples), name, session.samples[session.sample_idx][1],
                             len(sequence.frames), sequence.num_objects, sequence.size[1], sequence.size[0])
                    method.start(sequence)
                    interaction = 0
                    masks = np.zeros((len(sequence.frames), *sequence.size), np.uint8)
                interaction += 1
                labels = scribble_labels(package, scribble, sequence.size)
                frames = list(labels)
                if not frames:  # the robot found nothing to correct: the prediction stands
                    log.info("%s: interaction %d: empty scribble, previous masks resubmitted", name, interaction)
                for frame in frames:
                    masks = _check_masks(method.interact(frame, labels[frame]), sequence, method_name)
                method_seconds = time.perf_counter() - received
                session.submit_masks(masks)
                timings.append({"sequence": name, "scribble_idx": session.samples[session.sample_idx][1],
                                "interaction": interaction, "scribbled_frames": frames,
                                "method_seconds": method_seconds})
                log.info("%s scribble %d interaction %d: frames %s, %.3f s", name, timings[-1]["scribble_idx"],
                         interaction, frames, method_seconds)
                bar.update(1)
        report = session.get_report()
        package_summary = session.get_global_summary()
    wall = time.perf_counter() - started
    own = summarize(report, dataset.entries, max_interactions, max_time)
    recorded = report.groupby(["sequence", "scribble_idx", "interaction"])["timing"].first()
    for entry in timings:
        key = (entry["sequence"], entry["scribble_idx"], entry["interaction"])
        entry["seconds"] = float(recorded[key]) if key in recorded.index else None  # None: after the timeout
    device = getattr(method, "device", "cpu")
    summary = {
        "dataset": dataset.summary_entry(),
        "method": method_name,
        "settings": settings,
        **own,
        "package_summary": package_summary,
        "device": str(device),
        "threads": _threads(),
    }
    timing = {"device": str(device), "threads": _threads(), "wall_seconds": wall, "interactions": timings}
    with atomic_path(out_dir / "report.csv") as tmp:
        report.to_csv(tmp, index=False)
    with atomic_path(out_dir / "timing.json") as tmp:
        tmp.write_text(json.dumps(timing, indent=1) + "\n")
    with atomic_path(out_dir / "summary.json") as tmp:  # last: its presence means the session is complete
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
