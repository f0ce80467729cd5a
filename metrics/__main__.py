"""vos-eval GT_DIR PRED_DIR --out OUT_DIR, or python -m metrics ... (see metrics/README.md)"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from vos_datasets.davis import read_image_set
from vos_datasets.masks import CONVENTIONS

from .davis import TASKS, EvaluationError, Protocol, evaluate
from .gt_cache import default_cache_dir
from .parallel import available_cores, keep_freed_memory
from .tables import check_out_dir, check_set_name, write_tables


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-eval" if Path(sys.argv[0]).name == "vos-eval" else "python -m metrics",
        description="Score a VOS result folder with the DAVIS protocol of the semi-supervised or the unsupervised "
        "task (same figures as the official davis2017-evaluation toolkit). Both folders hold <sequence>/<frame>.png.",
    )
    parser.add_argument("gt_dir", type=Path, help="ground truth, e.g. DAVIS/Annotations/480p (DAVIS 2017 "
                        "indexed or DAVIS 2016 0/255 masks; --task unsupervised: DAVIS/Annotations_unsupervised/480p)")
    parser.add_argument("pred_dir", type=Path, help="results: indexed PNGs with the annotation's ids (--task "
                        "unsupervised: proposal ids 1..20)")
    parser.add_argument("--task", choices=TASKS, default="semi-supervised",
                        help="semi-supervised (default) or unsupervised: up to 20 proposals per sequence, matched to "
                        "the annotated objects (Hungarian method), every frame scored, void left out, as the toolkit")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for the CSV files (never the inputs); protocol-<set>.json, written last, "
                        "marks a complete set")
    parser.add_argument("--set", dest="subset", default="val",
                        help="name used in the CSV file names (default val); a plain name: letters, digits, . _ + -")
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument("--sequences", nargs="+", help="score only these sequences")
    subset.add_argument("--split-file", type=Path, help="score the sequences of an ImageSets file")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes, 1 or more (default: every core; more than the cores is capped at them)")
    parser.add_argument("--gt-format", choices=CONVENTIONS, default="auto",
                        help="auto (decided once per sequence): palette PNGs are DAVIS 2017 ids (255 = void), grayscale "
                        "0/255 PNGs are DAVIS 2016; a frame that reads otherwise than its sequence is an error")
    parser.add_argument("--pred-format", choices=CONVENTIONS, default="auto")
    parser.add_argument("--objects", choices=["first-frame", "all"], default="first-frame",
                        help="first-frame: official (ids 1..max of the first GT frame); all: also objects that "
                        "enter later, each scored from the frame after it appears")
    parser.add_argument("--ignore-void", action="store_true",
                        help="leave void (255) pixels out of J and F (the official semi-supervised mode does not)")
    parser.add_argument("--exact-decay", action="store_true",
                        help="exact decay bins (the official toolkit casts them to uint8: wrong beyond 256 frames)")
    parser.add_argument("--corrected", action="store_true",
                        help="all three corrections above: --objects all --ignore-void --exact-decay")
    parser.add_argument("--keep-first-last", action="store_true",
                        help="also score the first and last frame (the official protocol excludes both)")
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--cache-dir", type=Path, default=None,
                       help=f"where decoded ground truth is kept between runs (default {default_cache_dir()}, "
                       "or $VOS_CACHE_DIR); keyed by a hash of every annotation's content, so edits are never masked")
    cache.add_argument("--no-cache", action="store_true", help="decode the ground truth afresh, keep nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def usage_error(args: argparse.Namespace) -> str | None:
    """The first problem with the options that needs no scoring to find, as a one-line message."""
    try:
        check_set_name(args.subset)
        check_out_dir(args.out)
    except EvaluationError as err:
        return str(err)
    if args.workers is not None and args.workers < 1:
        return f"--workers {args.workers}: give 1 or more processes (omit --workers to use every core)"
    if args.task == "unsupervised" and (args.corrected or args.objects == "all"):
        option = "--corrected" if args.corrected else "--objects all"
        return (f"{option}: the unsupervised task matches proposals to the objects of the first frame only; drop "
                f"{option} (--exact-decay is the correction that applies)")
    return None


def annotations_note(gt_dir: Path, task: str) -> str | None:
    """A note when GT_DIR looks like the other task's annotations (DAVIS keeps them in two folders whose objects
    differ): Annotations/ for the semi-supervised task, Annotations_unsupervised/ for the unsupervised one."""
    parts = gt_dir.absolute().parts  # as the user named it (a link may point anywhere)
    other = "Annotations" if task == "unsupervised" else "Annotations_unsupervised"
    if other in parts:
        wanted = "Annotations_unsupervised" if task == "unsupervised" else "Annotations"
        return (f"note: {gt_dir} looks like DAVIS's {other} folder, but the {task} task is scored against "
                f"{wanted}/480p (its objects differ); pass that folder unless this is on purpose")
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = usage_error(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    cores = available_cores()
    if args.workers is not None and args.workers > cores:
        print(f"note: --workers {args.workers} capped at {cores}, the cores available to this process",
              file=sys.stderr)
        args.workers = cores
    keep_freed_memory()
    if args.task == "unsupervised":  # its own void and frame rules; --ignore-void is its rule already
        protocol = Protocol(task="unsupervised", decay_uint8_quirk=not args.exact_decay)
    elif args.corrected:
        protocol = Protocol.corrected()
    else:
        protocol = Protocol(objects=args.objects, ignore_void=args.ignore_void,
                            decay_uint8_quirk=not args.exact_decay)
    note = annotations_note(args.gt_dir, args.task)
    if note:
        print(note, file=sys.stderr)
    if args.keep_first_last:
        protocol = dataclasses.replace(protocol, skip_first_last=False)
    out = args.out.resolve()
    for folder in (args.gt_dir, args.pred_dir):
        if folder.exists() and (out == folder.resolve() or folder.resolve() in out.parents):
            print(f"error: --out {args.out} lies inside the input folder {folder}; choose another", file=sys.stderr)
            return 2
    sequences = args.sequences
    try:
        if args.split_file:
            sequences = read_image_set(args.split_file)
        started = time.perf_counter()
        cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
        result = evaluate(args.gt_dir, args.pred_dir, sequences, protocol, args.workers, args.gt_format,
                          args.pred_format, progress=not args.quiet, cache_dir=cache_dir)
        seconds = time.perf_counter() - started
        paths = write_tables(result, args.out, args.subset, {"seconds": seconds, "gt_dir": str(args.gt_dir),
                                                            "pred_dir": str(args.pred_dir)})
    except (EvaluationError, ValueError, OSError) as err:  # OSError's message names the file
        print(f"error: {err}", file=sys.stderr)
        return 1
    glob = result.global_statistics()
    print(" ".join(f"{k} {v:.3f}" for k, v in glob.items()))
    print(f"{sum(len(s.object_ids) for s in result.sequences)} objects in {len(result.sequences)} sequences, "
          f"{seconds:.2f} s; tables in {paths['global'].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
