"""YouTube-VOS 2018 / 2019 reader and the submission-zip writer.

    <root>/train/{JPEGImages,Annotations}/<video>/<frame>.{jpg,png}, train/meta.json
    <root>/valid/JPEGImages/<video>/*.jpg           every 5th frame: the frames the server scores
    <root>/valid/Annotations/<video>/*.png          each object's mask at its first appearance
    <root>/valid_all_frames/JPEGImages/<video>/*.jpg all frames (what the methods run on; train_all_frames for
                                                     the held-out train videos; absent: an error, no fallback)

meta.json: {"videos": {video: {"objects": {"<id>": {"category": str, "frames": [frame, ...]}}}}};
objects may appear mid-video: their first listed frame is where their mask is given.
YouTube-VOS needs registration (https://youtube-vos.org/dataset/vos/): download it yourself and set
`paths.youtube_vos_2018` / `paths.youtube_vos_2019` in config.yaml to the folder holding train/ and valid/.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .fileio import atomic_path
from .masks import MaskFormatError, read_label_png
from .sequence import DatasetError, Sequence

REGISTRATION_HINT = (
    "YouTube-VOS cannot be downloaded automatically (it needs registration): get it from "
    "https://youtube-vos.org/dataset/vos/ (2018 or 2019 edition, train and valid, plus valid_all_frames) "
    "and point the workflow at the folder that holds train/ and valid/"
)


def missing_all_frames(root: str | Path, split: str) -> str:
    """The error of a run on every frame of `split` whose <split>_all_frames folder is absent."""
    root = Path(root)
    return (f"{root / f'{split}_all_frames' / 'JPEGImages'}: not found (only the every-5th-frame "
            f"{root / split / 'JPEGImages'} is there); methods run on every frame, as the authors': download "
            f"{split}_all_frames from https://youtube-vos.org/dataset/vos/ into {root}")


@dataclass(frozen=True)
class ObjectInfo:
    object_id: int
    category: str
    frames: tuple[str, ...]

    @property
    def first_frame(self) -> str:
        return self.frames[0]


class YouTubeVOSDataset:
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        all_frames: bool = True,
        videos: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        split_dir = self.root / split
        meta_path = split_dir / "meta.json"
        if not meta_path.is_file():
            raise DatasetError(f"{meta_path}: not found. {REGISTRATION_HINT}")
        try:
            self.meta = json.loads(meta_path.read_text())["videos"]
        except (json.JSONDecodeError, KeyError) as err:
            raise DatasetError(f"{meta_path}: not a YouTube-VOS meta.json ({err})") from err
        self.annotation_root = split_dir / "Annotations"
        self.scored_root = split_dir / "JPEGImages"
        # The authors run on every frame (frtm-vos evaluate.py: valid_all_frames, jjval on train_all_frames;
        # LWL's 81.1 vs 77.4): never fall back to the every-5th-frame folder in silence.
        self.image_root = self.all_frames_root if all_frames else self.scored_root
        if all_frames and not self.image_root.is_dir():
            raise DatasetError(missing_all_frames(self.root, split))
        names = sorted(self.meta)
        if videos is not None:
            unknown = sorted(set(videos) - set(names))
            if unknown:
                raise DatasetError(f"videos {unknown[:5]} (and {max(0, len(unknown) - 5)} more) not in {meta_path}")
            names = [n for n in names if n in set(videos)]
        self.video_names = names

    @property
    def all_frames_root(self) -> Path:
        return self.root / f"{self.split}_all_frames" / "JPEGImages"

    def __len__(self) -> int:
        return len(self.video_names)

    def __iter__(self):
        return (self.sequence(name) for name in self.video_names)

    def objects(self, video: str) -> dict[int, ObjectInfo]:
        objects = self.meta[video]["objects"]
        return {
            int(k): ObjectInfo(int(k), v.get("category", ""), tuple(sorted(v["frames"])))
            for k, v in objects.items()
            if v.get("frames")
        }

    def scored_frames(self, video: str) -> tuple[str, ...]:
        """Frames the benchmark scores (every 5th frame)."""
        return tuple(sorted(p.stem for p in (self.scored_root / video).glob("*.jpg")))

    def sequence(self, video: str) -> Sequence:
        image_dir = self.image_root / video
        if not image_dir.is_dir():
            raise DatasetError(f"{image_dir}: video {video} listed in meta.json but missing on disk")
        frames = tuple(sorted(p.stem for p in image_dir.glob("*.jpg")))
        first = {oid: info.first_frame for oid, info in self.objects(video).items()}
        return Sequence(video, frames, image_dir, self.annotation_root / video, "davis2017", first)


def write_submission_zip(dataset: YouTubeVOSDataset, predictions: str | Path, out_zip: str | Path) -> int:
    """Zip `Annotations/<video>/<frame>.png` for every scored frame of every video (server format).

    predictions holds <video>/<frame>.png for at least the scored frames (all frames is fine). Each PNG is
    checked as the local evaluator (metrics.youtube_vos) checks a prediction: an index mask (palette or
    greyscale PNG of object ids), the size of its frame, only ids of the video's meta.json objects.
    Returns the number of PNGs written; raises DatasetError naming the first missing or invalid
    prediction, or a video of meta.json with no scored frame on disk.
    """
    predictions = Path(predictions)
    members: list[tuple[Path, str]] = []
    for video in dataset.video_names:
        frames = dataset.scored_frames(video)
        if not frames:
            raise DatasetError(f"{dataset.scored_root / video}: video {video} is listed in meta.json but has no "
                               "frames (*.jpg) to score; the dataset folder is incomplete: extract it again")
        known = {int(oid) for oid in dataset.meta[video]["objects"]}
        for frame in frames:
            png = predictions / video / f"{frame}.png"
            if not png.is_file():
                raise DatasetError(f"{png}: missing prediction for a scored frame of {video}")
            _check_prediction(png, dataset.scored_root / video / f"{frame}.jpg", known)
            members.append((png, f"Annotations/{video}/{frame}.png"))
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for png, name in members:
            archive.write(png, name)
    return len(members)


def _check_prediction(png: Path, jpg: Path, known: set[int]) -> None:
    """A prediction the server can score: an index mask of its frame's size holding known object ids."""
    try:
        ids = read_label_png(png, "davis2017")
    except MaskFormatError as err:
        raise DatasetError(str(err)) from None
    try:
        with Image.open(jpg) as frame:
            width, height = frame.size
    except (OSError, Image.DecompressionBombError) as err:
        raise DatasetError(f"{jpg}: not a readable frame ({err}); extract the dataset again") from None
    if ids.shape != (height, width):
        raise DatasetError(f"{png}: mask is {ids.shape[1]}x{ids.shape[0]} but its frame {jpg} is {width}x{height}; "
                           "predictions must have the size of the video's frames")
    present = np.flatnonzero(np.bincount(ids.ravel(), minlength=256))
    unknown = sorted(int(i) for i in present if i != 0 and int(i) not in known)
    if unknown:
        raise DatasetError(f"{png}: object ids {unknown} are not in the meta.json objects of {png.parent.name} "
                           f"({sorted(known)}); predictions must use the annotation's ids")


def main(argv: list[str] | None = None) -> int:
    """python -m vos_datasets.youtube_vos submit ROOT SPLIT PREDICTIONS OUT_ZIP"""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m vos_datasets.youtube_vos")
    sub = parser.add_subparsers(dest="command", required=True)
    submit = sub.add_parser("submit", help="build the server's submission zip from result folders")
    submit.add_argument("root", type=Path)
    submit.add_argument("split", help="valid or test")
    submit.add_argument("predictions", type=Path)
    submit.add_argument("out_zip", type=Path)
    args = parser.parse_args(argv)
    try:
        # the zip holds the scored (every 5th) frames: the all-frames folder is not read
        dataset = YouTubeVOSDataset(args.root, args.split, all_frames=False)
        count = write_submission_zip(dataset, args.predictions, args.out_zip)
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out_zip}: {count} PNGs. Upload it to the YouTube-VOS server (CodaLab) and enter the "
          "returned figures in the server results file (config.yaml: server_results).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
