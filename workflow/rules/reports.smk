# The preset's summary, figures, provenance manifest and tables: results/<preset>/summary.csv,
# reports/<preset>/{figures/,provenance.json,tables.md}, and reports/tables.md (a copy for the preset that ran
# last; its header names the preset).

REPORTS = f"reports/{PRESET}"


rule aggregate:
    input:
        scores=score_files(),
        timings=timing_files(),
        # the trainings' histories: the tables cite a row's training length and held-out J where it scores low
        histories=[f"{RESULTS}/training/{training}/head.json" for training in used_trainings()],
        server_results=config["server_results"],
    output:
        f"{RESULTS}/summary.csv",
    params:
        preset=PRESET,
        results=lambda wildcards, output: os.path.dirname(output[0]),
        rows=lambda wildcards: json.dumps({row: {**spec, "label": row_label(row)} for row, spec in config["rows"].items()}),
        protocols=lambda wildcards: json.dumps({name: evaluation_protocol(name) for name in evaluated()}),
    log:
        f"logs/{PRESET}/aggregate.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/aggregate.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=5,
        gpu=0,
    shell:
        "python -m reporting aggregate --preset {params.preset:q} --rows {params.rows:q} --results {params.results:q}"
        " --protocols {params.protocols:q} --server-results {input.server_results:q} --out {output:q} > {log:q} 2>&1"


rule plot_speed_accuracy:
    input:
        summary=f"{RESULTS}/summary.csv",
        published="reporting/published.yaml",
    output:
        report(f"{REPORTS}/figures/speed_accuracy.png", caption="../report/speed_accuracy.rst", category="Figures"),
    params:
        evaluations=lambda wildcards: json.dumps(config["evaluations"]),
    log:
        f"logs/{PRESET}/plots/speed_accuracy.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/plots/speed_accuracy.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=5,
        gpu=0,
    shell:
        "python -m reporting plot-speed --summary {input.summary:q} --evaluations {params.evaluations:q}"
        " --published {input.published:q} --out {output:q} > {log:q} 2>&1"


rule plot_training:
    input:
        histories=[f"{RESULTS}/training/{training}/head.json" for training in used_trainings()],
    output:
        report(f"{REPORTS}/figures/training-curves.png", caption="../report/training_curves.rst", category="Figures"),
    log:
        f"logs/{PRESET}/plots/training-curves.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/plots/training-curves.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=5,
        gpu=0,
    shell:
        "python -m reporting plot-training --histories {input.histories:q} --out {output:q} > {log:q} 2>&1"


rule plot_evaluation:
    input:
        summary=f"{RESULTS}/summary.csv",
        scores=lambda wildcards: evaluation_files(wildcards.evaluation, "scores"),
        masks=lambda wildcards: evaluation_files(wildcards.evaluation, "masks"),
        maps=lambda wildcards: evaluation_files(wildcards.evaluation, "score-maps"),
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
    output:
        per_sequence=report(f"{REPORTS}/figures/per_sequence-{{evaluation}}.png",
                            caption="../report/per_sequence.rst", category="Figures", subcategory="{evaluation}"),
        decay=report(f"{REPORTS}/figures/decay-{{evaluation}}.png",
                     caption="../report/decay.rst", category="Figures", subcategory="{evaluation}"),
        attributes=report(f"{REPORTS}/figures/attributes-{{evaluation}}.png",
                          caption="../report/attributes.rst", category="Figures", subcategory="{evaluation}"),
        qualitative=report(directory(f"{REPORTS}/figures/qualitative-{{evaluation}}"), patterns=["{row}.png"],
                           caption="../report/qualitative.rst", category="Qualitative", subcategory="{evaluation}"),
    params:
        results=lambda wildcards, input: os.path.dirname(input.summary),
        out_dir=lambda wildcards, output: os.path.dirname(output.per_sequence),
        sequence=lambda wildcards: (
            ["--qualitative-sequence", config["evaluations"][wildcards.evaluation]["qualitative_sequence"]]
            if config["evaluations"][wildcards.evaluation].get("qualitative_sequence")
            else []
        ),
    log:
        f"logs/{PRESET}/plots/{{evaluation}}.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/plots/{{evaluation}}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
        gpu=0,
    shell:
        "python -m reporting plot-evaluation --summary {input.summary:q} --results {params.results:q}"
        " --evaluation {wildcards.evaluation:q} --root {input.dataset:q} {params.sequence:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule provenance:
    input:
        heads=sorted({trained_head(training) for training in used_trainings()}
        | {row_weights(row) for row in config["rows"] if row_weights(row)}),
        datasets=[dataset_root(name) for name in used_datasets()],
    output:
        report(f"{REPORTS}/provenance.json", caption="../report/provenance.rst", category="Provenance"),
    params:
        preset=PRESET,
        config=lambda wildcards: json.dumps(config),
        datasets=lambda wildcards: json.dumps({name: dataset_root(name) for name in used_datasets()}),
    log:
        f"logs/{PRESET}/provenance.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/provenance.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=30,
        gpu=0,
    shell:
        "python -m reporting provenance --preset {params.preset:q} --config {params.config:q} --heads {input.heads:q}"
        " --datasets {params.datasets:q} --out {output:q} > {log:q} 2>&1"


rule render_tables:
    input:
        summary=f"{RESULTS}/summary.csv",
        published="reporting/published.yaml",
        speed=f"{REPORTS}/figures/speed_accuracy.png",
        figures=expand(f"{REPORTS}/figures/per_sequence-{{evaluation}}.png", evaluation=evaluated("davis")),
        training=[f"{REPORTS}/figures/training-curves.png"] if used_trainings() else [],
        provenance=f"{REPORTS}/provenance.json",
    output:
        latest=report("reports/tables.md", caption="../report/tables.rst", category="Tables"),
        preset=f"{REPORTS}/tables.md",
    params:
        preset=PRESET,
        description=config["description"],
        datasets=lambda wildcards: json.dumps(described_datasets()),
        evaluations=lambda wildcards: json.dumps(config["evaluations"]),
        figures=lambda wildcards, input: os.path.dirname(input.speed),
    log:
        f"logs/{PRESET}/render_tables.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/render_tables.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=5,
        gpu=0,
    shell:
        "python -m reporting render --summary {input.summary:q} --preset {params.preset:q}"
        " --description {params.description:q} --datasets {params.datasets:q} --evaluations {params.evaluations:q}"
        " --published {input.published:q} --figures {params.figures:q} --provenance {input.provenance:q}"
        " --out {output.latest:q} {output.preset:q} > {log:q} 2>&1"
