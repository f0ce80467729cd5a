# The preset's summary table and reports/tables.md.


rule aggregate:
    input:
        scores=score_files(),
        timings=timing_files(),
    output:
        f"{RESULTS}/summary.csv",
    params:
        preset=PRESET,
        results=lambda wildcards, output: os.path.dirname(output[0]),
        rows=json.dumps({row: {**spec, "label": row_label(row)} for row, spec in config["rows"].items()}),
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
        "python -m reports aggregate --preset {params.preset} --rows {params.rows:q} --results {params.results}"
        " --out {output} > {log} 2>&1"


rule render_tables:
    input:
        summary=f"{RESULTS}/summary.csv",
    output:
        report(
            "reports/tables.md",
            caption="../report/tables.rst",
            category="Tables",
        ),
    params:
        preset=PRESET,
        description=config["description"],
        datasets=lambda wildcards: json.dumps(described_datasets()),
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
        "python -m reports render --summary {input.summary} --preset {params.preset}"
        " --description {params.description:q} --datasets {params.datasets:q} --out {output} > {log} 2>&1"
