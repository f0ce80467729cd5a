"""Local YouTube-VOS scoring (J, F, seen/unseen split and G) for videos whose ground truth is known.

The official validation and test sets have hidden ground truth and are scored by the CodaLab server
only; this module is for the papers' ablation tables, which score held-out *train* videos locally
(the 300-video split). Layout:

    gt_annotations_root/<video>/<frame>.png   the annotated frames (every 5th frame in YouTube-VOS)
    pred_root/<video>/<frame>.png             indexed PNGs with the annotation's object ids
    meta.json                                 {"videos": {video: {"objects": {"<id>": {"category": str,
                                              "frames": [frame, ...]}}}}}

Protocol (our choices where the server's is not documented):

* The objects of a video are those listed in meta.json (with a non-empty frame list). Each object is
  given to the method on its first frame in meta.json, which may lie mid-video.
* Which annotated ground-truth frames (the PNGs in gt_annotations_root/<video>/, ordered by name, as
  YouTubeVOSDataset does) score an object, `frames` (FRAME_RULES):
  - "authors" (default): those strictly after the object's first frame and before the video's last
    annotated frame, as both papers' held-out tables were scored: frtm-vos lib/davis.py
    evaluate_sequence and pytracking analysis/evaluate_vos.py evaluate_sequence both keep frame i when
    index(first frame) < i < len(annotations) - 1 (the DAVIS toolkit's rule, per object).
  - "all-after-first": every annotated frame strictly after the object's first frame, the last one
    included (this suite's reading before it followed the authors' code; kept as a named option).
  An object with no frame to score (e.g. one entering on the last or, under "authors", the second-last
  annotated frame) is listed in `YouTubeVOSResult.unscored` and left out of every mean, as the authors'
  NaN-skipping means do.
* Frames after an object has left the scene still count: empty ground truth and empty prediction score
  J = F = 1 (the DAVIS convention, see metrics.measures), a prediction there scores 0.
* J and F of one frame come from metrics.measures.frame_scores (the official DAVIS definitions, with
  the boundary radius of the frame's size). An object the prediction does not contain is scored as
  empty. No void label: YouTube-VOS annotations have none.
* Per object: the mean of J and of F over its scored frames. J and F overall: the mean over objects,
  pooled across videos. With `unseen_categories`: J_seen, J_unseen, F_seen, F_unseen are means over
  the objects of seen/unseen categories, and G = (J_seen + J_unseen + F_seen + F_unseen) / 4, the
  official YouTube-VOS overall score. **Without a seen/unseen split, G = (J + F) / 2**, which is NOT
  the official G; `YouTubeVOSResult.has_split` is False and `YouTubeVOSResult.note` says so (and the
  global CSV carries both).

Errors (EvaluationError, naming the file): a missing prediction PNG for a frame that is scored for some
object, a prediction whose size differs from its annotation, and a prediction holding object ids that
the video's meta.json does not list. Prediction PNGs for frames that are not scored (the first frame,
unannotated frames, under "authors" the last annotated one) are neither needed nor read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vos_datasets.youtube_vos import ObjectInfo

from .errors import EvaluationError, require_predictions
from .measures import boundary_radius, frame_scores
from .parallel import available_cores, map_videos
from .reading import read_mask, require_regular
from .tables import check_out_dir, check_set_name, write_output_set

OBJECT_COLUMNS = ["video", "object", "category", "seen_unseen", "J", "F", "n_frames"]
GLOBAL_COLUMNS = ["G", "J", "F", "J_seen", "J_unseen", "F_seen", "F_unseen", "n_objects", "n_videos",
                  "split", "G_definition", "frames"]
NO_SPLIT_NOTE = (
    "no seen/unseen split was supplied (unseen_categories=None): G = (J + F) / 2 over all objects, "
    "NOT the official YouTube-VOS G = (J_seen + J_unseen + F_seen + F_unseen) / 4"
)
SPLIT_NOTE = "G = (J_seen + J_unseen + F_seen + F_unseen) / 4 (official YouTube-VOS overall score)"
FRAME_RULES = {  # `frames`: which annotated frames score an object (module docstring)
    "authors": "frames after the object's first one, the video's last annotated frame excluded "
               "(frtm-vos and pytracking evaluate_sequence)",
    "all-after-first": "every annotated frame after the object's first one, the last included",
}


@dataclass(frozen=True)
class ObjectScores:
    """Per-frame J and F of one object over its scored frames."""

    video: str
    object_id: int
    category: str
    unseen: bool | None  # None: no seen/unseen split supplied
    frames: tuple[str, ...]
    j: np.ndarray
    f: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def j_mean(self) -> float:
        return float(np.mean(self.j))

    @property
    def f_mean(self) -> float:
        return float(np.mean(self.f))

    @property
    def seen_unseen(self) -> str:
        return "n/a" if self.unseen is None else ("unseen" if self.unseen else "seen")


@dataclass
class YouTubeVOSResult:
    """Scores of every object and the global figures (see the module docstring for the protocol).

    J_seen, J_unseen, F_seen, F_unseen are None when no seen/unseen split was supplied (has_split False);
    G is then (J + F) / 2 and `note` says that it is not the official G.
    """

    objects: list[ObjectScores]
    J: float
    F: float
    G: float
    has_split: bool
    note: str
    J_seen: float | None = None
    J_unseen: float | None = None
    F_seen: float | None = None
    F_unseen: float | None = None
    unseen_categories: frozenset[str] | None = None
    unscored: list[tuple[str, int]] = field(default_factory=list)  # (video, id): no frame to score
    frames: str = "authors"  # the FRAME_RULES entry that chose the scored frames

    @property
    def n_videos(self) -> int:
        return len({o.video for o in self.objects})

    def object_rows(self) -> list[dict]:
        """One row per object: video, object, category, seen_unseen, J, F, n_frames."""
        return [{"video": o.video, "object": o.object_id, "category": o.category, "seen_unseen": o.seen_unseen,
                 "J": o.j_mean, "F": o.f_mean, "n_frames": o.n_frames} for o in self.objects]

    def global_row(self) -> dict:
        """The global figures as one row (seen/unseen figures None without a split)."""
        return {"G": self.G, "J": self.J, "F": self.F, "J_seen": self.J_seen, "J_unseen": self.J_unseen,
                "F_seen": self.F_seen, "F_unseen": self.F_unseen, "n_objects": len(self.objects),
                "n_videos": self.n_videos, "split": "seen/unseen" if self.has_split else "none",
                "G_definition": self.note, "frames": self.frames}

    def summary(self) -> str:
        """A one-line human-readable summary."""
        text = f"G {self.G:.4f}  J {self.J:.4f}  F {self.F:.4f}"
        if self.has_split:
            text += (f"  J_seen {self.J_seen:.4f}  J_unseen {self.J_unseen:.4f}"
                     f"  F_seen {self.F_seen:.4f}  F_unseen {self.F_unseen:.4f}")
        return f"{text}  ({len(self.objects)} objects in {self.n_videos} videos; {self.note})"


@dataclass
class _VideoJob:
    video: str
    gt_paths: list[Path]  # scored frames only, in order
    pred_paths: list[Path]
    first_frames: dict[int, str]  # scored object id -> its first frame
    known_ids: frozenset[int]  # every id the video's meta lists


@dataclass
class _VideoScores:
    video: str
    frames: dict[int, list[str]]
    j: dict[int, list[float]]
    f: dict[int, list[float]]


def load_meta(meta: Mapping | str | os.PathLike) -> dict[str, dict[int, ObjectInfo]]:
    """video -> {object id: ObjectInfo} from a meta.json path or its parsed content.

    Objects with an empty frame list are dropped, as YouTubeVOSDataset.objects does.
    """
    source = "meta"
    if not isinstance(meta, Mapping):
        source = str(meta)
        path = Path(meta)
        if not path.is_file():
            raise EvaluationError(f"{path}: meta.json not found")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise EvaluationError(f"{path}: not valid JSON ({err})") from err
    videos = meta.get("videos") if isinstance(meta, Mapping) else None
    if not isinstance(videos, Mapping):
        raise EvaluationError(f"{source}: not a YouTube-VOS meta.json (expected {{\"videos\": {{...}}}})")
    out: dict[str, dict[int, ObjectInfo]] = {}
    for video, entry in videos.items():
        try:
            out[video] = {
                int(k): ObjectInfo(int(k), v.get("category", ""), tuple(sorted(v["frames"])))
                for k, v in entry["objects"].items()
                if v.get("frames")
            }
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise EvaluationError(f"{source}: video {video!r} has a malformed objects entry ({err!r})") from err
    return out


def _plan(gt_root: Path, pred_root: Path, meta: dict[str, dict[int, ObjectInfo]], videos: list[str],
          frames: str = "authors") -> tuple[list[_VideoJob], list[tuple[str, int]]]:
    """Pair every scored GT frame with its prediction, checking that the files exist, before scoring."""
    if not gt_root.is_dir():
        raise EvaluationError(f"{gt_root}: ground-truth annotations folder not found")
    if not pred_root.is_dir():
        raise EvaluationError(f"{pred_root}: prediction folder not found")
    jobs: list[_VideoJob] = []
    unscored: list[tuple[str, int]] = []
    for video in videos:
        gt_dir, pred_dir = gt_root / video, pred_root / video
        if not gt_dir.is_dir():
            raise EvaluationError(f"{gt_dir}: no ground-truth folder for video {video} listed in meta.json")
        gt_files = sorted(gt_dir.glob("*.png"))
        for path in gt_files:
            require_regular(path)
        gt_frames = [p.stem for p in gt_files]
        if not gt_frames:
            raise EvaluationError(f"{gt_dir}: no ground-truth PNGs")
        candidates = gt_frames[:-1] if frames == "authors" else gt_frames
        first_frames: dict[int, str] = {}
        for oid, info in sorted(meta[video].items()):
            if any(frame > info.first_frame for frame in candidates):
                first_frames[oid] = info.first_frame
            else:
                unscored.append((video, oid))
        if not first_frames:
            continue
        earliest = min(first_frames.values())
        scored = [frame for frame in candidates if frame > earliest]
        if not pred_dir.is_dir():
            raise EvaluationError(f"{pred_dir}: no prediction folder for video {video} "
                                  "(pass videos=[...] to score a subset)")
        require_predictions(pred_dir, scored, video, f"scored frame ({FRAME_RULES[frames]})")
        for frame in scored:
            require_regular(pred_dir / f"{frame}.png")
        jobs.append(_VideoJob(video, [gt_dir / f"{f}.png" for f in scored], [pred_dir / f"{f}.png" for f in scored],
                              first_frames, frozenset(meta[video])))
    return jobs, unscored


def _score_video(job: _VideoJob) -> _VideoScores:
    """Per-frame J and F of the scored objects of one video (runs in a worker process)."""
    scores = _VideoScores(job.video, {}, {}, {})
    for oid in job.first_frames:
        scores.frames[oid], scores.j[oid], scores.f[oid] = [], [], []
    for gt_path, pred_path in zip(job.gt_paths, job.pred_paths, strict=True):
        frame = gt_path.stem
        gt_ids = read_mask(gt_path, "davis2017")
        pred_ids = read_mask(pred_path, "davis2017")
        if pred_ids.shape != gt_ids.shape:
            raise EvaluationError(
                f"{pred_path}: mask is {pred_ids.shape[1]}x{pred_ids.shape[0]} but {gt_path} is "
                f"{gt_ids.shape[1]}x{gt_ids.shape[0]}; predictions must have the size of the annotations"
            )
        present = np.flatnonzero(np.bincount(pred_ids.ravel(), minlength=256))
        unknown = sorted(int(i) for i in present if i != 0 and int(i) not in job.known_ids)
        if unknown:
            raise EvaluationError(
                f"{pred_path}: object ids {unknown} are not in the meta.json objects of {job.video} "
                f"({sorted(job.known_ids)}); predictions must use the annotation's ids"
            )
        active = [oid for oid, first in job.first_frames.items() if frame > first]
        if not active:
            continue
        j_values, f_values = frame_scores(gt_ids, pred_ids, active, boundary_radius(gt_ids.shape))
        for oid, j, f in zip(active, j_values, f_values, strict=True):
            scores.frames[oid].append(frame)
            scores.j[oid].append(float(j))
            scores.f[oid].append(float(f))
    return scores


def evaluate_youtube_vos(gt_annotations_root: str | os.PathLike, pred_root: str | os.PathLike,
                         meta: Mapping | str | os.PathLike, videos: Iterable[str] | None = None,
                         unseen_categories: Iterable[str] | None = None, workers: int | None = None,
                         progress: bool = True, frames: str = "authors") -> YouTubeVOSResult:
    """Score `pred_root` against `gt_annotations_root` with the protocol of the module docstring.

    meta: meta.json's path or its parsed content ({"videos": ...}); it lists the objects, their
        categories and first frames.
    videos: the videos to score (default: every video of meta.json; each needs a ground-truth folder
        and a prediction folder). Prediction folders of other videos are ignored.
    unseen_categories: category names of the unseen classes; enables J/F_seen, J/F_unseen and the
        official G. None: no split, G = (J + F) / 2 (flagged in the result).
    workers: processes over videos (default: every core); 1 scores in this process.
    frames: which annotated frames score an object, a FRAME_RULES key (default "authors": the last annotated
        frame of each video excluded, as the papers' held-out tables).
    """
    if frames not in FRAME_RULES:
        raise ValueError(f"frames={frames!r}: one of {sorted(FRAME_RULES)}")
    if isinstance(unseen_categories, str):
        raise TypeError("unseen_categories must be a collection of category names, not a single string")
    gt_root, pred_root = Path(gt_annotations_root), Path(pred_root)
    objects = load_meta(meta)
    if videos is None:
        names = sorted(objects)
    else:
        names = list(dict.fromkeys(videos))
        unknown = [v for v in names if v not in objects]
        if unknown:
            raise EvaluationError(f"videos {unknown[:5]} ({len(unknown)} in all) are not in meta.json")
    jobs, unscored = _plan(gt_root, pred_root, objects, names, frames)
    if not jobs:
        raise EvaluationError(f"{gt_root}: no object has a frame to score ({FRAME_RULES[frames]}); nothing to score")
    unseen = frozenset(unseen_categories) if unseen_categories is not None else None
    if unseen is not None:
        categories = [objects[job.video][oid].category for job in jobs for oid in job.first_frames]
        n_unseen = sum(c in unseen for c in categories)
        if n_unseen == 0 or n_unseen == len(categories):
            kind = "unseen" if n_unseen == 0 else "seen"
            raise EvaluationError(
                f"unseen_categories {sorted(unseen)[:5]}: no scored object is {kind}, so J_{kind}, F_{kind} "
                "and G are undefined; check the category names against meta.json, or pass "
                "unseen_categories=None"
            )

    video_results = map_videos(_score_video, jobs, lambda job: len(job.gt_paths), workers, "youtube-vos", "video",
                               progress)

    scored: list[ObjectScores] = []
    for i in range(len(jobs)):
        video_scores = video_results[i]
        for oid in jobs[i].first_frames:
            category = objects[video_scores.video][oid].category
            scored.append(ObjectScores(
                video=video_scores.video, object_id=oid, category=category,
                unseen=None if unseen is None else category in unseen,
                frames=tuple(video_scores.frames[oid]), j=np.asarray(video_scores.j[oid]),
                f=np.asarray(video_scores.f[oid]),
            ))
    result = _summarise(scored, unseen, unscored)
    result.frames = frames
    return result


def _summarise(scored: list[ObjectScores], unseen: frozenset[str] | None,
               unscored: list[tuple[str, int]]) -> YouTubeVOSResult:
    j_means = np.array([o.j_mean for o in scored])
    f_means = np.array([o.f_mean for o in scored])
    j_all, f_all = float(j_means.mean()), float(f_means.mean())
    if unseen is None:
        return YouTubeVOSResult(scored, J=j_all, F=f_all, G=(j_all + f_all) / 2, has_split=False,
                                note=NO_SPLIT_NOTE, unscored=unscored)
    is_unseen = np.array([bool(o.unseen) for o in scored])
    j_seen, j_unseen = float(j_means[~is_unseen].mean()), float(j_means[is_unseen].mean())
    f_seen, f_unseen = float(f_means[~is_unseen].mean()), float(f_means[is_unseen].mean())
    return YouTubeVOSResult(scored, J=j_all, F=f_all, G=(j_seen + j_unseen + f_seen + f_unseen) / 4,
                            has_split=True, note=SPLIT_NOTE, J_seen=j_seen, J_unseen=j_unseen, F_seen=f_seen,
                            F_unseen=f_unseen, unseen_categories=unseen, unscored=unscored)


def write_youtube_vos_tables(result: YouTubeVOSResult, out_dir: str | os.PathLike,
                             subset: str = "youtube_vos") -> dict[str, Path]:
    """Write the per-object and the one-row global CSV (full precision) as one set: the global CSV is written
    last, and the two never come from different runs (metrics.tables.write_output_set).

    Files: per-object_results-<subset>.csv (video, object, category, seen_unseen, J, F, n_frames) and
    global_results-<subset>.csv (G, J, F, the seen/unseen figures, counts, split and G_definition).
    Returns the paths by kind ("per_object", "global").
    """
    check_set_name(subset)
    tables = {
        "per_object": (f"per-object_results-{subset}.csv", pd.DataFrame(result.object_rows(), columns=OBJECT_COLUMNS)),
        "global": (f"global_results-{subset}.csv", pd.DataFrame([result.global_row()], columns=GLOBAL_COLUMNS)),
    }
    written = write_output_set(out_dir, {name: frame.to_csv(index=False, lineterminator="\n").encode()
                                         for name, frame in tables.values()})
    return {kind: written[name] for kind, (name, _) in tables.items()}


def main(argv: list[str] | None = None) -> int:
    """python -m metrics.youtube_vos ROOT SPLIT PRED_DIR --out DIR [--videos-list NAME] [--set NAME]"""
    import argparse
    import sys

    from vos_datasets.splits import read_split

    parser = argparse.ArgumentParser(prog="python -m metrics.youtube_vos",
                                     description="Score predictions on YouTube-VOS videos with known ground truth "
                                                 "(the papers' held-out train splits).")
    parser.add_argument("root", type=Path, help="YouTube-VOS folder holding <split>/Annotations and <split>/meta.json")
    parser.add_argument("split", help="the folder under root, e.g. train")
    parser.add_argument("predictions", type=Path, help="<video>/<frame>.png result folders")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--videos", nargs="+", help="the videos to score (default: all of meta.json)")
    parser.add_argument("--videos-list", help="a named split of vos_datasets/splits or a file of video ids")
    parser.add_argument("--set", default="youtube_vos", help="name in the CSV file names")
    parser.add_argument("--workers", type=int, default=None, help="processes, 1 or more (default: every core)")
    parser.add_argument("--frames", choices=sorted(FRAME_RULES), default="authors",
                        help="which annotated frames score an object: authors (default; the video's last annotated "
                             "frame excluded, as frtm-vos and pytracking) or all-after-first (the last one scored)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        check_set_name(args.set)
        check_out_dir(args.out)
    except EvaluationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"error: --workers {args.workers}: give 1 or more processes (omit --workers to use every core)",
              file=sys.stderr)
        return 2
    if args.workers is not None and args.workers > available_cores():
        print(f"note: --workers {args.workers} capped at {available_cores()}, the cores available to this process",
              file=sys.stderr)
    videos = args.videos or (read_split(args.videos_list) if args.videos_list else None)
    try:
        result = evaluate_youtube_vos(args.root / args.split / "Annotations", args.predictions,
                                      args.root / args.split / "meta.json", videos, workers=args.workers,
                                      progress=not args.quiet, frames=args.frames)
        write_youtube_vos_tables(result, args.out, args.set)
    except (EvaluationError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"J {100 * result.J:.1f}  F {100 * result.F:.1f}  G {100 * result.G:.1f} ({result.note})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
