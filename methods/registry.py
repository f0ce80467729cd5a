"""The methods the workflow runs and what it needs to know of each, without torch.

The workflow's rules (workflow/rules/*.smk) name no method: they ask this table which settings class checks
a row, whether and how the method trains, which extra outputs its inference writes, how a row is checked
against its training and which code its jobs run (the modules it names and what they import: a job whose
code changed reruns, workflow/rules/settings.smk). Importing this module imports nothing of the methods:
each entry names its classes as "module:attribute" and they are loaded when used (`load`), so building
the DAG loads only the torch-free settings modules (tests/test_registry.py checks that torch stays out).

Adding a method (tests/test_registry.py adds a toy one this way, with the rules untouched):

1. Its package, inside methods/ or beside it:
   - a tracker class, `Class(**settings)`, with `name` and `run_sequence(sequence)` (methods.base.VOSMethod),
     run by `python -m methods infer --method <name>`;
   - a settings dataclass, without torch, whose `from_dict(values)` refuses what the tracker would refuse
     (a ValueError naming the key: methods.core.settings.from_known_keys does the typos and types);
   - if it trains: a training-settings dataclass likewise, and a module that
     `python -m <module> --config JSON --out FILE --discard-other-settings --quiet` runs, writing the weights
     FILE and its history beside it (FILE with .json; methods.core.trainer.training_cli does this), and
     that also takes `--keep-checkpoint-on-code-change` (config keep_checkpoints_across_code_changes).
2. One `Method(...)` entry in METHODS below.
3. Its rows (and trainings) in a preset, its named settings (variants) in config/variants.yaml.

An interactive method (the DAVIS interactive track, `python -m interactive session`) is one InteractiveMethod
entry in INTERACTIVE_METHODS at the end of this file: its class and its torch-free settings class.

How the package is found: as Python finds any package, from the folder the workflow runs in. Snakemake puts
the Snakefile's folder first on sys.path while it builds the DAG, and every job runs `python -m ...` from
that folder, so a package in the checkout is found by both (an installed package too).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Code every method's infer jobs run besides the tracker: the runner and the data layer it reads frames with.
RUNNER_CODE = ("methods.__main__", "methods.runner", "methods.base", "vos_datasets")


@dataclass(frozen=True)
class Method:
    """What the workflow needs to know of one method. Names of the form "module:attribute" are loaded only
    when used (`load`); all but `tracker` and `training_module` must load without torch."""

    # the class `python -m methods infer` builds with the row's settings; its module, with what it imports,
    # is the code of the method's infer jobs (their digest: inference_code_digest)
    tracker: str
    settings: str | None  # settings class with from_dict(values); None: the method takes no settings
    training: str | None = None  # training-settings class with from_dict(values); None: it trains nothing
    # `python -m <module>` trains it; with what it imports, the code of its train jobs (training_code_digest)
    training_module: str | None = None
    weights: bool = False  # a row names its variant and exactly one weights file (training/checkpoint/released)
    # how a row's settings (as its job gets them) are checked against its training's: function(row, training)
    # raising ValueError (LWL: the variant's network switches must be those the training builds; FRTM: the
    # backbone and its weights must be those the head was trained on)
    check_training: str | None = None
    # extra output of its infer job: the target model's coarse score maps of the figures' sequence, for rows
    # whose settings object this says yes to (methods.runner, --score-maps)
    score_maps: Callable[[object], bool] | None = None

    def __post_init__(self) -> None:
        if (self.training is None) != (self.training_module is None):
            raise ValueError(f"methods/registry.py: {self.tracker}: a method that trains names both `training` "
                             "(its settings class) and `training_module`; one that does not, neither")

    @property
    def trains(self) -> bool:
        return self.training is not None


METHODS: dict[str, Method] = {
    "first_frame_copy": Method(
        tracker="methods.first_frame_copy:FirstFrameCopy",
        settings=None,
    ),
    "frtm": Method(
        tracker="methods.frtm.tracker:FRTM",
        settings="methods.frtm.settings:FRTMSettings",
        training="methods.frtm.training_settings:TrainingConfig",
        training_module="methods.frtm.training",
        weights=True,
        check_training="methods.frtm.settings:check_training",
        score_maps=lambda settings: settings.head != "base_net",  # Base net rows have no target model D
    ),
    "lwl": Method(
        tracker="methods.lwl.tracker:LWL",
        settings="methods.lwl.settings:LWLSettings",
        training="methods.lwl.training_settings:TrainingConfig",
        training_module="methods.lwl.training",
        weights=True,
        check_training="methods.lwl.settings:check_training",
    ),
}


def method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known (methods/registry.py): {sorted(METHODS)}")
    return METHODS[name]


def load(reference: str):
    """The attribute a "module:attribute" reference names (attribute may be dotted)."""
    module, _, name = reference.partition(":")
    loaded = importlib.import_module(module)
    for part in name.split("."):
        loaded = getattr(loaded, part)
    return loaded


def inference_settings(name: str, values: dict):
    """The settings object a row's job builds from `values` (its --settings JSON); ValueError (a
    methods.core.settings.SettingError where one key is to blame) when the job would refuse them. A method
    without settings gets them as keyword arguments of its tracker and refuses any."""
    entry = method(name)
    if entry.settings is None:
        if values:
            raise ValueError(f"{name} takes no settings, got {sorted(values)}")
        return None
    return load(entry.settings).from_dict(values)


def training_settings(name: str, values: dict):
    """The training-settings object a training's job builds from `values` (its --config JSON)."""
    entry = method(name)
    if not entry.trains:
        trained = sorted(n for n, m in METHODS.items() if m.trains)
        raise ValueError(f"{name} trains nothing; methods that train: {trained}")
    return load(entry.training).from_dict(values)


def check_training(name: str, row: dict, training: dict) -> None:
    """A row's settings against those of the training whose weights it uses (ValueError when they differ)."""
    entry = method(name)
    if entry.check_training is not None:
        load(entry.check_training)(row, training)


def keeps_score_maps(name: str, settings: dict) -> bool:
    """Whether a row's job writes its method's coarse score maps (an extra output)."""
    entry = method(name)
    return entry.score_maps is not None and bool(entry.score_maps(inference_settings(name, settings)))


def _found(name: str) -> tuple[Path, Path]:
    """Where Python finds module or package `name` (the workflow folder first: see the module doc): its file
    or folder, and the folder its top-level package lies in."""
    spec = importlib.util.find_spec(name)
    if spec is None or not (spec.origin or spec.submodule_search_locations):
        raise ValueError(f"code digest: no module or package {name!r} (methods/registry.py)")
    locations = list(spec.submodule_search_locations or [])  # a package, with or without __init__.py
    path = Path(locations[0]) if locations else Path(spec.origin)
    return path, path.parents[len(name.split(".")) - 1]


def module_digest(module: str) -> str:
    """The digest of the code that running `module` may execute: it and every module of its checkout it
    imports (methods.core.code_digest.import_digest). A training module's is its checkpoint's code identity."""
    from methods.core.code_digest import import_digest

    return import_digest(module, root=_found(module)[1])


def files_digest(*names: str) -> str:
    """The digest of the named modules' files and packages' folders, as they are (no imports followed)."""
    from methods.core.code_digest import code_digest

    parts = []
    for name in sorted(set(names)):
        path, root = _found(name)
        parts.append(f"{name} {code_digest(path, root=root)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def training_code_digest(name: str) -> str:
    """The digest of the code a method's train jobs run: its training module and what that imports."""
    return module_digest(method(name).training_module)


def inference_code_digest(name: str) -> str:
    """The digest of the code a method's infer jobs run: its tracker's module and what that imports, and the
    runner's own files (not what they import: the runner reaches every method)."""
    tracker = method(name).tracker.partition(":")[0]
    return hashlib.sha256(f"{module_digest(tracker)} {files_digest(*RUNNER_CODE)}".encode()).hexdigest()[:16]


# --- the interactive track (interactive.session, the DAVIS interactive benchmark) ---------------------------


@dataclass(frozen=True)
class InteractiveMethod:
    """A method of the interactive track: a class `Class(**settings)` with `start(sequence)` (an
    interactive.dataset.InteractiveSequence: the frames, never the ground truth) and `interact(frame_index,
    scribble_labels) -> masks` (scribble_labels: H x W, -1 unlabelled, 0 background, k object k; masks:
    T x H x W object ids at the frames' size), run by `python -m interactive session --method <name>`."""

    method: str
    settings: str | None  # settings class with from_dict(values); None: the method takes no settings
    # the semi-supervised method (METHODS) whose variants (config/variants.yaml), method_defaults and weights a
    # session takes: such a session names its variant and one weights file as a row does (training, checkpoint
    # or released), its settings are merged as a row's (methods.rows.merged_settings) and checked against its
    # training's (check_training); None: a method without weights (its session's settings are its own)
    semi_supervised: str | None = None


INTERACTIVE_METHODS: dict[str, InteractiveMethod] = {
    "scribble_copy": InteractiveMethod(
        method="methods.scribble_copy:ScribbleCopy",
        settings="methods.scribble_copy:ScribbleCopySettings",
    ),
    # the suite's interactive FRTM and LWL (docs/interactive-methods.md): their variants frtm/interactive and
    # lwl/interactive give the settings, a trained head or network the `checkpoint`
    "frtm": InteractiveMethod(
        method="methods.frtm.interactive:InteractiveFRTM",
        settings="methods.frtm.settings:InteractiveFRTMSettings",
        semi_supervised="frtm",
    ),
    "lwl": InteractiveMethod(
        method="methods.lwl.interactive:InteractiveLWL",
        settings="methods.lwl.settings:InteractiveLWLSettings",
        semi_supervised="lwl",
    ),
}


def interactive_method(name: str) -> InteractiveMethod:
    if name not in INTERACTIVE_METHODS:
        raise ValueError(f"unknown interactive method {name!r}; known (methods/registry.py INTERACTIVE_METHODS): "
                         f"{sorted(INTERACTIVE_METHODS)}")
    return INTERACTIVE_METHODS[name]


def interactive_settings(name: str, values: dict):
    """The settings object an interactive session builds from `values` (its --settings JSON); ValueError when
    the session would refuse them."""
    entry = interactive_method(name)
    if entry.settings is None:
        if values:
            raise ValueError(f"{name} takes no settings, got {sorted(values)}")
        return None
    return load(entry.settings).from_dict(values)


def interactive_code_digest(name: str) -> str:
    """The digest of the code an interactive session of method `name` runs: its module and what that imports,
    and the session's own package (interactive/)."""
    module = interactive_method(name).method.partition(":")[0]
    return hashlib.sha256(f"{module_digest(module)} {files_digest('interactive')}".encode()).hexdigest()[:16]
