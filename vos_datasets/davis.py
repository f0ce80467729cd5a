"""DAVIS 2016 / 2017 dataset reader (official folder layout).

    <root>/JPEGImages/<res>/<seq>/00000.jpg
    <root>/Annotations/<res>/<seq>/00000.png
    <root>/ImageSets/2017/{train,val}.txt      one sequence name a line (DAVIS 2017; also ImageSets/2016)
    <root>/ImageSets/<res>/{train,val}.txt     "/JPEGImages/480p/seq/00000.jpg /Annotations/..." (DAVIS 2016)

DAVIS 2016 masks (0/255) are read as object 1; DAVIS 2017 masks as ids with 255 = void.
"""

from __future__ import annotations

import json
from pathlib import Path

from .masks import Convention
from .sequence import DatasetError, Sequence


def read_image_set(path: str | Path) -> list[str]:
    """Sequence names of an ImageSets file, in file order, in either official line format."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    names: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):  # DAVIS 2016: "/JPEGImages/480p/<seq>/<frame>.jpg /Annotations/..."
            parts = line.split()[0].strip("/").split("/")
            if len(parts) < 4:
                raise DatasetError(f"{path}:{number}: cannot read a sequence name from {line!r}")
            name = parts[2]
        else:
            name = line
        if name not in names:
            names.append(name)
    return names


class DavisDataset:
    """A DAVIS-layout dataset: DAVIS 2016, DAVIS 2017 or the embedded synthetic set."""

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        year: str = "2017",
        resolution: str = "480p",
        convention: Convention = "auto",
        sequences: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.year = str(year)
        self.resolution = resolution
        self.convention = convention
        for sub in ("JPEGImages", "Annotations"):
            if not (self.root / sub / resolution).is_dir():
                raise DatasetError(
                    f"{self.root / sub / resolution}: missing; {self.root} is not a DAVIS folder "
                    "(expected JPEGImages/, Annotations/ and ImageSets/ as in the official archive)"
                )
        names = read_image_set(self._split_file())
        if sequences is not None:
            unknown = sorted(set(sequences) - set(names))
            if unknown:
                shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
                raise DatasetError(f"sequences {shown} are not in {self._split_file()} "
                                   f"(its {len(names)} sequences: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
            names = [n for n in names if n in sequences]
        self.sequence_names = names
        self._meta = self._read_meta()

    def _split_file(self) -> Path:
        sets = self.root / "ImageSets"
        for candidate in (sets / self.year / f"{self.split}.txt", sets / self.resolution / f"{self.split}.txt"):
            if candidate.is_file():
                return candidate
        raise DatasetError(
            f"no split file for split {self.split!r} of DAVIS {self.year} under {sets} "
            f"(looked for {self.year}/{self.split}.txt and {self.resolution}/{self.split}.txt)"
        )

    def _read_meta(self) -> dict:
        meta = self.root / "meta.json"
        return json.loads(meta.read_text())["videos"] if meta.is_file() else {}

    def __len__(self) -> int:
        return len(self.sequence_names)

    def __iter__(self):
        return (self.sequence(name) for name in self.sequence_names)

    def sequence(self, name: str) -> Sequence:
        image_dir = self.root / "JPEGImages" / self.resolution / name
        mask_dir = self.root / "Annotations" / self.resolution / name
        if not image_dir.is_dir():
            raise DatasetError(f"{image_dir}: sequence {name} listed in the split but missing on disk")
        if not mask_dir.is_dir():
            raise DatasetError(f"{mask_dir}: no annotations for sequence {name}")
        frames = tuple(sorted(p.stem for p in image_dir.glob("*.jpg")))
        first_frames = {}
        if name in self._meta:
            first_frames = {int(k): v["frames"][0] for k, v in self._meta[name]["objects"].items()}
        return Sequence(name, frames, image_dir, mask_dir, self.convention, first_frames)
