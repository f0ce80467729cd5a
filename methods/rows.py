"""A variant's or a preset row's inference settings outside the workflow (vos-infer), merged as the workflow
merges them: the variant's settings (config/variants.yaml) < the preset's method_defaults < the row's own.

config/ is found in the source checkout, or else in the copy an installed package carries (the package
`vos_config`, pyproject.toml), so `pip install .` users name variants and presets as the workflow does.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CONFIG_PACKAGE = "vos_config"


def config_dir() -> Path:
    """The repository's config/ in a source checkout (the files the workflow reads), else the installed copy."""
    checkout = Path(__file__).resolve().parents[1] / "config"
    if (checkout / "variants.yaml").is_file():
        return checkout
    spec = importlib.util.find_spec(CONFIG_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "variants.yaml").is_file():
            return Path(location)
    raise FileNotFoundError("config/variants.yaml not found: run from a source checkout of vos-repro or "
                            "reinstall it (pip install .), which ships config/ as the package vos_config")


def load_variants() -> dict:
    return yaml.safe_load((config_dir() / "variants.yaml").read_text())


def preset_names() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "presets").glob("*.yaml"))


def load_preset(name_or_path: str) -> tuple[str, dict]:
    """(its file, its YAML) for a preset name (config/presets/<name>.yaml) or a YAML file's path; a preset that is
    part of another (`subset_of`) with that one's entries it takes (expand_subset)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = config_dir() / "presets" / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(f"--preset {name_or_path}: no such preset; known: {', '.join(preset_names())} "
                         "(or give a preset file's path)")
    config = yaml.safe_load(path.read_text())
    if config.get("subset_of"):
        expand_subset(config, path)
    return str(path), config


def expand_subset(config: dict, preset_file: Path) -> dict[tuple[str, str], str]:
    """A preset that is part of another (`subset_of`: the released preset of the paper preset's rows) gets, in
    place, the other preset's rows named in `rows` (with `released_rows`, every row that runs a released_weights
    file too) on the evaluations named in `evaluations` only, the datasets those read and its method_defaults;
    never its trainings. A row left with no evaluation leaves. Entries the preset itself (or the command line)
    gives win. Returns where each entry taken from the other preset is written: (kind, name) -> its file."""
    subset = config["subset_of"]
    if not isinstance(subset, dict) or not {"preset", "evaluations"} <= set(subset):
        raise ValueError(f"{preset_file.name} subset_of: needs `preset` and `evaluations` (as config/presets/released.yaml)")
    if not isinstance(subset.get("released_rows", False), bool):
        raise ValueError(f"{preset_file.name} subset_of.released_rows: {subset['released_rows']!r} is not a "
                         "boolean; write true or false")
    base_file = preset_file.parent / f"{subset['preset']}.yaml"
    if base_file.resolve() == preset_file.resolve() or not base_file.is_file():
        raise ValueError(f"{preset_file.name} subset_of.preset: {subset['preset']!r} is not another preset")
    base = yaml.safe_load(base_file.read_text())
    unknown = [name for name in subset["evaluations"] if name not in base["evaluations"]]
    if unknown:
        raise ValueError(f"{preset_file.name} subset_of.evaluations: {unknown[0]!r} is not an evaluation of "
                         f"{base_file.name}; known: {sorted(base['evaluations'])}")
    evaluations = {name: base["evaluations"][name] for name in subset["evaluations"]}
    rows = {}
    for name, row in base["rows"].items():
        kept = name in subset.get("rows", []) or (subset.get("released_rows") and "released" in row)
        evaluate_on = [evaluation for evaluation in row["evaluate_on"] if evaluation in evaluations]
        if kept and evaluate_on:
            rows[name] = {**row, "evaluate_on": evaluate_on}
    used = {evaluation["dataset"] for evaluation in evaluations.values()}
    taken = {"datasets": {name: spec for name, spec in base["datasets"].items() if name in used},
             "evaluations": evaluations, "rows": rows, "method_defaults": base.get("method_defaults") or {}}
    where = f"config/presets/{base_file.name}"
    files = {}
    for kind, entries in taken.items():
        own = config.get(kind) or {}
        if kind == "method_defaults":  # per setting: the preset's own settings of a method win
            config[kind] = {method: {**entries.get(method, {}), **own.get(method, {})} for method in {**entries, **own}}
        else:
            config[kind] = {**entries, **own}
        files.update({(kind, name): where for name in entries if name not in own})
    return files


@dataclass
class Resolved:
    """What a run needs: the method, its settings (checkpoint not yet set) and where its weights come from."""

    method: str
    settings: dict = field(default_factory=dict)
    label: str = ""
    weights: str | None = None  # the weights file the config names (a row's `checkpoint:`), if any
    weights_hint: str = ""  # where the weights usually are, for the error when none is given


def resolve_variant(name: str, variants: dict | None = None) -> Resolved:
    """`frtm/ours` -> FRTM with variant `ours`'s settings; a method with no variants by its name alone
    (`first_frame_copy`)."""
    variants = load_variants() if variants is None else variants
    method, _, variant = name.partition("/")
    if not variant and method not in variants:
        return Resolved(method=method, label=method)
    entry = variants.get(method, {}).get(variant)
    if entry is None:
        raise ValueError(f"--variant {name}: unknown variant; known: {', '.join(variant_names(variants))} "
                         f"(config/variants.yaml; `vos-infer --list` shows them)")
    return Resolved(method=method, settings=_variant_settings(entry), label=entry.get("label", name))


def _variant_settings(entry: dict) -> dict:
    settings = dict(entry.get("settings", {}))
    if entry.get("network"):  # LWL: the network's switches, checked against the weights file's
        settings["network"] = entry["network"]
    return settings


def merged_settings(spec: dict, variants: dict, method_defaults: dict) -> dict:
    """A row's settings as its job gets them, the one merge order of the workflow (workflow/rules/settings.smk)
    and vos-infer: its variant's (config/variants.yaml) < the preset's `method_defaults` < the row's own."""
    settings = {}
    if spec.get("variant"):
        settings.update(_variant_settings(variants[spec["method"]][spec["variant"]]))
    settings.update(method_defaults.get(spec["method"], {}))
    settings.update(spec.get("settings", {}))
    return settings


def merged_session_settings(spec: dict, variants: dict, method_defaults: dict) -> dict:
    """An interactive session's settings (its weights file aside): a session of FRTM or LWL (methods.registry
    INTERACTIVE_METHODS, semi_supervised) merged as a row of that method (its variant, method_defaults, its own
    settings); another method's settings are its own."""
    from methods import registry

    semi_supervised = registry.interactive_method(spec["method"]).semi_supervised
    if semi_supervised is None:
        return dict(spec.get("settings", {}))
    return merged_settings({**spec, "method": semi_supervised}, variants, method_defaults)


def resolve_row(preset: str, row: str, variants: dict | None = None) -> Resolved:
    """A preset's row as its infer job runs it (workflow/rules/settings.smk, row_settings)."""
    variants = load_variants() if variants is None else variants
    preset_file, config = load_preset(preset)
    rows = config.get("rows", {})
    if row not in rows:
        raise ValueError(f"--row {row}: not a row of {preset_file}; its rows: {', '.join(rows)}")
    spec = rows[row]
    method = spec["method"]
    label = spec.get("label", row)
    if spec.get("variant"):
        entry = variants.get(method, {}).get(spec["variant"])
        if entry is None:
            raise ValueError(f"{preset_file} rows.{row}.variant: {method} has no variant {spec['variant']!r}")
        label = spec.get("label", entry.get("label", row))
    settings = merged_settings(spec, variants, config.get("method_defaults", {}))
    hint = ""
    if spec.get("training"):
        hint = (f"row {row} runs the head its preset trains: results/{Path(preset_file).stem}/training/"
                f"{spec['training']}/head.pt once the workflow has trained it")
    elif spec.get("released"):
        hint = f"row {row} runs the authors' released {spec['released']} (docs/reproducing.md, 'Released weights')"
    return Resolved(method=method, settings=settings, label=label, weights=spec.get("checkpoint"), weights_hint=hint)


def variant_names(variants: dict | None = None) -> list[str]:
    variants = load_variants() if variants is None else variants
    return [f"{method}/{name}" for method, entries in variants.items() for name in entries]


def backbone_weights_of_preset(config: dict, variants: dict | None = None) -> dict[str, object]:
    """The pretrained backbone weights (backbone_names.PretrainedWeights) each training (`trainings.<name>`),
    row (`rows.<name>`) and interactive session (`interactive.<name>`) of a preset starts from, as their jobs
    resolve them: a training with init_from those of the training it starts from, an LWL row its training's (its
    network holds the backbone), an FRTM row its own settings' (the backbone is not in a head file); a session
    of FRTM or LWL as a row of that method. A row without a pretrained backbone maps to a
    line saying why: the first-frame copy has none, a released LWL file carries its own."""
    from methods import registry

    variants = load_variants() if variants is None else variants
    trainings = config.get("trainings", {})

    def training_weights(name: str):
        entry = trainings[name]
        if entry.get("init_from"):
            return training_weights(entry["init_from"])
        settings_class = registry.load(registry.method(entry["method"]).training)
        if not hasattr(settings_class, "pretrained_weights"):  # a method whose training starts from no backbone
            return "no pretrained backbone"
        return settings_class(**entry.get("settings", {})).pretrained_weights()

    weights: dict[str, object] = {f"trainings.{name}": training_weights(name) for name in trainings}

    def own_weights(spec: dict, settings_name: str | None):
        settings_class = registry.load(settings_name) if settings_name else None
        if settings_class is not None and hasattr(settings_class, "pretrained_weights"):
            settings = merged_settings(spec, variants, config.get("method_defaults", {}))
            return settings_class(**settings).pretrained_weights()
        if spec.get("training"):
            return weights[f"trainings.{spec['training']}"]
        if spec.get("released") or spec.get("checkpoint"):
            return "the backbone the weights file carries"
        return "no pretrained backbone"

    for name, spec in config.get("rows", {}).items():
        weights[f"rows.{name}"] = own_weights(spec, registry.method(spec["method"]).settings)
    # an interactive session of FRTM or LWL reads its weights as a row of that method (its variant, its file)
    for name, spec in ((config.get("interactive") or {}).get("sessions") or {}).items():
        entry = registry.interactive_method(spec["method"])
        weights[f"interactive.{name}"] = (
            own_weights({**spec, "method": entry.semi_supervised}, entry.settings)
            if entry.semi_supervised
            else "no pretrained backbone"
        )
    return weights
