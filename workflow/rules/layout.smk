# Where every output lies, each layout spelled once here: the rules and the target lists call these
# functions (default arguments are the wildcards: row_path("masks") is the rule's pattern,
# row_path("masks", "davis2016-val", "frtm-ours") a file). Also which targets the preset has.
RESULTS = f"results/{PRESET}"
REPORTS = f"reports/{PRESET}"
LOGS = f"logs/{PRESET}"
SUMMARY = f"{RESULTS}/summary.csv"
LATEST_TABLES = "reports/tables.md"  # a copy of the tables of the preset that ran last
PUBLISHED = "reporting/published.yaml"  # the papers' figures the tables and plots set beside ours


def row_path(name, evaluation="{evaluation}", row="{row}"):
    """A row's output `name` on one evaluation: masks, timing.json, score-maps, submission.zip, scores/..."""
    return f"{RESULTS}/{evaluation}/{row}/{name}"


def scores_path(kind, evaluation="{evaluation}", row="{row}"):
    """A file of a row's scores folder as `python -m metrics` names it: kind global, per-sequence, per-object
    or per-frame (<kind>_results-<evaluation>.csv), or protocol (protocol-<evaluation>.json)."""
    name = f"protocol-{evaluation}.json" if kind == "protocol" else f"{kind}_results-{evaluation}.csv"
    return row_path(f"scores/{name}", evaluation, row)


def training_path(name, training="{training}"):
    return f"{RESULTS}/training/{training}/{name}"


def trained_head(training="{training}"):
    return training_path("head.pt", training)


def training_history(training="{training}"):
    return training_path("head.json", training)


def released_record(name="{released}"):
    """The record of a released-weights file (name, size, sha256, method, backbone): results/<preset>/released/."""
    return f"{RESULTS}/released/{name}.json"


def report_path(name):
    """reports/<preset>/<name>: figures/..., provenance.json, tables.md."""
    return f"{REPORTS}/{name}"


def figure_path(name):
    return report_path(f"figures/{name}")


def log_path(*parts, preset=True):
    """logs/<preset>/<parts...>.log (preset=False: logs/<parts...>.log, for data every preset shares)."""
    return f"{LOGS if preset else 'logs'}/{'/'.join(parts)}.log"


def benchmark_path(*parts, preset=True):
    """The job's timing and memory record beside its log: logs/[<preset>/]benchmarks/<parts...>.tsv."""
    return f"{LOGS if preset else 'logs'}/benchmarks/{'/'.join(parts)}.tsv"


def generated_dataset(name="{dataset}"):
    return f"resources/generated/{PRESET}/{name}"


def downloaded_dataset(archive="{archive}"):
    return f"resources/datasets/{archive}"


# --- the preset's targets ---
def row_targets():
    return [(row, evaluation) for row, spec in config["rows"].items() for evaluation in spec["evaluate_on"]]


def evaluated(protocol=None):
    """The evaluations some row runs on (of one protocol, if given), in config order."""
    return [
        name
        for name in config["evaluations"]
        if any(name in spec["evaluate_on"] for spec in config["rows"].values())
        and (protocol is None or evaluation_protocol(name) == protocol)
    ]


def score_files():
    """What each (row, evaluation) is scored by: the global CSV, or for the server the submission zip."""
    return [
        (
            row_path("submission.zip", evaluation, row)
            if evaluation_protocol(evaluation) == "server"
            else scores_path("global", evaluation, row)
        )
        for row, evaluation in row_targets()
    ]


def timing_files():
    return [row_path("timing.json", evaluation, row) for row, evaluation in row_targets()]


def evaluation_files(evaluation, kind):
    """Every row's `kind` output (scores: the per-frame CSV; masks, score-maps) on one evaluation, for its
    figures: the seed repeats are left out (the seeds table alone shows them)."""
    rows = [
        row
        for row, spec in config["rows"].items()
        if evaluation in spec["evaluate_on"] and not repeat_of(row)
    ]
    if kind == "scores":
        return [scores_path("per-frame", evaluation, row) for row in rows]
    return [row_path(kind, evaluation, row) for row in rows]


def training_histories():
    """The histories of the trainings some row needs."""
    return [training_history(training) for training in used_trainings()]


def released_records():
    """The records of the released files the preset's rows run."""
    return sorted(
        {released_record(spec["released"]) for spec in config["rows"].values() if spec.get("released")}
    )


def alternatives(names):
    """A wildcard constraint matching exactly these names (none: nothing)."""
    return "|".join(map(re.escape, names)) or "(?!)"


# --- the interactive track (workflow/rules/interactive.smk) ---
def interactive_dataset_root(name="{interactive_dataset}"):
    """A stand-in's root (built per preset), or DAVIS 2017 with its scribbles (shared by the presets)."""
    if name != "{interactive_dataset}" and INTERACTIVE["datasets"][name]["kind"] == "davis2017":
        return "resources/datasets/davis2017-interactive"
    return f"resources/interactive/{PRESET}/{name}"


def interactive_session_path(name, session="{session}"):
    """A session's summary.json (its chunks' reports merged, interactive_chunk_path)."""
    return f"{RESULTS}/interactive/{session}/{name}"


def interactive_chunk_path(name, session="{session}", chunk="{chunk}"):
    """One job's part of a session (chunks.<k>-of-<n>: every n-th sequence from the k-th): report.csv, summary.json,
    timing.json; the session's summary.json merges them."""
    return f"{RESULTS}/interactive/{session}/chunks/{chunk}/{name}"


def interactive_chunks(session):
    """The chunk names of a session (interactive.sessions.<name>.chunks jobs)."""
    count = session_chunks(session)
    return [f"{part}-of-{count}" for part in range(1, count + 1)]
