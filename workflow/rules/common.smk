# Preset loading, validation and the input functions / target lists every stage uses.
import json

import yaml
import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

PRESET = config["preset"]
_PRESET_FILE = Path(workflow.basedir) / "config" / "presets" / f"{PRESET}.yaml"
if not _PRESET_FILE.is_file():
    _known = sorted(p.stem for p in _PRESET_FILE.parent.glob("*.yaml"))
    raise WorkflowError(f"unknown preset {PRESET!r} (config key 'preset'); choose one of {_known}")


configfile: str(_PRESET_FILE)


validate(config, "../schemas/config.schema.yaml")

RESULTS = f"results/{PRESET}"
SHARED_DIR = os.environ.get("VOS_SHARED") or config.get("shared_dir", "../shared")
CONDA_ENV = "../../envs/vos.yaml"


VARIANTS = yaml.safe_load((Path(workflow.basedir) / "config" / "variants.yaml").read_text())
TRAININGS = config.get("trainings", {})


def _check_references():
    """Names that point elsewhere in the config must exist; the message names the bad key."""
    for name, evaluation in config["evaluations"].items():
        if evaluation["dataset"] not in config["datasets"]:
            raise WorkflowError(f"evaluations.{name}.dataset: unknown dataset {evaluation['dataset']!r}")
    for name, training in TRAININGS.items():
        for source in training["sources"]:
            if source["dataset"] not in config["datasets"]:
                raise WorkflowError(f"trainings.{name}.sources: unknown dataset {source['dataset']!r}")
        start = training.get("init_from")
        if start is not None and (start not in TRAININGS or TRAININGS[start]["method"] != training["method"]):
            raise WorkflowError(f"trainings.{name}.init_from: {start!r} is not a {training['method']} training "
                                f"of this preset; known: {sorted(TRAININGS)}")
    for name, row in config["rows"].items():
        for evaluation in row["evaluate_on"]:
            if evaluation not in config["evaluations"]:
                raise WorkflowError(f"rows.{name}.evaluate_on: unknown evaluation {evaluation!r}")
        variant = row.get("variant")
        if variant is not None and variant not in VARIANTS.get(row["method"], {}):
            known = sorted(VARIANTS.get(row["method"], {}))
            raise WorkflowError(f"rows.{name}.variant: {row['method']} has no variant {variant!r}; known: {known}")
        training = row.get("training")
        if training is not None and training not in TRAININGS:
            raise WorkflowError(f"rows.{name}.training: unknown training {training!r}; known: {sorted(TRAININGS)}")
        if row["method"] in ("frtm", "lwl") and (variant is None or training is None):
            raise WorkflowError(f"rows.{name}: an {row['method']} row needs `variant:` and `training:`")
        if training is not None and TRAININGS[training]["method"] != row["method"]:
            raise WorkflowError(f"rows.{name}.training: {training!r} trains {TRAININGS[training]['method']}, "
                                f"not {row['method']}")
        if variant is not None and training is not None:
            _check_network(name, VARIANTS[row["method"]][variant], TRAININGS[training])


def _check_network(row, variant, training):
    """An LWL variant's network switches (E, W, end-to-end, box encoder) must be those its training builds."""
    wanted = variant.get("network", {})
    if not wanted:
        return
    from methods.lwl.networks import NetworkConfig

    built = {**vars(NetworkConfig()), **training["settings"].get("network", {})}
    if training["settings"].get("box_encoder"):
        built["box_encoder"] = True
    wrong = {key: built.get(key) for key, value in wanted.items() if built.get(key) != value}
    if wrong:
        raise WorkflowError(f"rows.{row}: its variant needs a network with {wanted}, but its training builds "
                            f"{wrong}; name a training whose settings.network matches")


_check_references()


wildcard_constraints:
    evaluation="|".join(map(re.escape, config["evaluations"])),
    row="|".join(map(re.escape, config["rows"])),
    training="|".join(map(re.escape, TRAININGS)) or "(?!)",


def dataset_root(name):
    """Where a dataset lives: generated, downloaded, or a configured folder."""
    spec = config["datasets"][name]
    if spec["kind"] == "synthetic":
        return f"resources/embedded/{name}"
    if spec.get("download"):
        return f"resources/datasets/{spec['download']}"
    root = spec.get("root")
    if not root:
        from vos_datasets.youtube_vos import REGISTRATION_HINT

        raise WorkflowError(f"datasets.{name}.root is not set. {REGISTRATION_HINT}")
    return root.format(shared_dir=SHARED_DIR)


def described_datasets():
    """The preset's datasets with their resolved locations, for report headers."""
    described = {}
    for name, spec in config["datasets"].items():
        root = spec.get("root")
        if spec["kind"] == "synthetic" or spec.get("download") or root:
            root = dataset_root(name)
        described[name] = {**spec, "root": root or "not configured"}
    return described


def evaluation_dataset(evaluation):
    return config["evaluations"][evaluation]["dataset"]


def dataset_spec(evaluation):
    """The dataset entry handed to `python -m methods infer` as JSON."""
    entry = config["evaluations"][evaluation]
    spec = config["datasets"][entry["dataset"]]
    return {
        "kind": "youtube_vos" if spec["kind"] == "youtube_vos" else "davis",
        "root": dataset_root(entry["dataset"]),
        "split": entry["split"],
        "year": spec.get("year", "2017"),
        "sequences": entry.get("sequences"),
    }


def source_spec(source):
    """A training source's dataset entry handed to the training as JSON (methods.<method>.training)."""
    spec = config["datasets"][source["dataset"]]
    dataset = {
        "kind": "youtube_vos" if spec["kind"] == "youtube_vos" else "davis",
        "root": dataset_root(source["dataset"]),
        "split": source["split"],
        "year": spec.get("year", "2017"),
        "sequences": source.get("sequences"),
    }
    share = {key: source[key] for key in ("repeats", "pairs", "weight") if key in source}
    return {"dataset": dataset, **share}


def training_config(training):
    """The training's settings with its sources (and starting weights) resolved, as JSON for
    `python -m methods.<method>.training`."""
    entry = TRAININGS[training]
    settings = {**entry["settings"], "sources": [source_spec(s) for s in entry["sources"]]}
    if entry["method"] == "frtm":
        settings.setdefault("cache_dir", "resources/cache/target-models")
    if entry.get("init_from"):
        settings["init_from"] = trained_head(entry["init_from"])
    return json.dumps(settings)


def training_inputs(training):
    entry = TRAININGS[training]
    inputs = sorted({dataset_root(s["dataset"]) for s in entry["sources"]})
    return inputs + ([trained_head(entry["init_from"])] if entry.get("init_from") else [])


def trained_head(training):
    return f"{RESULTS}/training/{training}/head.pt"


def row_head(wildcards):
    training = config["rows"][wildcards.row].get("training")
    return [trained_head(training)] if training else []


def row_settings(row):
    """Variant settings (config/variants.yaml) < the preset's method defaults < the row's own settings."""
    spec = config["rows"][row]
    settings = {}
    if spec.get("variant"):
        settings.update(VARIANTS[spec["method"]][spec["variant"]].get("settings", {}))
    settings.update(config.get("method_defaults", {}).get(spec["method"], {}))
    settings.update(spec.get("settings", {}))
    if spec.get("training"):
        settings["checkpoint"] = trained_head(spec["training"])
    return settings


def row_label(row):
    spec = config["rows"][row]
    if spec.get("label"):
        return spec["label"]
    if spec.get("variant"):
        return VARIANTS[spec["method"]][spec["variant"]]["label"]
    return row


def split_file(evaluation):
    spec = dataset_spec(evaluation)
    folder = "2017" if spec["year"] == "2017" else "480p"
    return f"{spec['root']}/ImageSets/{folder}/{spec['split']}.txt"


def sequence_selection(evaluation):
    """--sequences or --split-file arguments for `python -m metrics`."""
    sequences = config["evaluations"][evaluation].get("sequences")
    if sequences:
        return "--sequences " + " ".join(sequences)
    return f"--split-file {split_file(evaluation)}"


def row_targets():
    return [(row, evaluation) for row, spec in config["rows"].items() for evaluation in spec["evaluate_on"]]


def score_files():
    return [f"{RESULTS}/{evaluation}/{row}/scores/global_results-{evaluation}.csv" for row, evaluation in row_targets()]


def timing_files():
    return [f"{RESULTS}/{evaluation}/{row}/timing.json" for row, evaluation in row_targets()]
