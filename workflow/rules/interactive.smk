# The DAVIS interactive track (docs/interactive.md): the preset's `interactive:` section names datasets (a
# stand-in built from the shared folder, or the downloaded DAVIS 2017 with the official scribbles) and sessions (a
# method over a dataset's samples: the robot's scribbles, J&F per interaction, AUC, J&F@60s). Target:
#   snakemake --cores 2 reports/<preset>/interactive.md --config preset=<preset>
# Sessions run the official package (davisinteractive, `make interactive-setup`; envs/interactive.yaml) through
# `python -m interactive`; the table and plots come from `python -m reporting interactive`.
INTERACTIVE_ENV = "../../envs/interactive.yaml"
INTERACTIVE_REPORT = report_path("interactive.md")
PUBLISHED_INTERACTIVE = "reporting/published_interactive.yaml"


# the stand-ins are built from the shared folder on the machine running Snakemake (seconds of work)
localrules:
    interactive_standin,
    interactive_davis2017,
    interactive_summary,
    interactive_report,


rule interactive_standin:
    output:
        directory(f"resources/interactive/{PRESET}/{{interactive_dataset}}"),
    log:
        log_path("interactive", "standin-{interactive_dataset}"),
    conda:
        INTERACTIVE_ENV
    resources:
        **RESOURCES["interactive_standin"],
    params:
        shared=SHARED_DIR,
        kind=lambda wildcards: INTERACTIVE["datasets"][wildcards.interactive_dataset].get("objects", "single"),
        sequences=lambda wildcards: ",".join(
            INTERACTIVE["datasets"][wildcards.interactive_dataset]["sequences"]
        ),
        code=lambda wildcards: interactive_code(),
    shell:
        "python -m interactive standin --shared {params.shared:q} --kind {params.kind:q}"
        " --sequences {params.sequences:q} --out {output:q} > {log:q} 2>&1"


rule interactive_davis2017:
    """The downloaded DAVIS 2017 (frames and annotations linked) with the official scribbles archive unpacked."""
    input:
        davis=downloaded_dataset("davis2017"),
    output:
        directory("resources/datasets/davis2017-interactive"),
    log:
        log_path("data", "download-davis2017-scribbles", preset=False),
    retries: 2
    conda:
        INTERACTIVE_ENV
    resources:
        **RESOURCES["download_davis"],
    params:
        mirror=lambda wildcards: (
            ["--mirror", config["downloads"]["mirror"]] if config["downloads"].get("mirror") else []
        ),
        archive=lambda wildcards: (
            ["--archive", config["downloads"]["archives"]["davis2017-scribbles"]]
            if "davis2017-scribbles" in config["downloads"].get("archives", {})
            else []
        ),
    shell:
        # the download's folders linked, not copied (read only); the scribbles unpacked beside them
        "mkdir -p {output:q} && for part in JPEGImages Annotations ImageSets; do"
        ' ln -s "$(realpath {input.davis:q})/$part" {output:q}/$part; done &&'
        " python -m interactive download-scribbles --davis-root {output:q} {params.mirror:q} {params.archive:q}"
        " > {log:q} 2>&1"


rule interactive_session:
    """One chunk of a session (every n-th sequence from the k-th; one chunk: all of them)."""
    input:
        root=lambda wildcards: interactive_dataset_root(interactive_session_dataset(wildcards.session)),
        weights=session_weights,
        backbone=session_backbone_weights,
    output:
        report=interactive_chunk_path("report.csv"),
        summary=interactive_chunk_path("summary.json"),
        timing=interactive_chunk_path("timing.json"),
    log:
        log_path("interactive", "{session}.{chunk}"),
    benchmark:
        benchmark_path("interactive", "{session}.{chunk}")
    wildcard_constraints:
        chunk=r"\d+-of-\d+",
    conda:
        INTERACTIVE_ENV
    threads: THREADS["interactive"]
    resources:
        **RESOURCES["interactive_session"],
    params:
        method=lambda wildcards: INTERACTIVE["sessions"][wildcards.session]["method"],
        settings=lambda wildcards: json.dumps(session_settings(wildcards.session)),
        sequences=lambda wildcards: (
            [
                "--sequences",
                ",".join(
                    INTERACTIVE["datasets"][interactive_session_dataset(wildcards.session)]["sequences"]
                ),
            ]
            if INTERACTIVE["datasets"][interactive_session_dataset(wildcards.session)].get("sequences")
            else []
        ),
        chunk=lambda wildcards: ["--chunk", wildcards.chunk.replace("-of-", "/")],
        scribbles=lambda wildcards: (
            ["--scribbles", INTERACTIVE["sessions"][wildcards.session]["scribbles"]]
            if INTERACTIVE["sessions"][wildcards.session].get("scribbles")
            else []
        ),
        interactions=lambda wildcards: INTERACTIVE["sessions"][wildcards.session].get("max_interactions", 8),
        max_time=lambda wildcards: (
            ["--max-time", INTERACTIVE["sessions"][wildcards.session]["max_time"]]
            if INTERACTIVE["sessions"][wildcards.session].get("max_time")
            else []
        ),
        out_dir=lambda wildcards, output: os.path.dirname(output.summary),
        code=lambda wildcards: interactive_code(INTERACTIVE["sessions"][wildcards.session]["method"]),
    shell:
        "python -m interactive session --root {input.root:q} --method {params.method:q} --settings {params.settings:q}"
        " {params.sequences:q} {params.chunk:q} {params.scribbles:q} --max-interactions {params.interactions:q}"
        " {params.max_time:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule interactive_summary:
    """A session's summary: the suite's own (and the package's) over its chunks' reports together."""
    input:
        root=lambda wildcards: interactive_dataset_root(interactive_session_dataset(wildcards.session)),
        reports=lambda wildcards: [
            interactive_chunk_path("report.csv", chunk=chunk)
            for chunk in interactive_chunks(wildcards.session)
        ],
    output:
        interactive_session_path("summary.json"),
    log:
        log_path("interactive", "{session}.summary"),
    conda:
        INTERACTIVE_ENV
    resources:
        **RESOURCES["render_tables"],
    params:
        code=lambda wildcards: interactive_code(),
    shell:
        "python -m interactive summarize --quiet --reports {input.reports:q} --root {input.root:q} --out {output:q}"
        " > {log:q} 2>&1"


rule interactive_report:
    input:
        summaries=[interactive_session_path("summary.json", session) for session in INTERACTIVE["sessions"]],
        published=PUBLISHED_INTERACTIVE,
    output:
        table=report(INTERACTIVE_REPORT, caption="../report/interactive.rst", category="Interactive"),
        interactions=report(
            figure_path("interactive-interactions.png"),
            caption="../report/interactive.rst",
            category="Interactive",
        ),
        time=report(
            figure_path("interactive-time.png"), caption="../report/interactive.rst", category="Interactive"
        ),
    log:
        log_path("interactive", "report"),
    conda:
        EVALUATION_ENV
    resources:
        **RESOURCES["render_tables"],
    params:
        preset=PRESET,
        labels=lambda wildcards: json.dumps(
            {session: session_label(session) for session in INTERACTIVE["sessions"]}
        ),
        notes=lambda wildcards: json.dumps(
            {session: spec["note"] for session, spec in INTERACTIVE["sessions"].items() if spec.get("note")}
        ),
        code=lambda wildcards: reporting_code(),
    shell:
        "python -m reporting interactive --preset {params.preset:q} --summaries {input.summaries:q}"
        " --labels {params.labels:q} --notes {params.notes:q} --published {input.published:q} --out {output.table:q}"
        " --figure-interactions {output.interactions:q} --figure-time {output.time:q} > {log:q} 2>&1"
