# Preset loading, validation and the input functions / target lists every stage uses.
import json

import yaml
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

PRESET = config["preset"]
_PRESET_FILE = Path(workflow.basedir) / "config" / "presets" / f"{PRESET}.yaml"
if not _PRESET_FILE.is_file():
    _known = sorted(p.stem for p in _PRESET_FILE.parent.glob("*.yaml"))
    raise WorkflowError(f"unknown preset {PRESET!r} (config key 'preset'); choose one of {_known}")


configfile: str(_PRESET_FILE)


_SCHEMA_FILE = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
_SCHEMA_TYPES = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}


def _coerce_to_schema(value, schema):
    """Nested --config values arrive as strings (`--config 'downloads={retries: 3}'` gives '3'): a string
    where the schema allows no string but a number, boolean or null is read as YAML when that gives one."""
    if isinstance(value, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = _coerce_to_schema(item, sub)
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_coerce_to_schema(item, schema["items"]) for item in value]
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types or []
    if not isinstance(value, str) or not types or "string" in types:
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    wanted = tuple(_SCHEMA_TYPES[kind] for kind in types if kind in _SCHEMA_TYPES)
    fits = isinstance(parsed, wanted) and not (isinstance(parsed, bool) and "boolean" not in types)
    return parsed if fits else value


def _config_error(error):
    """One line for a schema violation: the key path, the wrong value, the allowed keys or values."""
    import difflib
    import reprlib

    where = ".".join(map(str, error.absolute_path))
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = 60
    short = shortener.repr
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"config key {key}: unknown key; allowed here: {', '.join(allowed)}{hint}"
    if "propertyNames" in error.absolute_schema_path:
        return (f"config {where}: name {short(error.instance)} is not allowed; names (they become file names and "
                "command-line words) hold letters, digits, '_', '-' and '.'")
    where = where or "(top level)"
    if error.validator == "enum":
        return f"config {where}: {short(error.instance)} is not allowed; choose one of {error.validator_value}"
    if error.validator == "type":
        kinds = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", dict: "a mapping",
                 list: "a list", type(None): "null"}
        return (f"config {where}: {short(error.instance)} is {kinds.get(type(error.instance), 'a value')}, expected "
                f"{error.validator_value}")
    return f"config {where}: {error.message if len(error.message) < 200 else error.message[:200] + '...'}"


_SCHEMA = yaml.safe_load(_SCHEMA_FILE.read_text())
_coerce_to_schema(config, _SCHEMA)
try:
    validate(config, "../schemas/config.schema.yaml")
except WorkflowError:
    import jsonschema

    _error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(_SCHEMA).iter_errors(config))
    if _error is None:
        raise
    raise WorkflowError(_config_error(_error)) from None

RESULTS = f"results/{PRESET}"
SHARED_DIR = os.environ.get("VOS_SHARED") or config.get("shared_dir", "../shared")
CONDA_ENV = "../../envs/vos.yaml"


VARIANTS = yaml.safe_load((Path(workflow.basedir) / "config" / "variants.yaml").read_text())
TRAININGS = config.get("trainings", {})

# The authors' released weights (README, "Released weights"): rows with `released: <file>` run with
# <released_weights>/<file>. Without the folder configured those rows are left out, saying so.
RELEASED_DIR = config.get("released_weights")
_RELEASED_ROWS = sorted(name for name, row in config["rows"].items() if "released" in row)
if _RELEASED_ROWS and not RELEASED_DIR:
    print(f"note: rows {', '.join(_RELEASED_ROWS)} need the authors' released weights; left out (set "
          "released_weights in config.yaml, README 'Released weights')", file=sys.stderr)
    config["rows"] = {name: row for name, row in config["rows"].items() if "released" not in row}


def released_file(name):
    """A released-weights file by its name in the configured folder (an absolute path stays as it is)."""
    return str(Path(RELEASED_DIR).expanduser() / name)


def _check_references():
    """Names that point elsewhere in the config must exist; the message names the bad key."""
    from reporting.published import load_published

    benchmarks = load_published().benchmarks
    for name, evaluation in config["evaluations"].items():
        if evaluation["dataset"] not in config["datasets"]:
            raise WorkflowError(f"evaluations.{name}.dataset: unknown dataset {evaluation['dataset']!r}")
        for key in ("benchmark", "stands_in_for"):
            value = evaluation.get(key)
            for benchmark in [value] if isinstance(value, str) else value or []:
                if benchmark not in benchmarks:
                    raise WorkflowError(f"evaluations.{name}.{key}: unknown benchmark {benchmark!r}; known "
                                        f"(reporting/published.yaml): {sorted(benchmarks)}")
    for name, training in TRAININGS.items():
        for source in training["sources"]:
            if source["dataset"] not in config["datasets"]:
                raise WorkflowError(f"trainings.{name}.sources: unknown dataset {source['dataset']!r}")
        held_out = training.get("validation")
        if held_out is not None:
            _check_held_out(name, held_out, training["sources"])
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
        weights = [key for key in ("training", "checkpoint", "released") if key in row]
        if row["method"] in ("frtm", "lwl") and (variant is None or len(weights) != 1):
            raise WorkflowError(f"rows.{name}: an {row['method']} row needs `variant:` and exactly one of "
                                "`training:` (a training of the preset), `checkpoint:` (a weights file) or "
                                f"`released:` (a file of released_weights); it has {weights or 'none'}")
        if training is not None and TRAININGS[training]["method"] != row["method"]:
            raise WorkflowError(f"rows.{name}.training: {training!r} trains {TRAININGS[training]['method']}, "
                                f"not {row['method']}")
        if variant is not None and training is not None:
            _check_network(name, VARIANTS[row["method"]][variant], TRAININGS[training])


def _check_held_out(name, held_out, sources):
    """A training's `validation` set: a known dataset that shares no video with its sources or with an
    evaluation of the preset (a whole split overlaps any selection of it)."""
    from vos_datasets.splits import read_split

    if held_out["dataset"] not in config["datasets"]:
        raise WorkflowError(f"trainings.{name}.validation: unknown dataset {held_out['dataset']!r}")

    def videos(entry):
        return set(read_split(entry["videos_list"]) if entry.get("videos_list") else entry.get("sequences") or []) or None

    def overlaps(entry):
        if (entry["dataset"], entry["split"]) != (held_out["dataset"], held_out["split"]):
            return False
        mine, theirs = videos(held_out), videos(entry)
        return mine is None or theirs is None or bool(mine & theirs)

    for what, entry in [("a training source", s) for s in sources] + [
            (f"evaluation {evaluation!r}", e) for evaluation, e in config["evaluations"].items()]:
        if overlaps(entry):
            raise WorkflowError(f"trainings.{name}.validation: overlaps {what}; name videos (`sequences`) the "
                                "preset neither trains on nor scores")


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


def _alternatives(names):
    return "|".join(map(re.escape, names)) or "(?!)"


wildcard_constraints:
    evaluation=_alternatives(config["evaluations"]),
    row="|".join(map(re.escape, config["rows"])),
    training="|".join(map(re.escape, TRAININGS)) or "(?!)",


def dataset_root(name):
    """Where a dataset lives: generated, downloaded, or a configured folder (`root` may name config.yaml's
    `paths`, e.g. "{youtube_vos_2018}", and "{shared_dir}")."""
    spec = config["datasets"][name]
    if spec["kind"] == "synthetic":  # per preset: presets may generate different sets under one name
        return f"resources/generated/{PRESET}/{name}"
    if spec.get("download"):
        return f"resources/datasets/{spec['download']}"
    root = spec.get("root")
    paths = config.get("paths") or {}
    placeholders = re.findall(r"{(\w+)}", root or "")
    unset = [key for key in placeholders if key != "shared_dir" and not paths.get(key)]
    if not root or unset:
        from vos_datasets.youtube_vos import REGISTRATION_HINT

        where = f"paths.{unset[0]} in config.yaml (or --config 'paths={{{unset[0]}: /data/...}}')" if unset else \
            f"datasets.{name}.root"
        raise WorkflowError(f"datasets.{name}: its location is not set; set {where}. {REGISTRATION_HINT}")
    return root.format(shared_dir=SHARED_DIR, **{k: v for k, v in paths.items() if v})


def evaluation_protocol(evaluation):
    """davis (DAVIS toolkit), youtube_vos (local scoring of held-out train videos) or server (YouTube-VOS
    valid/test: hidden ground truth, a submission zip and the server's returned figures)."""
    entry = config["evaluations"][evaluation]
    if config["datasets"][entry["dataset"]]["kind"] != "youtube_vos":
        return "davis"
    return "server" if entry["split"] in ("valid", "test") else "youtube_vos"


def named_videos(entry):
    """An evaluation's or training source's video selection: `sequences`, or the named list `videos_list`."""
    if entry.get("videos_list"):
        from vos_datasets.splits import read_split

        return read_split(entry["videos_list"])
    return entry.get("sequences")


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
        "sequences": named_videos(entry),
    }


def source_spec(source, resolve=True):
    """A training source's dataset entry handed to the training as JSON (methods.<method>.training);
    resolve=False leaves its folder out (root None: the DAG-time settings check, _check_settings)."""
    spec = config["datasets"][source["dataset"]]
    dataset = {
        "kind": "youtube_vos" if spec["kind"] == "youtube_vos" else "davis",
        "root": dataset_root(source["dataset"]) if resolve else None,
        "split": source["split"],
        "year": spec.get("year", "2017"),
        "sequences": named_videos(source),
    }
    share = {key: source[key] for key in ("repeats", "pairs", "weight") if key in source}
    return {"dataset": dataset, **share}


def validation_spec(entry, resolve=True):
    """A training's held-out set (`validation:`) as the training's `validation` setting: its dataset resolved
    as a source's, with `samples` and `every` where the preset sets them (methods.core.trainer)."""
    return {"dataset": source_spec(entry, resolve)["dataset"],
            **{key: entry[key] for key in ("samples", "every") if key in entry}}


def training_datasets(training):
    """The datasets a training reads: its sources' and its held-out set's."""
    entry = TRAININGS[training]
    return [s["dataset"] for s in entry["sources"]] + ([entry["validation"]["dataset"]] if entry.get("validation") else [])


def training_settings(training, resolve=True):
    """The training's settings with its sources, held-out set (and starting weights) resolved, as
    `python -m methods.<method>.training` reads them; resolve=False leaves the dataset folders out (the
    DAG-time check: a training no target needs may read a dataset whose folder is not set)."""
    entry = TRAININGS[training]
    settings = {**entry["settings"], "sources": [source_spec(s, resolve) for s in entry["sources"]]}
    if entry.get("validation"):
        settings["validation"] = validation_spec(entry["validation"], resolve)
    if config.get("training_seed") is not None:
        settings["seed"] = config["training_seed"]
    if entry["method"] == "frtm":
        settings.setdefault("cache_dir", "resources/cache/target-models")
    if entry.get("init_from"):
        settings["init_from"] = trained_head(entry["init_from"])
    return settings


def training_config(training):
    """The training's settings as JSON for `python -m methods.<method>.training`."""
    return json.dumps(training_settings(training))


def training_inputs(training):
    entry = TRAININGS[training]
    inputs = sorted({dataset_root(name) for name in training_datasets(training)})
    return inputs + ([trained_head(entry["init_from"])] if entry.get("init_from") else [])


def trained_head(training):
    return f"{RESULTS}/training/{training}/head.pt"


def row_weights(row):
    """The weights file a row runs with: its training's head, its own `checkpoint:`, or its released-weights
    file (`released:`); None for none."""
    spec = config["rows"][row]
    if spec.get("training"):
        return trained_head(spec["training"])
    if spec.get("released"):
        return released_file(spec["released"])
    return spec.get("checkpoint")


def row_head(wildcards):
    weights = row_weights(wildcards.row)
    return [weights] if weights else []


def row_settings(row):
    """Variant settings (config/variants.yaml) < the preset's method defaults < the row's own settings."""
    spec = config["rows"][row]
    settings = {}
    if spec.get("variant"):
        variant = VARIANTS[spec["method"]][spec["variant"]]
        settings.update(variant.get("settings", {}))
        if variant.get("network"):  # LWL: the network's switches, checked against the weights file's
            settings["network"] = variant["network"]
    settings.update(config.get("method_defaults", {}).get(spec["method"], {}))
    settings.update(spec.get("settings", {}))
    if row_weights(row):
        settings["checkpoint"] = row_weights(row)
    return settings


def row_label(row):
    spec = config["rows"][row]
    if spec.get("label"):
        return spec["label"]
    if spec.get("variant"):
        return VARIANTS[spec["method"]][spec["variant"]]["label"]
    return row


def _setting_source(row, key):
    """Which file (and entry) gave a row the setting `key`: the row's own settings win over the preset's
    method_defaults, which win over the variant's (row_settings)."""
    spec, preset_file = config["rows"][row], f"config/presets/{PRESET}.yaml"
    if key in spec.get("settings", {}):
        return f"{preset_file} rows.{row}.settings"
    if key in config.get("method_defaults", {}).get(spec["method"], {}):
        return f"{preset_file} method_defaults.{spec['method']} (row {row})"
    if key in VARIANTS.get(spec["method"], {}).get(spec.get("variant"), {}).get("settings", {}):
        return f"config/variants.yaml {spec['method']}.{spec['variant']} (preset {PRESET}, row {row})"
    return f"{preset_file} rows.{row}"


def _check_settings():
    """Every row's and training's settings built as their job will build them (methods.settings: the same
    JSON, the same from_dict), so that a typo or a wrong type fails `snakemake -n` in one line instead of an
    infer job after the trainings. No network is built and no weights are read."""
    import methods.settings as method_settings

    def as_job_reads(settings):  # the jobs get JSON: tuples become lists, the keys strings
        return json.loads(json.dumps(settings))

    for name, entry in TRAININGS.items():
        try:
            method_settings.training_settings(entry["method"], as_job_reads(training_settings(name, resolve=False)))
        except (ValueError, TypeError) as err:
            raise WorkflowError(f"config/presets/{PRESET}.yaml trainings.{name}.settings: {err}") from None
    for name, spec in config["rows"].items():
        try:
            method_settings.inference_settings(spec["method"], as_job_reads(row_settings(name)))
        except (ValueError, TypeError) as err:
            raise WorkflowError(f"{_setting_source(name, getattr(err, 'key', None))}: {err}") from None


_check_settings()


def split_file(evaluation):
    spec = dataset_spec(evaluation)
    folder = "2017" if spec["year"] == "2017" else "480p"
    return f"{spec['root']}/ImageSets/{folder}/{spec['split']}.txt"


def sequence_selection(evaluation):
    """--sequences or --split-file arguments for `python -m metrics`, as a list (for {params.x:q})."""
    sequences = config["evaluations"][evaluation].get("sequences")
    if sequences:
        return ["--sequences", *sequences]
    return ["--split-file", split_file(evaluation)]


def row_targets():
    return [(row, evaluation) for row, spec in config["rows"].items() for evaluation in spec["evaluate_on"]]


def score_files():
    """What each (row, evaluation) is scored by: the global CSV, or for the server the submission zip."""
    return [f"{RESULTS}/{evaluation}/{row}/submission.zip" if evaluation_protocol(evaluation) == "server"
            else f"{RESULTS}/{evaluation}/{row}/scores/global_results-{evaluation}.csv"
            for row, evaluation in row_targets()]


def timing_files():
    return [f"{RESULTS}/{evaluation}/{row}/timing.json" for row, evaluation in row_targets()]


def evaluated(protocol=None):
    """The evaluations some row runs on (of one protocol, if given), in config order."""
    return [name for name in config["evaluations"]
            if any(name in spec["evaluate_on"] for spec in config["rows"].values())
            and (protocol is None or evaluation_protocol(name) == protocol)]


def evaluation_files(evaluation, kind):
    """Every row's `kind` output (scores dir's per-frame CSV, masks, score-maps) on one evaluation."""
    rows = [row for row, spec in config["rows"].items() if evaluation in spec["evaluate_on"]]
    if kind == "scores":
        return [f"{RESULTS}/{evaluation}/{row}/scores/per-frame_results-{evaluation}.csv" for row in rows]
    return [f"{RESULTS}/{evaluation}/{row}/{kind}" for row in rows]


def used_trainings():
    """Trainings some row needs, with the trainings they start from."""
    needed = {spec["training"] for spec in config["rows"].values() if spec.get("training")}
    pending = list(needed)
    while pending:
        start = TRAININGS[pending.pop()].get("init_from")
        if start and start not in needed:
            needed.add(start)
            pending.append(start)
    return sorted(needed)


def used_datasets():
    """Datasets some evaluation or needed training reads."""
    names = {config["evaluations"][evaluation]["dataset"] for evaluation in evaluated()}
    names |= {name for training in used_trainings() for name in training_datasets(training)}
    return sorted(names)


def score_map_arguments(wildcards, output):
    """FRTM rows with a target model keep D's score maps of the figures' sequence; other rows leave the
    folder empty."""
    spec = config["rows"][wildcards.row]
    if spec["method"] != "frtm" or row_settings(wildcards.row).get("head") == "base_net":
        return []
    sequence = config["evaluations"][wildcards.evaluation].get("qualitative_sequence")
    return ["--score-maps", output.maps] + (["--score-map-sequences", sequence] if sequence else [])
