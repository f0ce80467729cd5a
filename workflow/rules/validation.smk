# The checks run while the DAG is built, on every row and training of the preset (the released-weights rows
# too, before they are left out without the folder): names that point elsewhere must exist, and each row's
# and training's settings are built as their jobs will build them (methods.registry). A typo in any preset
# fails `snakemake -n` in one line naming the file and the key, before any job runs.


def _check_method_names():
    """Every method a row, a training or method_defaults names is one of the registry's."""
    known = sorted(registry.METHODS)
    named = [(f"rows.{name}.method", row["method"]) for name, row in config["rows"].items()]
    named += [(f"trainings.{name}.method", entry["method"]) for name, entry in TRAININGS.items()]
    named += [(f"method_defaults.{method}", method) for method in config.get("method_defaults") or {}]
    for key, method in named:
        if method not in registry.METHODS:
            raise WorkflowError(
                f"{PRESET_FILE} {key}: unknown method {method!r}; known (methods/registry.py): " f"{known}"
            )


def _check_references():
    """Names that point elsewhere in the config must exist; the message names the bad key."""
    from reporting.published import load_published

    benchmarks = load_published().benchmarks
    _check_method_names()
    for name, evaluation in config["evaluations"].items():
        if evaluation["dataset"] not in config["datasets"]:
            raise WorkflowError(f"evaluations.{name}.dataset: unknown dataset {evaluation['dataset']!r}")
        _check_frame_rule(name, evaluation)
        _check_task(name, evaluation)
        for key in ("benchmark", "stands_in_for"):
            value = evaluation.get(key)
            for benchmark in [value] if isinstance(value, str) else value or []:
                if benchmark not in benchmarks:
                    raise WorkflowError(
                        f"evaluations.{name}.{key}: unknown benchmark {benchmark!r}; known "
                        f"(reporting/published.yaml): {sorted(benchmarks)}"
                    )
    for name, training in TRAININGS.items():
        if not registry.method(training["method"]).trains:
            trained = sorted(method for method, entry in registry.METHODS.items() if entry.trains)
            raise WorkflowError(
                f"trainings.{name}.method: {training['method']} trains nothing; methods that train "
                f"(methods/registry.py): {trained}"
            )
        for source in training["sources"]:
            if source["dataset"] not in config["datasets"]:
                raise WorkflowError(f"trainings.{name}.sources: unknown dataset {source['dataset']!r}")
        held_out = training.get("validation")
        if held_out is not None:
            _check_held_out(name, held_out, training["sources"])
        start = training.get("init_from")
        if start is not None and (start not in TRAININGS or TRAININGS[start]["method"] != training["method"]):
            raise WorkflowError(
                f"trainings.{name}.init_from: {start!r} is not a {training['method']} training "
                f"of this preset; known: {sorted(TRAININGS)}"
            )
    for name, row in config["rows"].items():
        for evaluation in row["evaluate_on"]:
            if evaluation not in config["evaluations"]:
                raise WorkflowError(f"rows.{name}.evaluate_on: unknown evaluation {evaluation!r}")
        variant = row.get("variant")
        if variant is not None and variant not in VARIANTS.get(row["method"], {}):
            known = sorted(VARIANTS.get(row["method"], {}))
            raise WorkflowError(
                f"rows.{name}.variant: {row['method']} has no variant {variant!r}; known: {known}"
            )
        training = row.get("training")
        if training is not None and training not in TRAININGS:
            raise WorkflowError(
                f"rows.{name}.training: unknown training {training!r}; known: {sorted(TRAININGS)}"
            )
        weights = [key for key in ("training", "checkpoint", "released") if key in row]
        if registry.method(row["method"]).weights and (variant is None or len(weights) != 1):
            raise WorkflowError(
                f"rows.{name}: a row of method {row['method']} needs `variant:` and exactly one of "
                "`training:` (a training of the preset), `checkpoint:` (a weights file) or "
                f"`released:` (a file of released_weights); it has {weights or 'none'}"
            )
        if training is not None and TRAININGS[training]["method"] != row["method"]:
            raise WorkflowError(
                f"rows.{name}.training: {training!r} trains {TRAININGS[training]['method']}, "
                f"not {row['method']}"
            )


def _check_frame_rule(name, evaluation):
    """`frames` (which annotated frames score an object) belongs to a local YouTube-VOS scoring and names one
    of metrics.youtube_vos.FRAME_RULES."""
    from metrics.youtube_vos import FRAME_RULES

    if "frames" not in evaluation:
        return
    if evaluation_protocol(name) != "youtube_vos":
        raise WorkflowError(
            f"{PRESET_FILE} evaluations.{name}.frames: only a local YouTube-VOS scoring (held-out train "
            "videos) takes `frames`; the DAVIS toolkit and the server fix their own frames"
        )
    if evaluation["frames"] not in FRAME_RULES:
        raise WorkflowError(
            f"{PRESET_FILE} evaluations.{name}.frames: {evaluation['frames']!r} is not one of "
            f"{sorted(FRAME_RULES)} (metrics/youtube_vos.py)"
        )


def _check_task(name, evaluation):
    """The unsupervised task belongs to a DAVIS 2017 scoring of the objects of the first frame (the toolkit's
    only rule for it); DAVIS 2016 has no unsupervised annotations."""
    if evaluation.get("task", "semi-supervised") != "unsupervised":
        return
    dataset = config["datasets"][evaluation["dataset"]]
    if evaluation_protocol(name) != "davis" or dataset.get("year", "2017") == "2016":
        raise WorkflowError(
            f"{PRESET_FILE} evaluations.{name}.task: unsupervised is a DAVIS 2017 task (Annotations_unsupervised); "
            f"dataset {evaluation['dataset']!r} has none: remove `task` or use a DAVIS 2017 dataset"
        )
    if evaluation.get("objects", "first-frame") != "first-frame":
        raise WorkflowError(
            f"{PRESET_FILE} evaluations.{name}.task: the unsupervised task matches proposals to the objects of the "
            "first frame; set objects: first-frame"
        )


def _check_held_out(name, held_out, sources):
    """A training's `validation` set: a known dataset that shares no video with its sources or with an
    evaluation of the preset (a whole split overlaps any selection of it)."""
    from vos_datasets.splits import read_split

    if held_out["dataset"] not in config["datasets"]:
        raise WorkflowError(f"trainings.{name}.validation: unknown dataset {held_out['dataset']!r}")

    def videos(entry):
        return (
            set(
                read_split(entry["videos_list"]) if entry.get("videos_list") else entry.get("sequences") or []
            )
            or None
        )

    def overlaps(entry):
        if (entry["dataset"], entry["split"]) != (held_out["dataset"], held_out["split"]):
            return False
        mine, theirs = videos(held_out), videos(entry)
        return mine is None or theirs is None or bool(mine & theirs)

    for what, entry in [("a training source", s) for s in sources] + [
        (f"evaluation {evaluation!r}", e) for evaluation, e in config["evaluations"].items()
    ]:
        if overlaps(entry):
            raise WorkflowError(
                f"trainings.{name}.validation: overlaps {what}; name videos (`sequences`) the "
                "preset neither trains on nor scores"
            )


def _setting_source(row, key):
    """Which file (and entry) gave a row the setting `key`: the row's own settings win over the preset's
    method_defaults, which win over the variant's (row_settings)."""
    spec, preset_file = config["rows"][row], entry_file("rows", row)
    if key in spec.get("settings", {}):
        return f"{preset_file} rows.{row}.settings"
    if key in config.get("method_defaults", {}).get(spec["method"], {}):
        return f"{entry_file('method_defaults', spec['method'])} method_defaults.{spec['method']} (row {row})"
    if key in VARIANTS.get(spec["method"], {}).get(spec.get("variant"), {}).get("settings", {}):
        return f"config/variants.yaml {spec['method']}.{spec['variant']} (preset {PRESET}, row {row})"
    return f"{preset_file} rows.{row}"


def _check_settings():
    """Every row's and training's settings built as their job will build them (methods.registry: the same
    JSON, the same from_dict), and each row's against its training's, so that a typo or a wrong type fails
    `snakemake -n` in one line instead of an infer job after the trainings. No network is built and no
    weights are read."""

    def as_job_reads(settings):  # the jobs get JSON: tuples become lists, the keys strings
        return json.loads(json.dumps(settings))

    for name, entry in TRAININGS.items():
        try:
            registry.training_settings(entry["method"], as_job_reads(training_settings(name, resolve=False)))
        except (ValueError, TypeError) as err:
            raise WorkflowError(f"{PRESET_FILE} trainings.{name}.settings: {err}") from None
    for name, spec in config["rows"].items():
        settings = as_job_reads(row_settings(name))
        try:
            registry.inference_settings(spec["method"], settings)
        except (ValueError, TypeError) as err:
            raise WorkflowError(f"{_setting_source(name, getattr(err, 'key', None))}: {err}") from None
        if spec.get("training"):  # the row's settings against its training's (LWL: the network's switches)
            training = as_job_reads(training_settings(spec["training"], resolve=False))
            try:
                registry.check_training(spec["method"], settings, training)
            except ValueError as err:
                raise WorkflowError(f"rows.{name}: {err}") from None


def _check_seed_repeats():
    """A seed repeat's seed is not the one its training runs at already (training_seed, settings.seed or the
    method's default): the seeds table would count one training twice."""
    seeds = (config.get("seed_repeats") or {}).get("seeds", [])
    for name, entry in TRAININGS.items():
        if repeat_of(name) or not any(repeat_name(name, seed) in TRAININGS for seed in seeds):
            continue
        values = json.loads(json.dumps(training_settings(name, resolve=False)))
        seed = registry.training_settings(entry["method"], values).seed
        if seed in seeds:
            raise WorkflowError(
                f"{PRESET_FILE} seed_repeats.seeds: {seed} is the seed training {name} runs at already "
                "(training_seed, its settings.seed or the default); list other seeds"
            )


def released_expectation(row):
    """What a released-weights row needs its file to be (methods.core.released_check.Expected): FRTM's backbone
    (the row's settings: ResNet-18 or -101), LWL's stage-2 or box-init network (the row's box_init)."""
    from methods.core.released_check import Expected

    spec = config["rows"][row]
    settings = registry.inference_settings(spec["method"], job_settings(row))
    if spec["method"] == "frtm":
        return Expected("frtm", backbone=settings.backbone)
    return Expected("lwl", model="box-init" if settings.box_init else "stage2")


def session_released_expectation(session):
    """released_expectation for an interactive session of FRTM or LWL (its settings as its job reads them)."""
    from methods.core.released_check import Expected

    method = INTERACTIVE["sessions"][session]["method"]
    settings = registry.interactive_settings(method, json.loads(json.dumps(session_settings(session))))
    if session_as_row(session)["method"] == "frtm":
        return Expected("frtm", backbone=settings.backbone)
    return Expected("lwl", model="stage2")


def released_check_arguments(name):
    """`python -m methods.core.released_check` arguments for the file `name`: what its (first) row needs, or its
    first interactive session's."""
    row = next((row for row, spec in config["rows"].items() if spec.get("released") == name), None)
    if row is None:
        session = next(
            session for session, spec in INTERACTIVE["sessions"].items() if spec.get("released") == name
        )
        expected, row = session_released_expectation(session), f"interactive.{session}"
    else:
        expected = released_expectation(row)
    extra = [
        f"--{key}={value}"
        for key, value in (("backbone", expected.backbone), ("model", expected.model))
        if value
    ]
    return [f"--method={expected.method}", *extra, f"--row={row}"]


def _check_released_files():
    """Every released file a row runs is what the row needs (safely readable, its method, backbone and
    network, a plausible size), read without torch and without its weights (methods.core.released_check: the
    pickled key listing only, so every `snakemake -n` can afford it); one line naming the file and the fix
    otherwise, before any job runs."""
    from methods.core.released_check import SOURCES, check

    for name, spec in config["rows"].items():
        if "released" not in spec:
            continue
        if spec["method"] not in SOURCES:
            raise WorkflowError(
                f"{entry_file('rows', name)} rows.{name}.released: {spec['method']} has no released weights; rows of "
                f"{sorted(SOURCES)} have"
            )
        try:
            check(released_file(spec["released"]), released_expectation(name), name)
        except (ValueError, OSError) as err:
            raise WorkflowError(str(err)) from None


_check_references()
_check_settings()
_check_seed_repeats()
leave_out_released_rows()
_check_released_files()


# --- the interactive track's sessions (workflow/rules/interactive.smk) ---
def interactive_session_dataset(session):
    return INTERACTIVE["sessions"][session]["dataset"]


def _check_interactive():
    """Names the sessions refer to exist (the schema checked the shapes); a session of FRTM or LWL names its
    variant and one weights file as a row does, and its settings are built as its job builds them (and checked
    against its training's), so a typo fails `snakemake -n` in one line."""
    for session, spec in INTERACTIVE["sessions"].items():
        where = f"{PRESET_FILE} interactive.sessions.{session}"
        if spec["dataset"] not in INTERACTIVE["datasets"]:
            raise WorkflowError(
                f"{where}.dataset: {spec['dataset']!r} is not an entry of interactive.datasets "
                f"({', '.join(sorted(INTERACTIVE['datasets'])) or 'none'})"
            )
        if spec["method"] not in registry.INTERACTIVE_METHODS:
            raise WorkflowError(
                f"{where}.method: {spec['method']!r} is not an interactive method "
                f"(methods/registry.py INTERACTIVE_METHODS: {', '.join(sorted(registry.INTERACTIVE_METHODS))})"
            )
        row = session_as_row(session)
        weights = [key for key in ("training", "checkpoint", "released", "variant") if key in spec]
        if row is None and weights:
            raise WorkflowError(
                f"{where}: {spec['method']} takes no variant or weights ({', '.join(weights)}); its settings are "
                "its own (`settings:`)"
            )
        if row is not None:
            _check_session_weights(where, row)
        try:
            registry.interactive_settings(spec["method"], json.loads(json.dumps(session_settings(session))))
        except (ValueError, TypeError) as err:
            raise WorkflowError(f"{where}: {err}") from None
        if row is not None and row.get("training"):
            try:
                registry.check_training(
                    row["method"],
                    json.loads(json.dumps(session_settings(session))),
                    json.loads(json.dumps(training_settings(row["training"], resolve=False))),
                )
            except ValueError as err:
                raise WorkflowError(f"{where}: {err}") from None
        if spec.get("chunks", 1) > 1 and INTERACTIVE["datasets"][spec["dataset"]].get("sequences"):
            count = len(INTERACTIVE["datasets"][spec["dataset"]]["sequences"])
            if spec["chunks"] > count:
                raise WorkflowError(
                    f"{where}.chunks: {spec['chunks']} jobs for the {count} sequence(s) of dataset "
                    f"{spec['dataset']!r}; choose at most {count}"
                )


def _check_session_weights(where, row):
    """A session of FRTM or LWL: a variant of its method and exactly one weights file, as rows (_check_references)."""
    variant = row.get("variant")
    if variant is None or variant not in VARIANTS.get(row["method"], {}):
        known = sorted(VARIANTS.get(row["method"], {}))
        raise WorkflowError(
            f"{where}.variant: a session of {row['method']} names a variant of config/variants.yaml "
            f"{row['method']} (the interactive one: `interactive`); got {variant!r}, known: {known}"
        )
    weights = [key for key in ("training", "checkpoint", "released") if key in row]
    if len(weights) != 1:
        raise WorkflowError(
            f"{where}: a session of {row['method']} needs exactly one of `training:` (a training of the preset), "
            f"`checkpoint:` (a weights file) or `released:` (a file of released_weights); it has {weights or 'none'}"
        )
    training = row.get("training")
    if training is not None and (training not in TRAININGS or TRAININGS[training]["method"] != row["method"]):
        raise WorkflowError(
            f"{where}.training: {training!r} is not a {row['method']} training of this preset; known: "
            f"{sorted(name for name, entry in TRAININGS.items() if entry['method'] == row['method'])}"
        )


def leave_out_released_sessions():
    """Sessions whose released file is not there leave the DAG (after their check), one line each, as rows do;
    a file that is there is checked as a row's (_check_released_files)."""
    from methods.core.released_check import check

    for session in sorted(INTERACTIVE["sessions"]):
        spec = INTERACTIVE["sessions"][session]
        if "released" in spec and RELEASED_DIR and Path(released_file(spec["released"])).is_file():
            try:
                check(
                    released_file(spec["released"]),
                    session_released_expectation(session),
                    f"interactive.{session}",
                )
            except (ValueError, OSError) as err:
                raise WorkflowError(str(err)) from None
        elif "released" in spec:
            print(
                f"note: interactive session {session} left out: it needs the authors' released file "
                f"{released_file(spec['released'])} (released_weights in config.yaml, docs/reproducing.md "
                "'Released weights')",
                file=sys.stderr,
            )
            del INTERACTIVE["sessions"][session]


_check_interactive()
leave_out_released_sessions()
