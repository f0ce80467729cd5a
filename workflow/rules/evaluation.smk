# Scoring with the official DAVIS protocol (metrics/), and the per-preset summary.


rule evaluate:
    input:
        masks=f"{RESULTS}/{{evaluation}}/{{row}}/masks",
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
    output:
        global_csv=f"{RESULTS}/{{evaluation}}/{{row}}/scores/global_results-{{evaluation}}.csv",
        per_sequence=f"{RESULTS}/{{evaluation}}/{{row}}/scores/per-sequence_results-{{evaluation}}.csv",
        per_object=f"{RESULTS}/{{evaluation}}/{{row}}/scores/per-object_results-{{evaluation}}.csv",
        per_frame=f"{RESULTS}/{{evaluation}}/{{row}}/scores/per-frame_results-{{evaluation}}.csv",
        protocol=f"{RESULTS}/{{evaluation}}/{{row}}/scores/protocol-{{evaluation}}.json",
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.global_csv),
        selection=lambda wildcards: sequence_selection(wildcards.evaluation),
        objects=lambda wildcards: config["evaluations"][wildcards.evaluation].get("objects", "first-frame"),
        cache=config["ground_truth_cache"],
    log:
        f"logs/{PRESET}/evaluate/{{evaluation}}/{{row}}.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/evaluate/{{evaluation}}/{{row}}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=0,
    shell:
        "python -m metrics {input.dataset}/Annotations/480p {input.masks} --out {params.outdir}"
        " --set {wildcards.evaluation} {params.selection} --objects {params.objects}"
        " --workers {threads} --cache-dir {params.cache} --quiet > {log} 2>&1"
