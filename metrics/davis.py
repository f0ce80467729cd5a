"""The DAVIS evaluation protocols over result folders: semi-supervised (here) and unsupervised
(metrics/unsupervised.py, chosen by `Protocol.task`).

Both folders hold <sequence>/<frame>.png. Semi-supervised, following the official toolkit (davis2017-evaluation):
the first and last frame of every sequence are excluded; the objects of a sequence are 1..max id of
its first ground-truth frame; an object the prediction never contains is scored as empty; frames
where ground truth and prediction are both empty score J = F = 1; every statistic is averaged over
all objects pooled across sequences, and J&F-Mean = (J-Mean + F-Mean) / 2. The toolkit's quirks are
reproduced by default and listed in `Protocol` (see also metrics/README.md); `Protocol.corrected()`
fixes the ones that are bugs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence as SequenceT
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vos_datasets.masks import VOID_ID, Convention

from . import gt_cache
from .errors import EvaluationError, png_stems, require_predictions
from .measures import BOUNDARY_THRESHOLD, boundary_radius, frame_scores, present_labels, statistics
from .parallel import map_videos
from .reading import read_ground_truth, read_mask, read_regular, require_regular

GLOBAL_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
TASKS = ("semi-supervised", "unsupervised")
# The toolkit's rules that differ between its two tasks: (ignore_void, skip_first_last).
_TASK_RULES = {"semi-supervised": (False, True), "unsupervised": (True, False)}


@dataclass(frozen=True)
class Protocol:
    """How sequences are scored. The defaults reproduce the official toolkit exactly, for either task.

    task: "semi-supervised" (the annotation's ids, given on the first frame) or "unsupervised" (up to
        20 proposals per video matched to the annotated objects: metrics/unsupervised.py).
    objects: "first-frame" (official: ids 1..max of the first GT frame; objects entering later are
        not scored) or "all" (every id in any GT frame, each scored from the frame after it first
        appears, as YouTube-VOS does; semi-supervised only).
    ignore_void: False (official semi-supervised: void pixels count as background) or True (void
        pixels are left out of J and F, as the toolkit's unsupervised task does); None: the task's rule.
    decay_uint8_quirk: True (official: bin edges cast to uint8, wrong for sequences over 256
        frames) or False (exact bin edges).
    skip_first_last: True (official semi-supervised) or False (official unsupervised: every frame is
        scored); None: the task's rule.
    """

    objects: str = "first-frame"
    ignore_void: bool | None = None
    decay_uint8_quirk: bool = True
    skip_first_last: bool | None = None
    bound_th: float = BOUNDARY_THRESHOLD
    task: str = "semi-supervised"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.objects not in ("first-frame", "all"):
            raise ValueError(f"objects must be 'first-frame' or 'all', got {self.objects!r}")
        if self.task == "unsupervised" and self.objects != "first-frame":
            raise ValueError("objects='all' is not defined for the unsupervised task: the toolkit matches proposals "
                             "to the objects of the first frame (objects='first-frame')")
        ignore_void, skip_first_last = _TASK_RULES[self.task]
        if self.ignore_void is None:
            object.__setattr__(self, "ignore_void", ignore_void)
        if self.skip_first_last is None:
            object.__setattr__(self, "skip_first_last", skip_first_last)

    @classmethod
    def corrected(cls) -> Protocol:
        return cls(objects="all", ignore_void=True, decay_uint8_quirk=False)

    @classmethod
    def unsupervised(cls) -> Protocol:
        """The official toolkit's unsupervised task: every frame scored, void left out, proposals matched."""
        return cls(task="unsupervised")


@dataclass
class SequenceScores:
    """Per-frame J and F of every scored object of one sequence."""

    sequence: str
    object_ids: list[int]
    frames: dict[int, list[str]] = field(default_factory=dict)  # object id -> scored frame names
    j: dict[int, np.ndarray] = field(default_factory=dict)
    f: dict[int, np.ndarray] = field(default_factory=dict)
    # unsupervised task: row id -> (proposal id, annotated object id) of the Hungarian matching
    matches: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass
class _Job:
    sequence: str
    gt_paths: list[Path]
    pred_paths: list[Path]
    gt_convention: Convention
    pred_convention: Convention
    protocol: Protocol
    cache_dir: Path | None = None


def list_sequences(folder: Path, role: str) -> list[str]:
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: {role} folder not found")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise EvaluationError(f"{folder}: {role} folder holds no sequence folders (<sequence>/<frame>.png)")
    return names


def plan_jobs(gt_root: Path, pred_root: Path, sequences: SequenceT[str] | None, protocol: Protocol,
              gt_convention: Convention = "auto", pred_convention: Convention = "auto",
              cache_dir: Path | None = None) -> list[_Job]:
    """Check both folders before any scoring and pair every needed GT frame with its prediction.

    Refused here, each with an EvaluationError naming the file or sequence: a sequence named twice, a
    ground-truth entry `<frame>.png` or a needed prediction that is not a regular file (a folder, a FIFO,
    a link to a device), and a sequence with no frame to score (1 or 2 frames under the official protocol,
    which skips the first and the last).
    """
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    if sequences is not None:
        sequences = list(sequences)
        seen: set[str] = set()
        twice = sorted({name for name in sequences if name in seen or seen.add(name)})
        if twice:
            raise EvaluationError(
                f"sequences {twice[:5]} are named more than once in the sequence list (--sequences or "
                "--split-file); name each sequence once (a repeated one would be scored, and weigh in the "
                "means, once per mention)"
            )
    gt_names = list_sequences(gt_root, "ground-truth")
    pred_names = list_sequences(pred_root, "prediction")
    if sequences is None:
        missing = sorted(set(gt_names) - set(pred_names))
        extra = sorted(set(pred_names) - set(gt_names))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no prediction for {len(missing)} ground-truth sequences {missing[:5]}")
            if extra:
                parts.append(f"{len(extra)} predicted sequences have no ground truth {extra[:5]}")
            raise EvaluationError(
                f"{pred_root} does not match {gt_root}: " + "; ".join(parts)
                + ". Pass --sequences (or --split-file) to score a subset."
            )
        sequences = gt_names
    else:
        for name in sequences:
            if name not in gt_names:
                raise EvaluationError(f"{gt_root / name}: requested sequence has no ground truth")
            if name not in pred_names:
                raise EvaluationError(f"{pred_root / name}: requested sequence has no prediction folder")
    jobs = []
    for name in sequences:
        gt_dir, pred_dir = gt_root / name, pred_root / name
        gt_frames = png_stems(gt_dir)
        gt_paths = [gt_dir / f"{frame}.png" for frame in gt_frames]
        for path in gt_paths:
            require_regular(path)
        if not gt_frames:
            raise EvaluationError(f"{gt_root / name}: no ground-truth PNGs")
        scored = gt_frames[1:-1] if protocol.skip_first_last else gt_frames
        if not scored:
            raise EvaluationError(
                f"{gt_root / name}: {len(gt_frames)} ground-truth frame(s), none of them scored (the official "
                "protocol skips the first and the last frame); a sequence needs 3 or more annotated frames: "
                "leave it out of --sequences, or pass --keep-first-last"
            )
        require_predictions(pred_dir, scored, name, "annotated frame")
        pred_paths = [pred_dir / f"{frame}.png" for frame in scored]
        for path in pred_paths:
            require_regular(path)
        jobs.append(_Job(
            sequence=name,
            gt_paths=gt_paths,
            pred_paths=pred_paths,
            gt_convention=gt_convention,
            pred_convention=pred_convention,
            protocol=protocol,
            cache_dir=cache_dir,
        ))
    return jobs


def present_ids(ids: np.ndarray) -> list[int]:
    """Object ids present in a label map (void excluded), without sorting the pixels."""
    return [int(i) for i in present_labels(ids) if 0 < i < VOID_ID]


@dataclass
class GroundTruthFrame:
    """A scored frame's labels, void turned into background, and the void mask when void is ignored."""

    ids: np.ndarray
    void: np.ndarray | None


def ground_truth_frame(ids: np.ndarray, ignore_void: bool) -> GroundTruthFrame:
    """Labels without void (the toolkit turns void into background), and the void mask when it is ignored."""
    void_mask = ids == VOID_ID
    if not void_mask.any():
        return GroundTruthFrame(ids, None)
    return GroundTruthFrame(np.where(void_mask, 0, ids).astype(np.uint8), void_mask if ignore_void else None)


def load_ground_truth(job: _Job) -> list[GroundTruthFrame]:
    """The first GT frame and the scored ones, decoded (or read from the cache).

    One mask convention for the whole sequence (metrics.reading.read_ground_truth); files are read as
    regular files only, once each. The cache key hashes the bytes that are decoded (metrics.gt_cache).
    """
    protocol = job.protocol
    needed = [job.gt_paths[0], *(job.gt_paths[1:-1] if protocol.skip_first_last else job.gt_paths[1:])]
    contents = [read_regular(path) for path in needed]
    labels = cache_file = None
    if job.cache_dir is not None:
        key = gt_cache.cache_key([p.name for p in needed], contents, job.gt_convention)
        cache_file = gt_cache.entry_path(job.cache_dir, job.sequence, key)
        labels = gt_cache.load_or_discard(cache_file, len(needed))
    if labels is None:
        labels = read_ground_truth(needed, contents, job.gt_convention, job.sequence)
        if cache_file is not None:
            try:
                gt_cache.save(cache_file, labels)
            except OSError as err:
                print(f"note: {cache_file}: cannot store the decoded ground truth ({err.strerror}); "
                      "scoring without the cache", file=sys.stderr)
    return [ground_truth_frame(ids, protocol.ignore_void) for ids in labels]


def score_sequence(job: _Job) -> SequenceScores:
    """Per-frame J and F of one sequence (runs in a worker process)."""
    protocol = job.protocol
    first_gt, *gt_frames = load_ground_truth(job)
    height, width = first_gt.ids.shape
    radius = boundary_radius((height, width), protocol.bound_th)
    if not protocol.skip_first_last:
        gt_frames = [first_gt, *gt_frames]

    # start[oid]: index of the object's first scored frame among the scored frames.
    if protocol.objects == "first-frame":
        object_ids = list(range(1, int(first_gt.ids.max()) + 1))  # official: 1..max, gaps included
        start = dict.fromkeys(object_ids, 0)
        known = set(object_ids)  # the ids a prediction may use
    else:
        # An object is given on the frame where it first appears and scored from the next one on.
        appearance: dict[int, int] = {}
        for index, frame in enumerate([first_gt, *gt_frames] if protocol.skip_first_last else gt_frames):
            for oid in present_ids(frame.ids):
                appearance.setdefault(oid, index)
        start = {oid: a if protocol.skip_first_last else a + 1 for oid, a in appearance.items()}
        object_ids = sorted(oid for oid in start if start[oid] < len(gt_frames))  # else nothing to score
        # An object given on the last scored frame has nothing to score, but a method rightly paints it there
        known = set(appearance)

    scores = SequenceScores(job.sequence, object_ids)
    highest_known = max(known, default=0)
    contiguous = known == set(range(1, highest_known + 1))
    j_all = np.empty((len(gt_frames), len(object_ids)))
    f_all = np.empty((len(gt_frames), len(object_ids)))
    for row, (gt, pred_path) in enumerate(zip(gt_frames, job.pred_paths, strict=True)):
        pred_ids = _read_sized(pred_path, job.pred_convention, (height, width), job.gt_paths[0])
        top = int(pred_ids.max())
        if top > highest_known or (top and not contiguous and not set(present_ids(pred_ids)) <= known):
            unknown = sorted(set(present_ids(pred_ids)) - known) or [top]
            raise EvaluationError(
                f"{pred_path}: object ids {unknown} are not in the ground truth of {job.sequence} "
                f"(annotated objects: {sorted(known) or 'none'}); predictions must use the annotation's ids"
                + ("; objects that enter mid-video are scored with --objects all" if protocol.objects == "first-frame" else "")
            )
        j_all[row], f_all[row] = frame_scores(gt.ids, pred_ids, object_ids, radius, gt.void)
    frame_names = [p.stem for p in job.pred_paths]
    for column, oid in enumerate(object_ids):
        scores.frames[oid] = frame_names[start[oid]:]
        scores.j[oid] = j_all[start[oid]:, column]
        scores.f[oid] = f_all[start[oid]:, column]
    return scores


def _read_sized(path: Path, convention: Convention, size: tuple[int, int], reference: Path) -> np.ndarray:
    ids = read_mask(path, convention)
    if ids.shape != size:
        raise EvaluationError(
            f"{path}: mask is {ids.shape[1]}x{ids.shape[0]} but {reference} is {size[1]}x{size[0]}; "
            "predictions must have the size of the annotations"
        )
    return ids


@dataclass
class EvaluationResult:
    protocol: Protocol
    sequences: list[SequenceScores]

    def object_statistics(self) -> list[dict]:
        """One row per object `<sequence>_<id>` with the six official figures."""
        rows = []
        for seq in self.sequences:
            for oid in seq.object_ids:
                jm, jr, jd = statistics(seq.j[oid], self.protocol.decay_uint8_quirk)
                fm, fr, fd = statistics(seq.f[oid], self.protocol.decay_uint8_quirk)
                rows.append({"Sequence": f"{seq.sequence}_{oid}", "J-Mean": jm, "J-Recall": jr, "J-Decay": jd,
                             "F-Mean": fm, "F-Recall": fr, "F-Decay": fd})
        return rows

    def global_statistics(self) -> dict[str, float]:
        """Each figure averaged over all objects pooled across sequences (official global table)."""
        rows = self.object_statistics()
        if not rows:
            raise EvaluationError("no objects to score: the ground truth holds no object ids")
        out = {}
        for key in GLOBAL_COLUMNS[1:]:
            out[key] = float(np.mean([row[key] for row in rows]))
        return {"J&F-Mean": (out["J-Mean"] + out["F-Mean"]) / 2, **out}

    def per_frame(self) -> list[dict]:
        rows = []
        for seq in self.sequences:
            for oid in seq.object_ids:
                for frame, j, f in zip(seq.frames[oid], seq.j[oid], seq.f[oid], strict=True):
                    rows.append({"Sequence": seq.sequence, "Object": oid, "Frame": frame, "J": j, "F": f})
        return rows


def evaluate(gt_root: str | Path, pred_root: str | Path, sequences: SequenceT[str] | None = None,
             protocol: Protocol | None = None, workers: int | None = None, gt_convention: Convention = "auto",
             pred_convention: Convention = "auto", progress: bool = True,
             cache_dir: str | Path | None = None, task: str | None = None) -> EvaluationResult:
    """Score every sequence of `pred_root` against `gt_root`; `workers` processes (default: all cores).

    task: "semi-supervised" (default) or "unsupervised" (gt_root: DAVIS/Annotations_unsupervised/480p;
        pred_root: proposals 1..20), each with the toolkit's rules; or give a `protocol` (its task is used).
    cache_dir: where decoded ground truth is kept between runs (see metrics.gt_cache); None: no cache.
    """
    if protocol is None:
        protocol = Protocol(task=task or "semi-supervised")
    elif task is not None and task != protocol.task:
        raise ValueError(f"task={task!r} but the protocol's task is {protocol.task!r}; give one of them")
    jobs = plan_jobs(Path(gt_root), Path(pred_root), sequences, protocol, gt_convention, pred_convention,
                     Path(cache_dir) if cache_dir is not None else None)
    score = score_sequence
    if protocol.task == "unsupervised":
        from .unsupervised import score_proposals  # imports SciPy: only for this task

        score = score_proposals
    scores = map_videos(score, jobs, lambda job: len(job.pred_paths), workers, "evaluate", "seq", progress)
    return EvaluationResult(protocol, scores)
