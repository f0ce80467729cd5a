"""The dataset of an interactive session: which sequences and scribbles, their metadata, every file checked.

A root is DAVIS 2017 (JPEGImages/480p, Annotations/480p, Scribbles/<seq>/00N.json) or a stand-in built by
interactive.standin, recognised by its standin.json. The package (davisinteractive) knows DAVIS 2017 only: its
`Davis.dataset` (num_frames, num_objects, num_scribbles, image_size of every sequence) and `Davis.sets` drive
the session, the robot and the summary. `registered` puts the session's own metadata there for the length of
a session (the chosen sequences as the `val` set, each with the chosen scribbles; a stand-in's from its
standin.json), so that subsets and stand-ins run through the package unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vos_datasets.png_fast import png_size

METADATA_FILE = "standin.json"
RESOLUTION = "480p"
SUBSET = "val"  # the local session's subset; `registered` makes it the chosen sequences
REAL_LABEL = "DAVIS 2017 val"


class InteractiveDataError(ValueError):
    """A dataset that cannot be run as asked; the message (one line) names the file or value and the fix."""


@dataclass(frozen=True)
class InteractiveDataset:
    root: Path
    entries: dict[str, dict]  # sequence -> the package's metadata of it (num_scribbles: the chosen scribbles)
    standin: bool
    label: str
    scribbles: int | None = None  # the first k scribbles of every sequence; None: all

    @property
    def sequences(self) -> list[str]:
        return list(self.entries)

    @property
    def samples(self) -> list[tuple[str, int]]:
        return [(name, index) for name, entry in self.entries.items()
                for index in range(1, entry["num_scribbles"] + 1)]

    def image_path(self, sequence: str, index: int) -> Path:
        return self.root / "JPEGImages" / RESOLUTION / sequence / f"{index:05d}.jpg"

    def annotation_path(self, sequence: str, index: int) -> Path:
        return self.root / "Annotations" / RESOLUTION / sequence / f"{index:05d}.png"

    def scribble_path(self, sequence: str, index: int) -> Path:
        return self.root / "Scribbles" / sequence / f"{index:03d}.json"

    def summary_entry(self) -> dict:
        return {"root": str(self.root), "standin": self.standin, "label": self.label,
                "sequences": self.sequences, "scribbles": self.scribbles}


@dataclass(frozen=True)
class InteractiveSequence:
    """What a method is given at the start of a sample: the frames, never the ground truth."""

    name: str
    frames: tuple[Path, ...]
    size: tuple[int, int]  # (height, width), read from the first frame's file
    num_objects: int

    def read_image(self, index: int) -> np.ndarray:
        """RGB uint8, H x W x 3."""
        with Image.open(self.frames[index]) as image:
            return np.asarray(image.convert("RGB"))


def _parse_scribbles(scribbles: list[int] | None) -> int | None:
    """The number of scribbles per sequence that `scribbles` selects (None: all). The package runs and
    summarises scribbles 1..num_scribbles of every sequence, so a selection is such a prefix."""
    if not scribbles:
        return None
    chosen = sorted(set(scribbles))
    if chosen != list(range(1, len(chosen) + 1)):
        raise InteractiveDataError(f"--scribbles {','.join(map(str, scribbles))}: choose scribbles 1..k (e.g. 1 "
                                   "or 1,2): the package runs and summarises the first k scribbles of a sequence")
    return len(chosen)


def open_dataset(root: str | Path, sequences: list[str] | None = None, scribbles: list[int] | None = None,
                 package=None) -> InteractiveDataset:
    """The dataset at `root` restricted to `sequences` (default: all of its val set) and `scribbles`."""
    root = Path(root)
    if not root.is_dir():
        raise InteractiveDataError(f"{root}: dataset root not found; build a stand-in (python -m interactive "
                                   "standin) or download DAVIS 2017 (python -m vos_datasets.download davis2017)")
    metadata_file = root / METADATA_FILE
    if metadata_file.is_file():
        metadata = json.loads(metadata_file.read_text())
        known, standin, label = metadata["sequences"], True, f"{metadata['label']} ({metadata['kind']})"
    else:
        if package is None:
            from .compat import load_davisinteractive

            package = load_davisinteractive()
        known = {name: entry for name, entry in package.Davis.dataset.items() if entry["set"] == SUBSET}
        standin, label = False, REAL_LABEL
    names = list(sequences) if sequences else list(known)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InteractiveDataError(f"{root}: no sequence {unknown} in its {label} metadata; choose among "
                                   f"{sorted(known)}")
    count = _parse_scribbles(scribbles)
    entries = {}
    for name in names:
        entry = copy.deepcopy(known[name])
        entry["set"] = SUBSET
        if count is not None:
            if count > entry["num_scribbles"]:
                raise InteractiveDataError(f"{root}: {name} has {entry['num_scribbles']} scribble(s); --scribbles "
                                           f"asks for {count}")
            entry["num_scribbles"] = count
        entries[name] = entry
    return InteractiveDataset(root, entries, standin, label, count)


def _fix(dataset: InteractiveDataset, kind: str) -> str:
    if dataset.standin:
        return "rebuild the stand-in (python -m interactive standin ... --out ROOT)"
    if kind == "scribble":
        return f"python -m interactive download-scribbles --davis-root {dataset.root}"
    return ("download DAVIS 2017 (python -m vos_datasets.download davis2017 DEST) and pass its davis2017 folder "
            "as --root")


def check_files(dataset: InteractiveDataset) -> None:
    """Every file a session reads, before it starts: frames, annotations (their size against the metadata)
    and the chosen scribbles; InteractiveDataError naming the first missing or mismatching one."""
    for name, entry in dataset.entries.items():
        for index in range(1, entry["num_scribbles"] + 1):
            path = dataset.scribble_path(name, index)
            if not path.is_file():
                raise InteractiveDataError(f"{path}: scribble file missing; {_fix(dataset, 'scribble')}")
        width, height = entry["image_size"]
        for index in range(entry["num_frames"]):
            for path in (dataset.image_path(name, index), dataset.annotation_path(name, index)):
                if not path.is_file():
                    raise InteractiveDataError(f"{path}: file missing; {_fix(dataset, 'frames')}")
            annotation = dataset.annotation_path(name, index)
            with open(annotation, "rb") as handle:
                size = png_size(handle.read(32))
            if size is not None and tuple(size) != (width, height):
                raise InteractiveDataError(f"{annotation}: {size[0]}x{size[1]} pixels, the metadata says "
                                           f"{width}x{height}; {_fix(dataset, 'frames')}")


def sequence_of(dataset: InteractiveDataset, name: str) -> InteractiveSequence:
    entry = dataset.entries[name]
    frames = tuple(dataset.image_path(name, index) for index in range(entry["num_frames"]))
    with Image.open(frames[0]) as image:
        size = (image.height, image.width)
    return InteractiveSequence(name, frames, size, entry["num_objects"])


@contextlib.contextmanager
def registered(dataset: InteractiveDataset, package) -> Iterator[None]:
    """The package's DAVIS metadata replaced by the dataset's for the length of the block (restored after)."""
    davis = package.Davis
    saved = davis.dataset, davis.sets
    davis.dataset = copy.deepcopy(dataset.entries)
    davis.sets = {SUBSET: dataset.sequences}
    try:
        yield
    finally:
        davis.dataset, davis.sets = saved
