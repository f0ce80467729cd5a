# The preset's configuration: config.yaml, then config/presets/<preset>.yaml, checked against
# workflow/schemas/config.schema.yaml (one line naming the key for a violation), and the names the other files
# read it by. Every row and training is checked further when the DAG is built (validation.smk).
import json
import math
import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from methods import registry  # what the rules know of each method, without torch (methods/registry.py)

# as vos-infer reads presets and merges settings
from methods.rows import expand_subset, merged_session_settings, merged_settings
from reporting.seeds import repeat_name, repeat_of, with_seed_repeats

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
        return (
            f"config {where}: name {short(error.instance)} is not allowed; names (they become file names and "
            "command-line words) hold letters, digits, '_', '-' and '.'"
        )
    where = where or "(top level)"
    if error.validator == "enum":
        return (
            f"config {where}: {short(error.instance)} is not allowed; choose one of {error.validator_value}"
        )
    if error.validator == "type":
        kinds = {
            str: "a string",
            int: "an integer",
            float: "a number",
            bool: "a boolean",
            dict: "a mapping",
            list: "a list",
            type(None): "null",
        }
        return (
            f"config {where}: {short(error.instance)} is {kinds.get(type(error.instance), 'a value')}, expected "
            f"{error.validator_value}"
        )
    return f"config {where}: {error.message if len(error.message) < 200 else error.message[:200] + '...'}"


_SCHEMA = yaml.safe_load(_SCHEMA_FILE.read_text())
_coerce_to_schema(config, _SCHEMA)
# a preset that is part of another (`subset_of`, the released preset): that one's entries it takes, and where each
# is written, for the messages naming it (validation.smk). After the coercion: `--config 'subset_of={...,
# released_rows: false}'` gives the string 'false', which would keep the rows.
try:
    ENTRY_FILES = expand_subset(config, _PRESET_FILE) if config.get("subset_of") else {}
except ValueError as err:
    raise WorkflowError(str(err)) from None
try:
    validate(config, "../schemas/config.schema.yaml")
except WorkflowError:
    import jsonschema

    _error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(_SCHEMA).iter_errors(config))
    if _error is None:
        raise
    raise WorkflowError(_config_error(_error)) from None

SHARED_DIR = os.environ.get("VOS_SHARED") or config.get("shared_dir", "../shared")
VARIANTS = yaml.safe_load((Path(workflow.basedir) / "config" / "variants.yaml").read_text())
PRESET_FILE = f"config/presets/{PRESET}.yaml"


def entry_file(kind, name):
    """The preset file that writes an entry (rows, method_defaults, ...): this preset's, or for a `subset_of`
    preset the other preset's it comes from."""
    return ENTRY_FILES.get((kind, name), PRESET_FILE)


# Rows run again on their trainings retrained at other seeds (`seed_repeats`): added here as ordinary rows and
# trainings named <name>.seed-<n>, so every rule runs them; the report gives their spread (reporting/seeds.py).
try:
    config["rows"], config["trainings"] = with_seed_repeats(
        config["rows"], config.get("trainings", {}), config.get("seed_repeats"), f"{PRESET_FILE} seed_repeats"
    )
except ValueError as err:
    raise WorkflowError(str(err)) from None
TRAININGS = config["trainings"]
# the DAVIS interactive track's datasets and sessions (workflow/rules/interactive.smk); none without the section
INTERACTIVE = config.get("interactive") or {"datasets": {}, "sessions": {}}

# The authors' released weights (docs/reproducing.md, "Released weights"): rows with `released: <file>` run with
# <released_weights>/<file>. Without the folder configured those rows are checked with the others
# (validation.smk), then left out, saying so.
RELEASED_DIR = config.get("released_weights")


def released_file(name):
    """A released-weights file by its name in the configured folder (an absolute path stays as it is); the
    bare name while no folder is configured (the DAG-time check of rows that are then left out)."""
    return str(Path(RELEASED_DIR).expanduser() / name) if RELEASED_DIR else name


def leave_out_released_rows():
    """Rows whose released file is not there leave the DAG (after their settings' check), one line each naming
    the file and where the authors publish it; the other rows run. Without released_weights, all of them."""
    from methods.core.released_check import SOURCES

    rows = sorted(name for name, row in config["rows"].items() if "released" in row)
    absent = [
        row
        for row in rows
        if not RELEASED_DIR or not Path(released_file(config["rows"][row]["released"])).is_file()
    ]
    if absent and not RELEASED_DIR:
        print(
            f"note: rows {', '.join(rows)} need the authors' released weights; left out (set "
            "released_weights in config.yaml, docs/reproducing.md 'Released weights')",
            file=sys.stderr,
        )
    for row in absent if RELEASED_DIR else []:
        spec = config["rows"][row]
        print(
            f"note: row {row} left out: {released_file(spec['released'])} not found; the authors publish "
            f"{spec['released']} in {SOURCES.get(spec['method'], 'their repository')}",
            file=sys.stderr,
        )
    config["rows"] = {name: row for name, row in config["rows"].items() if name not in absent}
