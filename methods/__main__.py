"""python -m methods infer --method NAME --dataset JSON --out DIR [--timing FILE] [--settings JSON]
   python -m methods fix-weights --checkpoint FILE --out FILE   (fixed weights of the regression check)

The workflow's form (settings as JSON). By hand, `vos-infer` runs a variant or a preset's row by name on a
folder of frames or a DAVIS folder (`vos-infer --help`, methods/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vos_datasets.build import build_dataset
from vos_datasets.masks import MaskFormatError
from vos_datasets.sequence import DatasetError

from .runner import FPS_PROTOCOLS, METHODS, build_method, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m methods", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    infer = sub.add_parser("infer", help="run a method over a dataset and write DAVIS result folders")
    infer.add_argument("--method", required=True, choices=sorted(METHODS))
    infer.add_argument("--dataset", required=True, help='dataset spec as JSON, e.g. {"kind": "davis", "root": ...}')
    infer.add_argument("--settings", default="{}", help="the variant's settings as JSON")
    infer.add_argument("--out", type=Path, required=True)
    infer.add_argument("--timing", type=Path)
    infer.add_argument("--label", default="", help="free text stored in the timing record (preset, row)")
    infer.add_argument("--score-maps", type=Path, help="also save the target model's coarse scores (FRTM) here")
    infer.add_argument("--score-map-sequences", nargs="+", metavar="SEQUENCE",
                       help="whose score maps to save (default: the first sequence by name; 'all': every one)")
    infer.add_argument("--fps-protocol", choices=FPS_PROTOCOLS, default="authors",
                       help="how FPS is timed (methods/runner.py): the authors' (default) or streaming")
    infer.add_argument("--warm-up-frames", type=int, default=0, metavar="N",
                       help="before each sequence, run the method untimed on its first N frames (frtm-vos: 2)")
    infer.add_argument("--quiet", action="store_true")
    fix = sub.add_parser("fix-weights", help="a compact fixed copy of trained weights (regression check)")
    fix.add_argument("--checkpoint", type=Path, required=True, help="an FRTM head or LWL network file")
    fix.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "fix-weights":
        from .core.checkpoints import fix_weights

        try:
            kept = fix_weights(args.checkpoint, args.out)
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{args.out}: {kept['tensors']} tensors ({kept['quantised']} as int8), {kept['bytes']} bytes, "
              f"backbone {kept['backbone']}")
        return 0
    try:
        method = build_method(args.method, json.loads(args.settings))
        dataset = build_dataset(json.loads(args.dataset))
        record = run(method, dataset, args.out, args.timing, progress=not args.quiet, extra={"label": args.label},
                     warm_up_frames=args.warm_up_frames, fps_protocol=args.fps_protocol,
                     score_maps_dir=args.score_maps,
                     score_map_sequences=args.score_map_sequences)
    except (DatasetError, MaskFormatError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.method}: {record['frames']} frames, {record['mean_fps_over_sequences']:.1f} FPS (mean over sequences)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
