# The preset's summary, figures, provenance manifest and tables: results/<preset>/summary.csv,
# reports/<preset>/{figures/,provenance.json,tables.md}, and reports/tables.md (a copy for the preset that ran
# last; its header names the preset).


# seconds of work each: not worth a cluster job (provenance hashes the datasets, plot_evaluation reads every
# frame: those stay cluster jobs)
localrules:
    aggregate,
    plot_speed_accuracy,
    plot_training,
    render_tables,


rule aggregate:
    input:
        scores=score_files(),
        timings=timing_files(),
        # the trainings' histories: the tables cite a row's training length and held-out J where it scores low
        histories=training_histories(),
        # the released files' records: their sha256 beside the rows that ran them
        released=released_records(),
        server_results=config["server_results"],
    output:
        SUMMARY,
    log:
        log_path("aggregate"),
    benchmark:
        benchmark_path("aggregate")
    conda:
        EVALUATION_ENV
    resources:
        **RESOURCES["aggregate"],
    params:
        preset=PRESET,
        results=lambda wildcards, output: os.path.dirname(output[0]),
        rows=lambda wildcards: json.dumps(
            {row: {**spec, "label": row_label(row)} for row, spec in config["rows"].items()}
        ),
        protocols=lambda wildcards: json.dumps({name: evaluation_protocol(name) for name in evaluated()}),
        code=lambda wildcards: reporting_code(),
    shell:
        "python -m reporting aggregate --preset {params.preset:q} --rows {params.rows:q} --results {params.results:q}"
        " --protocols {params.protocols:q} --server-results {input.server_results:q} --out {output:q} > {log:q} 2>&1"


rule plot_speed_accuracy:
    input:
        summary=SUMMARY,
        published=PUBLISHED,
    output:
        report(figure_path("speed_accuracy.png"), caption="../report/speed_accuracy.rst", category="Figures"),
    log:
        log_path("plots", "speed_accuracy"),
    benchmark:
        benchmark_path("plots", "speed_accuracy")
    conda:
        EVALUATION_ENV
    resources:
        **RESOURCES["plot_speed_accuracy"],
    params:
        evaluations=lambda wildcards: json.dumps(config["evaluations"]),
        code=lambda wildcards: reporting_code(),
    shell:
        "python -m reporting plot-speed --summary {input.summary:q} --evaluations {params.evaluations:q}"
        " --published {input.published:q} --out {output:q} > {log:q} 2>&1"


rule plot_training:
    input:
        histories=training_histories(),
    output:
        report(
            figure_path("training-curves.png"), caption="../report/training_curves.rst", category="Figures"
        ),
    log:
        log_path("plots", "training-curves"),
    benchmark:
        benchmark_path("plots", "training-curves")
    conda:
        EVALUATION_ENV
    resources:
        **RESOURCES["plot_training"],
    params:
        code=lambda wildcards: reporting_code(),
    shell:
        "python -m reporting plot-training --histories {input.histories:q} --out {output:q} > {log:q} 2>&1"


rule plot_evaluation:
    input:
        summary=SUMMARY,
        scores=lambda wildcards: evaluation_files(wildcards.evaluation, "scores"),
        masks=lambda wildcards: evaluation_files(wildcards.evaluation, "masks"),
        maps=lambda wildcards: evaluation_files(wildcards.evaluation, "score-maps"),
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
    output:
        per_sequence=report(
            figure_path("per_sequence-{evaluation}.png"),
            caption="../report/per_sequence.rst",
            category="Figures",
            subcategory="{evaluation}",
        ),
        decay=report(
            figure_path("decay-{evaluation}.png"),
            caption="../report/decay.rst",
            category="Figures",
            subcategory="{evaluation}",
        ),
        attributes=report(
            figure_path("attributes-{evaluation}.png"),
            caption="../report/attributes.rst",
            category="Figures",
            subcategory="{evaluation}",
        ),
        qualitative=report(
            directory(figure_path("qualitative-{evaluation}")),
            patterns=["{row}.png"],
            caption="../report/qualitative.rst",
            category="Qualitative",
            subcategory="{evaluation}",
        ),
    log:
        log_path("plots", "{evaluation}"),
    benchmark:
        benchmark_path("plots", "{evaluation}")
    conda:
        EVALUATION_ENV
    resources:
        **RESOURCES["plot_evaluation"],
    params:
        results=lambda wildcards, input: os.path.dirname(input.summary),
        out_dir=lambda wildcards, output: os.path.dirname(output.per_sequence),
        sequence=lambda wildcards: (
            ["--qualitative-sequence", config["evaluations"][wildcards.evaluation]["qualitative_sequence"]]
            if config["evaluations"][wildcards.evaluation].get("qualitative_sequence")
            else []
        ),
        code=lambda wildcards: reporting_code(),
    shell:
        "python -m reporting plot-evaluation --summary {input.summary:q} --results {params.results:q}"
        " --evaluation {wildcards.evaluation:q} --root {input.dataset:q} {params.sequence:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule provenance:
    input:
        heads=sorted(
            {trained_head(training) for training in used_trainings()}
            | {
                row_weights(row)
                for row, spec in config["rows"].items()
                if row_weights(row) and not spec.get("released")
            }
        ),
        released=released_records(),
        datasets=[dataset_root(name) for name in used_datasets()],
        # the devices the infer jobs ran on, as they recorded them (this job may run on another node)
        timings=timing_files(),
    output:
        report(report_path("provenance.json"), caption="../report/provenance.rst", category="Provenance"),
    log:
        log_path("provenance"),
    benchmark:
        benchmark_path("provenance")
    conda:
        TORCH_ENV
    resources:
        **RESOURCES["provenance"],
    params:
        preset=PRESET,
        # sorted: a --config value equal to config.yaml's comes first in Snakemake's dict, the same config; without
        # keep_checkpoints_across_code_changes, which decides how a training resumes, not what the run computes
        config=lambda wildcards: json.dumps(
            {k: v for k, v in config.items() if k != "keep_checkpoints_across_code_changes"}, sort_keys=True
        ),
        datasets=lambda wildcards: json.dumps({name: dataset_root(name) for name in used_datasets()}),
        code=lambda wildcards: reporting_code(),
    shell:
        "python -m reporting provenance --preset {params.preset:q} --config {params.config:q} --heads {input.heads:q}"
        " --released {input.released:q} --datasets {params.datasets:q} --timings {input.timings:q} --out {output:q}"
        " > {log:q} 2>&1"


rule render_tables:
    input:
        summary=SUMMARY,
        published=PUBLISHED,
        speed=figure_path("speed_accuracy.png"),
        figures=[figure_path(f"per_sequence-{evaluation}.png") for evaluation in evaluated("davis")],
        training=[figure_path("training-curves.png")] if used_trainings() else [],
        provenance=report_path("provenance.json"),
    output:
        latest=report(LATEST_TABLES, caption="../report/tables.rst", category="Tables"),
        preset=report_path("tables.md"),
    log:
        log_path("render_tables"),
    benchmark:
        benchmark_path("render_tables")
    conda:
        EVALUATION_ENV
    resources:
        **RESOURCES["render_tables"],
    params:
        preset=PRESET,
        description=config["description"],
        datasets=lambda wildcards: json.dumps(described_datasets()),
        evaluations=lambda wildcards: json.dumps(config["evaluations"]),
        figures=lambda wildcards, input: os.path.dirname(input.speed),
        code=lambda wildcards: reporting_code(),
    shell:
        "python -m reporting render --summary {input.summary:q} --preset {params.preset:q}"
        " --description {params.description:q} --datasets {params.datasets:q} --evaluations {params.evaluations:q}"
        " --published {input.published:q} --figures {params.figures:q} --provenance {input.provenance:q}"
        " --out {output.latest:q} {output.preset:q} > {log:q} 2>&1"
