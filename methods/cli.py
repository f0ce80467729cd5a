"""vos-infer: run a paper variant or a preset's row on a folder of frames, or on a DAVIS-layout dataset.

examples:
  # one video: its frames, the first frame's mask and trained weights
  vos-infer --variant frtm/ours --checkpoint head.pt --frames blackswan/ --first-mask 00000.png --out results/
  # a preset's row: its backbone, input size and device come with it
  vos-infer --preset ci --row frtm-no-update --checkpoint head.pt --frames blackswan/ --first-mask 00000.png \
            --out results/
  # every video of a DAVIS folder (JPEGImages/, Annotations/, ImageSets/), on the CPU
  vos-infer --variant lwl/full --checkpoint lwl.pt --davis DAVIS/ --split val --device cpu --out results/
  # the lower bound needs no weights; --list names every variant and preset row
  vos-infer --variant first_frame_copy --frames blackswan/ --first-mask 00000.png --out results/

The results are indexed PNGs in OUT/<video>/<frame>.png, the layout vos-eval scores
(vos-eval DAVIS/Annotations/480p results/ --out scores/). One video replaces only OUT/<video>/;
a DAVIS folder replaces OUT as a whole. The mask holds the objects' ids (a DAVIS annotation: indexed PNG,
or 0/255 grayscale for one object); it belongs to the frame of its name (00000.png -> 00000.jpg) or,
named otherwise, to the first frame.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import yaml

from vos_datasets.masks import MaskFormatError
from vos_datasets.sequence import DatasetError

from .rows import Resolved, config_dir, load_preset, load_variants, preset_names, resolve_row, resolve_variant


class UsageError(ValueError):
    """Options that cannot run, found before any model is built."""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", 1)[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_argument_group("what to run (one of)")
    what.add_argument("--variant", metavar="METHOD/VARIANT",
                      help="a variant of config/variants.yaml, e.g. frtm/ours, frtm/fast, lwl/full; or a method "
                      "without variants, first_frame_copy")
    what.add_argument("--preset", metavar="NAME|FILE", help="a preset (ci, davis2016, paper, ...) or a preset file; "
                      "with --row")
    what.add_argument("--row", help="a row of --preset, e.g. frtm-ours-fixed")
    what.add_argument("--list", action="store_true", help="list the variants and every preset's rows, and exit")
    weights = parser.add_argument_group("weights and settings")
    weights.add_argument("--checkpoint", type=Path, metavar="FILE",
                         help="trained weights: an FRTM head or LWL network (the workflow's training/<name>/head.pt "
                         "or the authors' released file); a row with `checkpoint:` uses its own by default")
    weights.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override one setting (value read as YAML), e.g. --set input_size=[240,432] "
                         "--set update=false; repeatable")
    weights.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the variant's or preset's)")
    data = parser.add_argument_group("input (one video, or a DAVIS folder)")
    data.add_argument("--frames", type=Path, metavar="DIR", help="folder of one video's frames (.jpg, .jpeg or .png)")
    data.add_argument("--first-mask", type=Path, metavar="PNG", help="the mask of the first annotated frame")
    data.add_argument("--name", help="the video's name in OUT (default: the frames folder's name)")
    data.add_argument("--davis", type=Path, metavar="ROOT", help="a DAVIS-layout folder: every video of --split")
    data.add_argument("--split", default="val", help="with --davis: the ImageSets split (default val)")
    data.add_argument("--year", default="2017", choices=["2016", "2017"], help="with --davis (default 2017)")
    data.add_argument("--resolution", default="480p", help="with --davis (default 480p)")
    data.add_argument("--sequences", nargs="+", metavar="VIDEO", help="with --davis: only these videos")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, metavar="DIR", help="results folder: OUT/<video>/<frame>.png")
    out.add_argument("--timing", type=Path, metavar="FILE", help="also write the timing record (JSON) here")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def parse_overrides(items: list[str]) -> dict:
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item}: write KEY=VALUE, e.g. --set update_interval=16")
        try:
            settings[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise UsageError(f"--set {item}: the value is not YAML ({str(err).splitlines()[0]}); quote text, "
                             "write lists as [1,2]") from None
    return settings


def resolve(args: argparse.Namespace) -> Resolved:
    if (args.variant is None) == (args.preset is None):
        raise UsageError("name what to run: --variant METHOD/VARIANT (e.g. frtm/ours) or --preset NAME --row ROW; "
                         "vos-infer --list shows them")
    if args.preset is not None and not args.row:
        raise UsageError(f"--preset {args.preset} needs --row ROW; vos-infer --list shows its rows")
    if args.variant is not None and args.row:
        raise UsageError("--row goes with --preset, not --variant")
    resolved = resolve_row(args.preset, args.row) if args.preset else resolve_variant(args.variant)
    from .registry import METHODS, inference_settings

    if resolved.method not in METHODS:
        raise UsageError(f"--variant {args.variant}: unknown method {resolved.method!r}; known methods: "
                         f"{', '.join(sorted(METHODS))} (vos-infer --list shows the variants)")
    resolved.settings.update(parse_overrides(args.overrides))
    if args.device:
        resolved.settings["device"] = args.device
    if args.checkpoint is not None:
        if not args.checkpoint.is_file():
            raise UsageError(f"{args.checkpoint}: checkpoint not found; give the trained weights file with --checkpoint")
        resolved.settings["checkpoint"] = str(args.checkpoint)
    elif resolved.weights is not None:  # the row's own file, relative to the checkout the workflow runs in
        found = [p for p in (Path(resolved.weights), config_dir().parent / resolved.weights) if p.is_file()]
        if not found:
            raise UsageError(f"rows.{args.row}.checkpoint {resolved.weights}: not found here or in the checkout; "
                             "give the weights file with --checkpoint")
        resolved.settings["checkpoint"] = str(found[0])
    elif METHODS[resolved.method].weights:  # it runs with trained weights
        hint = f" ({resolved.weights_hint})" if resolved.weights_hint else ""
        raise UsageError(f"{resolved.method} needs trained weights: give --checkpoint FILE{hint}")
    inference_settings(resolved.method, resolved.settings)  # torch-free: a typo fails before any model loads
    return resolved


def read_input(args: argparse.Namespace):
    """(the dataset to run, the folder in OUT it replaces, the input paths OUT must not swallow)."""
    if (args.frames is None) == (args.davis is None):
        raise UsageError("give the input: --frames DIR --first-mask PNG (one video) or --davis ROOT (a dataset)")
    if args.frames is not None:
        if args.first_mask is None:
            raise UsageError("--frames needs --first-mask PNG, the mask of the objects in the first frame")
        from vos_datasets.frames_folder import folder_sequence

        sequence = folder_sequence(args.frames, args.first_mask, args.name)
        return [sequence], args.out / sequence.name, [args.frames, args.first_mask]
    if args.first_mask is not None or args.name is not None:
        raise UsageError("--first-mask and --name go with --frames; a DAVIS folder's masks are its Annotations/")
    from vos_datasets.build import build_dataset

    dataset = build_dataset({"kind": "davis", "root": str(args.davis), "split": args.split, "year": args.year,
                             "resolution": args.resolution, "sequences": args.sequences})
    for sequence in dataset:
        sequence.validate()
    return dataset, args.out, [args.davis]


def check_out(target: Path, inputs: list[Path], depth: int) -> None:
    """`target` is replaced as a whole: it must not hold an input or anything but a previous result, whose
    PNGs lie `depth` folders down (1: one video's frames, 2: <video>/<frame>.png)."""
    resolved = target.resolve()
    for path in inputs:
        if path is not None and (path.resolve() == resolved or resolved in path.resolve().parents):
            raise UsageError(f"{target}: the results would replace the input {path}; choose another --out")
    if target.is_file():
        raise UsageError(f"--out: {target} is a file; give a folder")
    if target.is_dir():
        strays = [p for p in target.rglob("*") if (p.is_file() or p.is_symlink()) and
                  (p.suffix != ".png" or len(p.relative_to(target).parts) != depth)]
        if strays:
            raise UsageError(f"--out: {target} holds {strays[0]}, not only result PNGs, and would be replaced; "
                             "give a new or empty folder")


def list_choices() -> str:
    from .registry import METHODS

    variants = load_variants()
    labels = {f"{method}/{name}": entry.get("label", "") for method, entries in variants.items()
              for name, entry in entries.items()}
    labels.update({method: "(no variants, no weights)" for method in sorted(set(METHODS) - set(variants))})
    width = max(map(len, labels))
    lines = ["variants (--variant METHOD/VARIANT):", *(f"  {name:<{width}}  {label}" for name, label in labels.items())]
    lines.append("preset rows (--preset NAME --row ROW):")
    for preset in preset_names():
        lines.append(f"  {preset}: {', '.join(load_preset(preset)[1].get('rows', {}))}")
    return "\n".join(lines)


def _prog() -> str:
    return "python -m methods.cli" if Path(sys.argv[0]).name in ("cli.py", "__main__.py") else "vos-infer"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(_prog())
    args = parser.parse_args(argv)
    if args.list:
        print(list_choices())
        return 0
    try:
        if args.out is None or args.out.is_file():
            raise UsageError(f"--out {args.out or 'DIR'}: give the results folder (OUT/<video>/<frame>.png)")
        if args.name is not None and (Path(args.name).name != args.name or args.name in ("", ".", "..")):
            raise UsageError(f"--name {args.name!r}: give a plain folder name for the video, without '/'")
        resolved = resolve(args)
        dataset, target, inputs = read_input(args)
        check_out(target, [*inputs, args.checkpoint], depth=2 if target == args.out else 1)
    except (UsageError, DatasetError, MaskFormatError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # torch is imported only now: --help, --list and bad options stay fast
    from .runner import build_method, run

    try:
        _take_backbone_from_head(resolved)
        method = build_method(resolved.method, resolved.settings)
        if target == args.out:
            record = run(method, dataset, args.out, args.timing, progress=not args.quiet,
                         extra={"label": resolved.label})
        else:  # one video: replace only OUT/<video>, through a staging folder beside it
            staging = args.out / f".{target.name}.vos-infer"
            shutil.rmtree(staging, ignore_errors=True)
            record = run(method, dataset, staging, args.timing, progress=not args.quiet,
                         extra={"label": resolved.label})
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging / target.name, target)
            shutil.rmtree(staging, ignore_errors=True)
    except (DatasetError, MaskFormatError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{resolved.label}: {record['frames']} frames, {record['mean_fps_over_sequences']:.1f} FPS "
          f"(mean over videos); masks in {target}")
    if args.timing:
        print(f"timing record: {args.timing}")
    return 0


def _take_backbone_from_head(resolved: Resolved) -> None:
    """An FRTM head is trained on one backbone and records it: where neither the variant, the preset nor --set
    names one, run the head's (not the default ResNet-101, which its load would refuse)."""
    if resolved.method != "frtm" or "backbone" in resolved.settings or "checkpoint" not in resolved.settings:
        return
    import pickle

    from .core.checkpoints import read_payload

    try:
        payload = read_payload(resolved.settings["checkpoint"])
    except (pickle.UnpicklingError, ValueError):  # a released file: its loader checks the backbone itself
        return
    if isinstance(payload, dict) and payload.get("backbone"):
        resolved.settings["backbone"] = payload["backbone"]


if __name__ == "__main__":
    sys.exit(main())
