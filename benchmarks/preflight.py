"""The pre-flight a reviewer runs first, before any GPU week of the paper preset: in at most 10 minutes on one GPU,
every part of a run that can fail early, each reported in one line, written to benchmarks/RESULTS-gpu.md.

    make preflight RELEASED_WEIGHTS=/data/released-weights    # one GPU (bash benchmarks/gpu_check.sh)
    make preflight-cpu                                         # the reduced form on the CPU (what CI runs)

Parts, in order (a part that fails is reported and the next one runs; the exit status is 1 when any failed):

1. Environment: torch's CUDA build against the GPU's compute capability (torch.cuda.get_arch_list() against
   torch.cuda.get_device_capability()): a build without kernels for the GPU stops here, in one line naming the
   build of envs/torch.yaml to install.
2. Weights: the pretrained backbone file of every training and row of config/presets/paper.yaml (setting
   `backbone_weights`: methods.core.backbone_names), found in a --weights-dir, the workflow's resources/weights/
   (`snakemake resources/weights/FILE` fetches one) or torchvision's cache folder (TORCH_HOME/hub/checkpoints),
   and sound (a torchvision file's name carries the first digits of its
   sha256; the Mask R-CNN file must load as LWL's backbone); the released files of the `released` preset's
   rows in --released-weights (methods.core.released_check, as the workflow checks them).
3. One released-weights row (`frtm-ours-released` by default, --released-row) of the `released` preset on two
   DAVIS 2016 val sequences: its tracker built with the row's settings as its job gets them, J&F and FPS.
4. Every training of the paper preset for its first iterations (2 each), through the trainings' own entry
   point (`train` of methods.<method>.training) with the paper's settings but: one epoch of those iterations,
   a batch of one GPU's share (a 4-GPU training's batch 20 is 5 here), the sources replaced by a DAVIS train
   split (--train-data; synthetic 854x480 videos where none is here), FRTM's target-model cache in a scratch
   folder, stage 2 starting from this run's stage 1. A training that fails (the training's own first-step
   check included) is reported in one line and the others run.
5. Interactive: the paper preset's released interactive sessions (FRTM and LWL learning from scribbles,
   `frtm-interactive-released`, `lwl-interactive-released`) on one DAVIS 2017 val sample (--interactive-sequence,
   its first scribble) with the track's 8 interactions and 30 s an object: J&F after interactions 1 and 8, the
   method's seconds an interaction, AUC; needs the released files and the workflow's DAVIS 2017 with the
   official scribbles (--interactive-root; `snakemake resources/datasets/davis2017-interactive
   --config preset=paper`) and the optional extra `interactive` (make interactive-setup). Reduced: 2 interactions
   on a stand-in root (python -m interactive standin).
6. Speed: FPS of FRTM Ours, Ours (fast) and LWL with their backbone alone beside them (benchmarks/gpu_check.py,
   random weights).

The reduced form (--reduced) runs the same code on the CPU with tiny inputs, in about a minute: random backbone
weights (written to a scratch folder and given as `backbone_weights_file`), 96x160 frames, one iteration of
batch 1 per training, the FRTM target-model optimisation cut to one step; missing weights files are reported
but do not fail it. It is a test of this script, not a measurement (tests/test_preflight.py runs it).

$OUT set (the device machine's prepared run): the report is also written to $OUT/RESULTS-gpu.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import os
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from methods import registry  # noqa: E402
from methods.core.backbone_names import PretrainedWeights  # noqa: E402
from vos_datasets.fileio import atomic_write_text  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "RESULTS-gpu.md"
WORKFLOW_WEIGHTS = REPO / "resources" / "weights"  # workflow/rules/weights.smk fetches them there
REDUCED_OUT = REPO / "benchmarks" / "results" / "preflight-reduced.md"  # ignored by git: not a measurement
PAPER = "paper"
RELEASED = "released"
RELEASED_ROW = "frtm-ours-released"
RELEASED_SEQUENCES = ("blackswan", "car-shadow")  # DAVIS 2016 val: 50 and 40 frames
INTERACTIVE_ROOT = REPO / "resources/datasets/davis2017-interactive"  # workflow/rules/interactive.smk
INTERACTIVE_SESSIONS = ("frtm-interactive-released", "lwl-interactive-released")  # the paper preset's
INTERACTIVE_SEQUENCE = "bmx-trees"  # DAVIS 2017 val: 80 frames, 2 objects
TRAIN_DATA_CANDIDATES = ("resources/datasets/davis2017", "resources/datasets/davis2016")  # the workflow's downloads
ENVIRONMENT_BUILDS = "envs/torch.yaml"

OK, FAILED, SKIPPED = "ok", "FAILED", "skipped"


@dataclasses.dataclass
class Check:
    """One line of the report."""

    part: str
    item: str
    status: str  # OK | FAILED | SKIPPED
    detail: str = ""


@dataclasses.dataclass
class Plan:
    """Sizes of one run: the GPU pre-flight, or the reduced CPU form."""

    device: str = "cuda"
    reduced: bool = False
    training_iterations: int = 2
    training_frame_size: tuple[int, int] | None = None  # None: the paper's
    training_batch: int | None = None  # None: one GPU's share of the paper's batch
    synthetic_size: tuple[int, int] = (480, 854)  # the stand-in training videos where no DAVIS train split is here

    @classmethod
    def cpu(cls) -> Plan:
        return cls(device="cpu", reduced=True, training_iterations=1, training_frame_size=(96, 160),
                   training_batch=1, synthetic_size=(96, 160))


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:400]


# --- 1. environment -----------------------------------------------------------------------------------
def arch_runs_on(arch_list: list[str], capability: tuple[int, int]) -> bool:
    """Whether a torch build compiled for `arch_list` (torch.cuda.get_arch_list(): 'sm_80', 'sm_90a',
    'compute_90', ...) runs on a GPU of compute capability `capability`: a cubin sm_XY runs on X.Z for Z >= Y
    (same major version; the 'a'/'f' feature-specific ones only on X.Y itself), PTX compute_XY is compiled by
    the driver for any capability >= X.Y."""
    major, minor = capability
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+?)(\d)([af]?)", arch)
        if not match:
            continue
        kind, arch_major, arch_minor, suffix = match[1], int(match[2]), int(match[3]), match[4]
        if kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            return True
        if kind == "sm" and arch_major == major and (arch_minor == minor or (not suffix and arch_minor <= minor)):
            return True
    return False


def build_for(capability: tuple[int, int]) -> str:
    """The torch build of envs/torch.yaml that has kernels for a GPU of this compute capability."""
    if capability < (7, 5):  # Volta (V100) and older: CUDA 13 dropped them
        return f"the CUDA 12 build (cu126) of {ENVIRONMENT_BUILDS}: CUDA 13 builds have no kernels for sm_70 and older"
    if capability >= (10, 0):  # Blackwell: CUDA 12.8 and later
        return f"the CUDA 13 build or the CUDA 12.8 build (cu128) of {ENVIRONMENT_BUILDS}"
    return f"the CUDA 12 (cu126) or CUDA 13 build of {ENVIRONMENT_BUILDS}"


def environment_problem(cuda_version: str | None, arch_list: list[str], capability: tuple[int, int], gpu: str) -> str:
    """None where this torch runs on the GPU, else the one-line refusal."""
    if arch_runs_on(arch_list, capability):
        return ""
    sm = f"sm_{capability[0]}{capability[1]}"
    built = ", ".join(arch_list) or "no GPU architecture"
    return (f"torch {torch.__version__} (CUDA {cuda_version}) has kernels for {built}, not for this {gpu} ({sm}): "
            f"install {build_for(capability)}")


def environment_checks(plan: Plan) -> list[Check]:
    part = "environment"
    summary = f"torch {torch.__version__}, CUDA build {torch.version.cuda}"
    if plan.device == "cpu":
        return [Check(part, "torch build", SKIPPED, f"{summary}; no GPU in the reduced form (CPU)")]
    if not torch.cuda.is_available():
        return [Check(part, "torch build", FAILED, f"{summary}: no CUDA device visible (torch.cuda.is_available() is "
                                                   f"false); on a GPU node install a CUDA build of {ENVIRONMENT_BUILDS}")]
    gpu = torch.cuda.get_device_name(0)
    capability = tuple(torch.cuda.get_device_capability(0))
    problem = environment_problem(torch.version.cuda, torch.cuda.get_arch_list(), capability, gpu)
    if problem:
        return [Check(part, "torch build", FAILED, problem)]
    free, total = torch.cuda.mem_get_info(0)
    return [Check(part, "torch build", OK, f"{summary}; {gpu}, sm_{capability[0]}{capability[1]}, "
                                           f"{total / 2**30:.0f} GiB ({free / 2**30:.0f} GiB free)")]


# --- 2. weights files ---------------------------------------------------------------------------------
def preset_config(name: str) -> dict:
    from methods.rows import load_preset

    return load_preset(name)[1]


def weights_needed(config: dict) -> dict[PretrainedWeights, list[str]]:
    """Each pretrained backbone file a preset's trainings and rows start from, with the entries that need it."""
    from methods.rows import backbone_weights_of_preset

    needed: dict[PretrainedWeights, list[str]] = {}
    for entry, weights in backbone_weights_of_preset(config).items():
        if isinstance(weights, PretrainedWeights):
            needed.setdefault(weights, []).append(entry)
    return needed


def find_weights_file(weights: PretrainedWeights, folders: list[Path]) -> Path | None:
    """The first of: the given folders, the workflow's resources/weights/ (its fetch_weights rule's), torchvision's
    cache."""
    from methods.core.backbones import cached_weights_file

    for folder in [*folders, WORKFLOW_WEIGHTS]:
        if (folder / weights.file_name).is_file():
            return folder / weights.file_name
    cached = cached_weights_file(weights)
    return Path(cached) if cached else None


def weights_file_problem(weights: PretrainedWeights, path: Path) -> str:
    """Why a found weights file is unusable ('' where it is sound): a checksum that does not fit (the workflow's
    check, methods.core.weights_files), a Mask R-CNN file (no published checksum) that does not load as LWL's
    backbone."""
    from methods.core.weights_files import checksum_problem

    problem = checksum_problem(path, weights)
    if problem:
        return f"{path}: {problem} (a download cut short or another file); delete it and fetch {weights.url} again"
    if weights.source == "local":
        from methods.core.backbones import build_backbone

        try:
            build_backbone(weights.backbone, path, weights=weights.name)
        except (ValueError, OSError, RuntimeError) as error:
            return f"{first_line(error)} (fetch it again from {weights.url})"
    return ""


def weights_checks(plan: Plan, folders: list[Path]) -> list[Check]:
    from methods.core.backbones import weights_folder

    part = "weights"
    checks = []
    for weights, entries in weights_needed(preset_config(PAPER)).items():
        item = f"{weights.backbone} {weights.name} ({weights.file_name})"
        users = f"{len(entries)} trainings/rows of the paper preset, e.g. {entries[0]}"
        path = find_weights_file(weights, folders)
        if path is None:
            where = ", ".join(str(f) for f in [*folders, weights_folder()])
            detail = f"not found in {where}: put {weights.url} there ({users})"
            checks.append(Check(part, item, SKIPPED if plan.reduced else FAILED,
                                detail + ("; the reduced form runs random backbones" if plan.reduced else "")))
            continue
        problem = weights_file_problem(weights, path)
        checks.append(Check(part, item, FAILED if problem else OK, problem or f"{path} ({users})"))
    return checks


def released_expectation(method: str, settings: dict, path: Path):
    """What a released row needs its file to be (methods.core.released_check.Expected), from the row's settings
    as its job reads them, the released file as its checkpoint (as workflow/rules/validation.smk tells it)."""
    from methods.core.released_check import Expected

    parsed = registry.inference_settings(method, {**settings, "checkpoint": str(path)})
    if method == "frtm":
        return Expected("frtm", backbone=parsed.backbone)
    return Expected("lwl", model="box-init" if parsed.box_init else "stage2")


def released_rows() -> dict[str, dict]:
    """The `released` preset's rows that run a released file, with their settings as their jobs get them."""
    from methods.rows import resolve_row

    rows = preset_config(RELEASED)["rows"]
    return {name: {"file": spec["released"], "method": spec["method"],
                   "settings": resolve_row(RELEASED, name).settings}
            for name, spec in rows.items() if spec.get("released")}


def released_checks(folder: Path | None) -> list[Check]:
    from methods.core.released_check import SOURCES, check

    part = "released weights"
    if folder is None:
        return [Check(part, "folder", SKIPPED, "no --released-weights folder given (docs/reproducing.md, 'Released weights')")]
    checks = []
    for row, spec in released_rows().items():
        path = folder / spec["file"]
        if not path.is_file():
            checks.append(Check(part, spec["file"], SKIPPED, f"{path} not found: row {row} would be left out; the "
                                                            f"authors publish it in {SOURCES[spec['method']]}"))
            continue
        try:
            facts = check(path, released_expectation(spec["method"], spec["settings"], path), row)
        except (ValueError, OSError) as error:
            checks.append(Check(part, spec["file"], FAILED, str(error).splitlines()[0]))
            continue
        checks.append(Check(part, spec["file"], OK, f"{facts['method']} {facts['backbone']} {facts['model']}, "
                                                    f"{facts['size'] / 1e6:.1f} MB (row {row})"))
    return checks


# --- 3. one released-weights row on two DAVIS sequences -----------------------------------------------
def davis_spec(root: Path, split: str, sequences: list[str] | None = None) -> dict | None:
    """The build_dataset spec of a DAVIS folder's split (2016 layout: ImageSets/480p, 2017: ImageSets/2017), or
    None where the folder has no such split."""
    for year, folder in (("2017", "2017"), ("2016", "480p")):
        if (root / "ImageSets" / folder / f"{split}.txt").is_file():
            spec = {"kind": "davis", "root": str(root), "split": split, "year": year}
            return {**spec, "sequences": sequences} if sequences else spec
    return None


def random_backbone_file(name: str, scratch: Path) -> str:
    """A random state dict of backbone `name` in the layout its weights file has (torchvision's ResNet keys; the
    Mask R-CNN ResNet-50's own): the reduced form's stand-in for its pretrained file."""
    path = scratch / f"random-{name}.pth"
    if not path.is_file():
        torch.manual_seed(0)
        if name == "resnet50_mrcnn":
            from methods.core.backbones import MaskRCNNResNet50Backbone

            state = MaskRCNNResNet50Backbone(pretrained=False).state_dict()
        else:
            import torchvision

            state = getattr(torchvision.models, name)(weights=None).state_dict()
        torch.save(state, path)
    return str(path)


def reduced_inference_settings(method: str, settings: dict, scratch: Path) -> dict:
    """The reduced form's cuts of a row's settings: random backbone, one optimiser step of each kind."""
    if method == "frtm":
        return {**settings, "backbone_weights_file": random_backbone_file(settings.get("backbone", "resnet101"), scratch),
                "augmented_samples": 2, "init_cg_iterations": [1], "update_cg_iterations": 1}
    return {**settings, "crop_size": [96, 160], "init_iterations": 1, "update_iterations": 1}


def released_row_checks(plan: Plan, folder: Path | None, row: str, davis: Path | None, scratch: Path) -> list[Check]:
    import metrics
    from methods.runner import build_method, run
    from vos_datasets.build import build_dataset

    part = "released row"
    rows = released_rows()
    if row not in rows:
        return [Check(part, row, FAILED, f"--released-row {row}: not a released row of config/presets/released.yaml; "
                                         f"its released rows: {', '.join(rows)}")]
    if folder is None:
        return [Check(part, row, SKIPPED, "no --released-weights folder given")]
    path = folder / rows[row]["file"]
    if not path.is_file():
        return [Check(part, row, SKIPPED, f"{path} not found")]
    spec = davis_spec(davis, "val", list(RELEASED_SEQUENCES)) if davis else None
    if spec is None or spec["year"] != "2016":
        return [Check(part, row, SKIPPED, f"no DAVIS 2016 folder with a val split (--davis; looked at {davis})")]
    settings = {**rows[row]["settings"], "checkpoint": str(path), "device": plan.device}
    if plan.reduced:
        settings = reduced_inference_settings(rows[row]["method"], settings, scratch)
    try:
        method = build_method(rows[row]["method"], settings)
        record = run(method, build_dataset(spec), scratch / "released-row", progress=False)
        result = metrics.evaluate(Path(davis) / "Annotations/480p", scratch / "released-row",
                                  sequences=list(RELEASED_SEQUENCES), workers=1, progress=False)
    except Exception as error:  # a tracker or file that does not run: reported, the other parts go on
        return [Check(part, row, FAILED, first_line(error))]
    score = result.global_statistics()["J&F-Mean"]
    return [Check(part, row, OK, f"{rows[row]['file']} on {' and '.join(RELEASED_SEQUENCES)} ({record['frames']} "
                                 f"frames): J&F {score:.3f}, {record['mean_fps_over_sequences']:.1f} FPS on "
                                 f"{record['device_model']}")]


# --- 4. each training's first iterations --------------------------------------------------------------
def training_order(trainings: dict) -> list[str]:
    """The trainings with every one after the training it starts from (init_from)."""
    order: list[str] = []

    def visit(name: str) -> None:
        start = trainings[name].get("init_from")
        if start and start not in order:
            visit(start)
        if name not in order:
            order.append(name)

    for name in trainings:
        visit(name)
    return order


def training_sources(plan: Plan, train_data: Path | None, scratch: Path) -> tuple[dict, str]:
    """(the dataset spec every training reads here, what it is)."""
    spec = davis_spec(train_data, "train") if train_data else None
    if spec is not None:
        return spec, f"the DAVIS {spec['year']} train split of {train_data}"
    from vos_datasets.synthetic import generate

    height, width = plan.synthetic_size
    root = generate(scratch / "synthetic", seed=0, n_train=2, n_val=0, n_frames=8, height=height, width=width)
    return ({"kind": "davis", "root": str(root), "split": "train", "year": "2017"},
            f"2 synthetic {width}x{height} videos (vos_datasets.synthetic; no DAVIS train split here)")


def first_iterations_settings(entry: dict, plan: Plan, dataset: dict, heads: dict[str, Path], scratch: Path) -> dict:
    """A paper training's settings for its first iterations here (module docstring, part 4)."""
    method = entry["method"]
    values = dict(entry.get("settings", {}))
    paper_batch = values.get("batch_size", registry.load(registry.method(method).training).batch_size)
    batch = plan.training_batch or math.ceil(paper_batch / int(entry.get("gpus", 1)))
    values.update(batch_size=batch, epochs=1, device=plan.device, validation=None)
    if entry.get("init_from"):
        values["init_from"] = str(heads[entry["init_from"]])
    if method == "frtm":
        values.update(sources=[{"dataset": dataset, "pairs": batch * plan.training_iterations}],
                      cache_dir=str(scratch / "target-models"))
    else:
        values.update(sources=[{"dataset": dataset, "weight": 1}], iterations_per_epoch=plan.training_iterations)
    if plan.training_frame_size:
        values["frame_size" if method == "frtm" else "crop_size"] = list(plan.training_frame_size)
    if plan.reduced:
        values["num_workers"] = 0
        if not entry.get("init_from"):  # a training that starts from another reads no pretrained file
            backbone = registry.training_settings(method, values).pretrained_weights().backbone
            values["backbone_weights_file"] = random_backbone_file(backbone, scratch)
        if method == "frtm":
            values.update(cache_samples=2, cache_init_cg_iterations=[1])
        else:
            values.update(init_iterations=1, update_iterations=1, frames_per_sequence=2)
    return values


def training_checks(plan: Plan, train_data: Path | None, scratch: Path, missing_weights: set[str],
                    over_budget: Callable[[], bool]) -> list[Check]:
    part = "training"
    trainings = preset_config(PAPER)["trainings"]
    try:
        dataset, source = training_sources(plan, train_data, scratch)
    except Exception as error:
        return [Check(part, "data", FAILED, first_line(error))]
    checks = [Check(part, "data", OK, f"every training reads {source}")]
    heads: dict[str, Path] = {}
    for name in training_order(trainings):
        entry = trainings[name]
        start = entry.get("init_from")
        if start and start not in heads:
            checks.append(Check(part, name, SKIPPED, f"starts from {start}, which did not train here"))
            continue
        if over_budget():
            checks.append(Check(part, name, SKIPPED, "not run: the time budget (--budget-s) is spent"))
            continue
        try:
            values = first_iterations_settings(entry, plan, dataset, heads, scratch)
            config = registry.training_settings(entry["method"], values)
            weights = config.pretrained_weights()
            if not start and weights.file_name in missing_weights:
                checks.append(Check(part, name, SKIPPED, f"not run: {weights.file_name} is missing (weights above)"))
                continue
            module = importlib.import_module(registry.method(entry["method"]).training_module)
            out = scratch / "trainings" / name / "head.pt"
            out.parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            result = module.train(config, out, progress=False)
        except (Exception, SystemExit) as error:  # the training's own refusal included: one line, then the next
            checks.append(Check(part, name, FAILED, first_line(error)))
            continue
        heads[name] = out
        history = result["history"][-1]
        checks.append(Check(part, name, OK, f"{plan.training_iterations} iteration(s) of batch {config.batch_size} "
                                            f"(preset: {entry.get('gpus', 1)} GPU(s)), loss {history['loss']:.4g}, "
                                            f"{time.perf_counter() - started:.1f} s"))
    return checks


# --- 5. the released interactive sessions on one sample ---------------------------------------------
def interactive_session_settings(session: str, folder: Path) -> tuple[str, dict]:
    """The method and settings of a paper preset interactive session as its workflow job gets them
    (methods.rows.merged_session_settings), with its released file in `folder` as the checkpoint."""
    from methods.rows import load_variants, merged_session_settings

    config = preset_config(PAPER)
    spec = config["interactive"]["sessions"][session]
    settings = merged_session_settings(spec, load_variants(), config.get("method_defaults", {}))
    return spec["method"], {**settings, "checkpoint": str(folder / spec["released"])}


def interactive_checks(plan: Plan, folder: Path | None, root: Path, sequence: str, scratch: Path) -> list[Check]:
    part = "interactive"
    interactions = 2 if plan.reduced else 8
    try:
        from interactive.compat import load_davisinteractive
        from interactive.dataset import open_dataset
        from interactive.session import run_session

        load_davisinteractive()
        dataset = open_dataset(root, [sequence], [1])
    except Exception as error:  # the optional extra, the dataset or its scribbles missing: one line
        return [Check(part, "all", SKIPPED, first_line(error))]
    checks = []
    for session in INTERACTIVE_SESSIONS:
        if folder is None:
            checks.append(Check(part, session, SKIPPED, "no --released-weights folder given"))
            continue
        method, settings = interactive_session_settings(session, folder)
        if not Path(settings["checkpoint"]).is_file():
            checks.append(Check(part, session, SKIPPED, f"{settings['checkpoint']} not found"))
            continue
        settings = {**settings, "device": plan.device}
        if plan.reduced:
            settings = reduced_inference_settings(method, settings, scratch)
        try:
            summary = run_session(dataset, method, settings, interactions, 30.0, scratch / "interactive" / session,
                                  progress=False)
        except Exception as error:  # reported; the other session and parts go on
            checks.append(Check(part, session, FAILED, first_line(error)))
            continue
        curve = [row["J&F"] for row in summary["per_interaction"]]
        seconds = summary["curve"]["time"][len(curve)] / len(curve)
        checks.append(Check(part, session, OK, f"{sequence} scribble 1: J&F {curve[0]:.3f} after interaction 1, "
                                               f"{curve[-1]:.3f} after {len(curve)}; {seconds:.2f} s an interaction "
                                               f"(method time); AUC {summary['auc']:.3f}"))
    return checks


# --- 6. speed -----------------------------------------------------------------------------------------
def speed_rows(plan: Plan, scratch: Path) -> tuple[list[tuple], str]:
    """FRTM Ours, Ours (fast) and LWL with their backbones alone (benchmarks/gpu_check.py's rows)."""
    from benchmarks import gpu_check

    sizes = gpu_check.Plan.quick() if plan.reduced else gpu_check.Plan()
    device = torch.device(plan.device)
    variants = yaml.safe_load((REPO / "config/variants.yaml").read_text())
    sequences, source = gpu_check.frames(sizes, scratch)
    rows = gpu_check.frtm_rows(sizes, sequences, device, scratch, variants)
    rows += gpu_check.lwl_rows(sizes, sequences, device, scratch, variants)
    return rows, f"{sum(len(s.frames) for s in sequences)} frames in {len(sequences)} sequences, {source}"


# --- report -------------------------------------------------------------------------------------------
def render(header: list[str], checks: list[Check], speed: list[tuple], speed_source: str) -> str:
    failed = [c for c in checks if c.status == FAILED]
    lines = [*header, "", f"**{'FAILED: ' + str(len(failed)) + ' check(s)' if failed else 'No check failed'}** "
             f"({sum(c.status == OK for c in checks)} ok, {sum(c.status == SKIPPED for c in checks)} skipped).", "",
             "| part | item | status | detail |", "|---|---|---|---|"]
    lines += [f"| {c.part} | {c.item} | {c.status} | {c.detail.replace('|', '/')} |" for c in checks]
    if speed:
        lines += ["", f"## Speed (FPS, mean over sequences; random weights; {speed_source})", "",
                  "| run | FPS | ratio to its backbone alone |", "|---|---:|---:|"]
        reference = None
        for label, fps in speed:
            alone = "backbone only" in label
            reference = fps if alone else reference
            lines.append(f"| {label} | {fps:.2f} | {'' if alone or not reference else f'{fps / reference:.3f}'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reduced", action="store_true", help="the reduced form on the CPU (a test of this script)")
    parser.add_argument("--released-weights", type=Path, help="the folder of the authors' files (README, "
                                                              "'Released weights'); default: config.yaml's")
    parser.add_argument("--released-row", default=RELEASED_ROW, help=f"the released row to run (default {RELEASED_ROW})")
    parser.add_argument("--davis", type=Path, help="a DAVIS 2016 folder with its val split (default: the workflow's "
                                                   "download in resources/datasets/davis2016, else the shared folder's)")
    parser.add_argument("--train-data", type=Path, help="a DAVIS folder with a train split the trainings read "
                                                        "(default: the workflow's DAVIS downloads, else synthetic)")
    parser.add_argument("--interactive-root", type=Path, default=INTERACTIVE_ROOT,
                        help="DAVIS 2017 with the official scribbles (default: the workflow's, "
                             f"{INTERACTIVE_ROOT.relative_to(REPO)})")
    parser.add_argument("--interactive-sequence", default=INTERACTIVE_SEQUENCE,
                        help=f"the DAVIS 2017 val sequence of the interactive part (default {INTERACTIVE_SEQUENCE})")
    parser.add_argument("--weights-dir", type=Path, action="append", default=[],
                        help="a folder of backbone weights files, looked at before resources/weights and TORCH_HOME/hub/checkpoints")
    parser.add_argument("--out", type=Path, help=f"the report (default {DEFAULT_OUT.relative_to(REPO)}; reduced: "
                                                 f"{REDUCED_OUT.relative_to(REPO)})")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="start no new training or part after this many seconds (default 480)")
    args = parser.parse_args(argv)
    plan = Plan.cpu() if args.reduced else Plan()
    out = args.out or (REDUCED_OUT if args.reduced else DEFAULT_OUT)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="preflight-") as scratch_folder:  # removed when done, whatever happens
        scratch = Path(scratch_folder)
        released = args.released_weights or configured_released_weights()
        davis = args.davis or default_davis()
        train_data = args.train_data or next((REPO / c for c in TRAIN_DATA_CANDIDATES if (REPO / c).is_dir()), None)
        device_name = torch.cuda.get_device_name(0) if plan.device == "cuda" and torch.cuda.is_available() else "CPU"
        header = [f"# Pre-flight{' (REDUCED CPU FORM: a test of the script, not a measurement)' if plan.reduced else ''}",
                  "", f"Command: `python benchmarks/preflight.py {shlex.join(argv if argv is not None else sys.argv[1:])}`  ",
                  f"Device: {device_name}; torch {torch.__version__} (CUDA build {torch.version.cuda})  ",
                  f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {git_commit()}"]
        checks: list[Check] = []
        speed: list[tuple] = []
        speed_source = ""

        def over_budget() -> bool:
            return time.perf_counter() - started > args.budget_s

        def write() -> None:
            text = render(header, checks, speed, speed_source)
            for path in [out, *([Path(os.environ["OUT"]) / "RESULTS-gpu.md"] if os.environ.get("OUT") else [])]:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, text)

        checks += environment_checks(plan)
        write()
        if any(c.status == FAILED for c in checks):  # nothing else can run on this GPU with this build
            print(render(header, checks, speed, speed_source))
            return 1
        parts: list[tuple[str, Callable[[], list[Check]]]] = [
            ("weights", lambda: weights_checks(plan, args.weights_dir) + released_checks(released)),
            ("released row", lambda: released_row_checks(plan, released, args.released_row, davis, scratch)),
            ("training", lambda: training_checks(plan, train_data, scratch, missing_files(checks), over_budget)),
            ("interactive", lambda: interactive_checks(plan, released, args.interactive_root, args.interactive_sequence,
                                                       scratch)),
        ]
        for part, work in parts:
            if over_budget():
                checks.append(Check(part, "all", SKIPPED, "not run: the time budget (--budget-s) is spent"))
            else:
                checks.extend(work())
            print(f"preflight: {part} done at {time.perf_counter() - started:.0f} s", file=sys.stderr)
            write()
        if over_budget():
            checks.append(Check("speed", "all", SKIPPED, "not run: the time budget (--budget-s) is spent"))
        else:
            try:
                speed, speed_source = speed_rows(plan, scratch)
            except Exception as error:
                checks.append(Check("speed", "all", FAILED, first_line(error)))
        header.append(f"Wall time: {time.perf_counter() - started:.0f} s")
        write()
        print(render(header, checks, speed, speed_source))
        return 1 if any(c.status == FAILED for c in checks) else 0


def missing_files(checks: list[Check]) -> set[str]:
    """The weights files the weights part did not find or found unsound (their trainings are not run)."""
    return {re.search(r"\(([^()]+)\)$", c.item)[1] for c in checks
            if c.part == "weights" and c.status == FAILED and re.search(r"\(([^()]+)\)$", c.item)}


def configured_released_weights() -> Path | None:
    configured = yaml.safe_load((REPO / "config.yaml").read_text()).get("released_weights")
    return Path(configured) if configured else None


def default_davis() -> Path | None:
    from vos_datasets.shared import shared_dir

    shared = shared_dir()
    for candidate in (REPO / "resources/datasets/davis2016", shared / "data/davis2016" if shared else None):
        if candidate is not None and candidate.is_dir():
            return candidate
    return None


def git_commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
