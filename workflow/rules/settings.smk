# What each job is given, from the checked config: dataset locations and specs, a training's and a row's
# settings as their jobs read them (JSON), the selections the scorers take, and the digest of the code each
# kind of job runs (a parameter: Snakemake reruns a job whose code changed). Methods are asked through
# methods.registry; no method is named here.
from functools import cache

from methods.core.weights_files import WEIGHTS_BY_FILE, WEIGHTS_DIR_VARIABLE


def dataset_root(name):
    """Where a dataset lives: generated, downloaded, or a configured folder (`root` may name config.yaml's
    `paths`, e.g. "{youtube_vos_2018}", and "{shared_dir}")."""
    spec = config["datasets"][name]
    if spec["kind"] == "synthetic":  # per preset: presets may generate different sets under one name
        return generated_dataset(name)
    if spec.get("download"):
        return downloaded_dataset(spec["download"])
    root = spec.get("root")
    paths = config.get("paths") or {}
    placeholders = re.findall(r"{(\w+)}", root or "")
    unset = [key for key in placeholders if key != "shared_dir" and not paths.get(key)]
    if not root or unset:
        from vos_datasets.youtube_vos import REGISTRATION_HINT

        where = (
            f"paths.{unset[0]} in config.yaml (or --config 'paths={{{unset[0]}: /data/...}}')"
            if unset
            else f"datasets.{name}.root"
        )
        raise WorkflowError(f"datasets.{name}: its location is not set; set {where}. {REGISTRATION_HINT}")
    return root.format(shared_dir=SHARED_DIR, **{k: v for k, v in paths.items() if v})


def evaluation_protocol(evaluation):
    """davis (DAVIS toolkit), youtube_vos (local scoring of held-out train videos) or server (YouTube-VOS
    valid/test: hidden ground truth, a submission zip and the server's returned figures)."""
    entry = config["evaluations"][evaluation]
    if config["datasets"][entry["dataset"]]["kind"] != "youtube_vos":
        return "davis"
    return "server" if entry["split"] in ("valid", "test") else "youtube_vos"


def video_selection(entry):
    """An evaluation's or training source's videos as its job reads them: the preset's `sequences`, or the
    split file `videos_list` names (vos_datasets/splits/), by name: a list of thousands of ids would make the job's
    command line tens of kB (vos_datasets.build reads the file)."""
    named = {"videos_list": entry["videos_list"]} if entry.get("videos_list") else {}
    return {"sequences": entry.get("sequences"), **named}


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


def infer_dataset(wildcards):
    """An infer job's dataset folder. A YouTube-VOS evaluation's methods run on <split>_all_frames
    (vos_datasets.youtube_vos): where <split>/ is there without it, the DAG is refused naming it."""
    entry = config["evaluations"][wildcards.evaluation]
    root = dataset_root(entry["dataset"])
    if config["datasets"][entry["dataset"]]["kind"] == "youtube_vos":
        split = entry["split"]
        if (Path(root) / split).is_dir() and not (Path(root) / f"{split}_all_frames").is_dir():
            from vos_datasets.youtube_vos import missing_all_frames

            raise WorkflowError(f"evaluations.{wildcards.evaluation}: {missing_all_frames(root, split)}")
    return root


def dataset_spec(evaluation):
    """The dataset entry handed to `python -m methods infer` as JSON."""
    entry = config["evaluations"][evaluation]
    spec = config["datasets"][entry["dataset"]]
    return {
        "kind": "youtube_vos" if spec["kind"] == "youtube_vos" else "davis",
        "root": dataset_root(entry["dataset"]),
        "split": entry["split"],
        "year": spec.get("year", "2017"),
        **video_selection(entry),
    }


def source_spec(source, resolve=True):
    """A training source's dataset entry handed to the training as JSON (its method's training module);
    resolve=False leaves its folder out (root None: the DAG-time settings check, validation.smk)."""
    spec = config["datasets"][source["dataset"]]
    dataset = {
        "kind": "youtube_vos" if spec["kind"] == "youtube_vos" else "davis",
        "root": dataset_root(source["dataset"]) if resolve else None,
        "split": source["split"],
        "year": spec.get("year", "2017"),
        **video_selection(source),
    }
    if spec["kind"] == "youtube_vos":
        # trainings read the annotated frames of <split>/ only, as the released trainings (no all-frames folder)
        dataset["all_frames"] = False
    share = {key: source[key] for key in ("repeats", "pairs", "weight") if key in source}
    return {"dataset": dataset, **share}


def validation_spec(entry, resolve=True):
    """A training's held-out set (`validation:`) as the training's `validation` setting: its dataset resolved
    as a source's, with `samples` and `every` where the preset sets them (methods.core.trainer)."""
    return {
        "dataset": source_spec(entry, resolve)["dataset"],
        **{key: entry[key] for key in ("samples", "every") if key in entry},
    }


def training_datasets(training):
    """The datasets a training reads: its sources' and its held-out set's."""
    entry = TRAININGS[training]
    return [s["dataset"] for s in entry["sources"]] + (
        [entry["validation"]["dataset"]] if entry.get("validation") else []
    )


def training_settings(training, resolve=True):
    """The training's settings with its sources, held-out set (and starting weights) resolved, as
    its method's training module reads them; resolve=False leaves the dataset folders out (the
    DAG-time check: a training no target needs may read a dataset whose folder is not set)."""
    entry = TRAININGS[training]
    settings = {**entry["settings"], "sources": [source_spec(s, resolve) for s in entry["sources"]]}
    if entry.get("validation"):
        settings["validation"] = validation_spec(entry["validation"], resolve)
    if config.get("training_seed") is not None and not repeat_of(training):  # a seed repeat keeps its seed
        settings["seed"] = config["training_seed"]
    if entry.get("init_from"):
        settings["init_from"] = trained_head(entry["init_from"])
    return settings


def training_config(training):
    """The training's settings as JSON for its method's training module."""
    return json.dumps(training_settings(training))


def training_inputs(training):
    entry = TRAININGS[training]
    inputs = sorted({dataset_root(name) for name in training_datasets(training)})
    return inputs + ([trained_head(entry["init_from"])] if entry.get("init_from") else [])


def row_weights(row):
    """The weights file a row runs with: its training's head, its own `checkpoint:`, or its released-weights
    file (`released:`); None for none."""
    return weights_of(config["rows"][row])


def weights_of(spec):
    """The weights file a row or an interactive session names (training, checkpoint or released); None for none."""
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
    settings = merged_settings(config["rows"][row], VARIANTS, config.get("method_defaults", {}))
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


def split_file(evaluation):
    spec = dataset_spec(evaluation)
    folder = "2017" if spec["year"] == "2017" else "480p"
    return f"{spec['root']}/ImageSets/{folder}/{spec['split']}.txt"


def evaluation_task(evaluation):
    """The DAVIS task an evaluation is scored with (`python -m metrics --task`): semi-supervised unless its `task`
    says unsupervised, which scores against the dataset's Annotations_unsupervised/480p."""
    return config["evaluations"][evaluation].get("task", "semi-supervised")


def annotations_folder(evaluation, root):
    """The ground truth of a DAVIS evaluation: <root>/Annotations/480p, or Annotations_unsupervised/480p."""
    folder = "Annotations_unsupervised" if evaluation_task(evaluation) == "unsupervised" else "Annotations"
    return f"{root}/{folder}/480p"


def sequence_selection(evaluation):
    """--sequences or --split-file arguments for `python -m metrics`, as a list (for {params.x:q})."""
    sequences = config["evaluations"][evaluation].get("sequences")
    if sequences:
        return ["--sequences", *sequences]
    return ["--split-file", split_file(evaluation)]


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


def training_priority(wildcards):
    """How many rows wait on a training (directly, or through the trainings that start from it): a job
    scheduler starts the training most rows wait on first, which on a few cores is the critical path (the
    embedded preset's R, shared by five rows, trains for minutes while the others' trainings take seconds)."""
    waiting = 0
    for spec in config["rows"].values():
        training = spec.get("training")
        while training and training != wildcards.training:
            training = TRAININGS[training].get("init_from")
        waiting += training == wildcards.training
    return waiting


def used_datasets():
    """Datasets some evaluation or needed training reads."""
    names = {config["evaluations"][evaluation]["dataset"] for evaluation in evaluated()}
    names |= {name for training in used_trainings() for name in training_datasets(training)}
    return sorted(names)


def job_settings(row):
    """A row's settings as its job reads them: JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(row_settings(row)))


def score_map_arguments(wildcards, output):
    """Rows whose method keeps coarse score maps (methods.registry: FRTM's D, not its Base net rows) keep those
    of the figures' sequence; other rows leave the folder empty."""
    method = config["rows"][wildcards.row]["method"]
    if not registry.keeps_score_maps(method, job_settings(wildcards.row)):
        return []
    sequence = config["evaluations"][wildcards.evaluation].get("qualitative_sequence")
    return ["--score-maps", output.maps] + (["--score-map-sequences", sequence] if sequence else [])


def training_module(training):
    """The module `python -m` runs to train a training's method (methods.registry)."""
    return registry.method(TRAININGS[training]["method"]).training_module


# The code each kind of job runs, as a digest given to its rules as a parameter (Snakemake reruns a job whose
# parameters changed): a method's train jobs (its training module and what that imports: the checkpoint's code
# identity too) and infer jobs (its tracker's module and what that imports, and the runner), the scoring jobs
# (metrics, vos_datasets), the report jobs (reporting). Computed once per run; methods.registry.
@cache
def training_code(method):
    return registry.training_code_digest(method)


@cache
def inference_code(method):
    return registry.inference_code_digest(method)


@cache
def scoring_code():
    return registry.files_digest("metrics", "vos_datasets")


@cache
def reporting_code():
    return registry.files_digest("reporting")


@cache
def interactive_code(method=None):
    """The code of the interactive track's jobs: the interactive package and the data layer; for a session also its
    method's module and what that imports (methods/registry.py INTERACTIVE_METHODS)."""
    return (
        registry.interactive_code_digest(method)
        if method
        else registry.files_digest("interactive", "vos_datasets")
    )


# --- the pretrained backbone file each training and row reads (weights.smk's fetch_weights fetches it) ------
WEIGHTS_DIR = "resources/weights"
# every job's environment: Snakemake reads this file again in each cluster job, whose commands inherit it
os.environ[WEIGHTS_DIR_VARIABLE] = WEIGHTS_DIR


@cache
def preset_backbone_weights():
    """trainings.<name> / rows.<name> -> the pretrained weights each starts from (methods.rows)."""
    from methods.rows import backbone_weights_of_preset

    return backbone_weights_of_preset(config, VARIANTS)


def weights_input(file_name):
    """ancient: a file's checksum, not its time, says whether it changed (methods.core.weights_files)."""
    return ancient(f"{WEIGHTS_DIR}/{file_name}")


def training_backbone_weights(wildcards):
    """The fetched file of the training's pretrained backbone, as a list (none: its settings name a file, or its
    method starts from no pretrained backbone)."""
    if TRAININGS[wildcards.training]["settings"].get("backbone_weights_file"):
        return []
    weights = preset_backbone_weights()[f"trainings.{wildcards.training}"]
    return [] if isinstance(weights, str) else [weights_input(weights.file_name)]


def row_backbone_weights(wildcards):
    """The fetched file of the row's pretrained backbone, as a list: none where its settings name a file, the
    first-frame copy (no backbone) and a released file (it carries its backbone). An LWL `checkpoint:` names its
    backbone inside the file, which a fixed copy may leave out (methods.core.checkpoints: built then from its
    pretrained weights): such a row takes the files of the preset's trainings."""
    return backbone_inputs(
        config["rows"][wildcards.row], row_settings(wildcards.row), f"rows.{wildcards.row}"
    )


def backbone_inputs(spec, settings, key):
    """row_backbone_weights for a row or an interactive session (`key` in preset_backbone_weights)."""
    if settings.get("backbone_weights_file"):
        return []
    weights = preset_backbone_weights()[key]
    if not isinstance(weights, str):
        return [weights_input(weights.file_name)]
    if spec.get("checkpoint"):
        return sorted(
            {
                weights_input(weights.file_name)
                for entry, weights in preset_backbone_weights().items()
                if entry.startswith("trainings.")
            }
        )
    return []


# --- the interactive track's sessions (workflow/rules/interactive.smk) ---------------------------------------
# A session of FRTM or LWL (methods/registry.py INTERACTIVE_METHODS: semi_supervised) reads as a row of that
# method: its variant (config/variants.yaml `interactive`), the preset's method_defaults, its own settings and one
# weights file (training, checkpoint or released). Other sessions' settings are their own.
def session_as_row(session):
    """The session's entry with the semi-supervised method's name, as rows name it (None: a method without weights)."""
    spec = INTERACTIVE["sessions"][session]
    semi_supervised = registry.interactive_method(spec["method"]).semi_supervised
    return {**spec, "method": semi_supervised} if semi_supervised else None


def session_settings(session):
    """The settings `python -m interactive session` gets: merged as a row's, with its weights as `checkpoint`."""
    row = session_as_row(session)
    settings = merged_session_settings(
        INTERACTIVE["sessions"][session], VARIANTS, config.get("method_defaults", {})
    )
    if row is not None and weights_of(row):
        settings["checkpoint"] = weights_of(row)
    return settings


def session_weights(wildcards):
    """The session's weights file and, for a released file, its record (checked before the session), as a list."""
    row = session_as_row(wildcards.session)
    if row is None or not weights_of(row):
        return []
    return [weights_of(row)] + ([released_record(row["released"])] if row.get("released") else [])


def session_backbone_weights(wildcards):
    row = session_as_row(wildcards.session)
    if row is None:
        return []
    return backbone_inputs(row, session_settings(wildcards.session), f"interactive.{wildcards.session}")


def session_chunks(session):
    """How many jobs share the session's sequences (`chunks`, default 1), merged by `python -m interactive summarize`."""
    return INTERACTIVE["sessions"][session].get("chunks", 1)


def session_label(session):
    """The session's `label`, else its variant's (FRTM and LWL), else its name."""
    spec = INTERACTIVE["sessions"][session]
    row = session_as_row(session)
    if spec.get("label"):
        return spec["label"]
    if row is not None and row.get("variant") in VARIANTS.get(row["method"], {}):
        return VARIANTS[row["method"]][row["variant"]]["label"]
    return session
