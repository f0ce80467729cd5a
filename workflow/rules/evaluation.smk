# Scoring: the official DAVIS protocol (metrics/), local YouTube-VOS scoring of the papers' held-out train
# splits, and for YouTube-VOS valid (hidden ground truth) the server's submission zip.


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
    wildcard_constraints:
        evaluation=_alternatives(evaluated("davis")),
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.global_csv),
        annotations=lambda wildcards, input: f"{input.dataset}/Annotations/480p",
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
        "python -m metrics {params.annotations:q} {input.masks:q} --out {params.outdir:q}"
        " --set {wildcards.evaluation:q} {params.selection:q} --objects {params.objects:q}"
        " --workers {threads} --cache-dir {params.cache:q} --quiet > {log:q} 2>&1"


rule evaluate_youtube_vos:
    input:
        masks=f"{RESULTS}/{{evaluation}}/{{row}}/masks",
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
    output:
        global_csv=f"{RESULTS}/{{evaluation}}/{{row}}/scores/global_results-{{evaluation}}.csv",
        per_object=f"{RESULTS}/{{evaluation}}/{{row}}/scores/per-object_results-{{evaluation}}.csv",
    wildcard_constraints:
        evaluation=_alternatives(evaluated("youtube_vos")),
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.global_csv),
        split=lambda wildcards: config["evaluations"][wildcards.evaluation]["split"],
        videos=lambda wildcards: (
            ["--videos-list", config["evaluations"][wildcards.evaluation]["videos_list"]]
            if config["evaluations"][wildcards.evaluation].get("videos_list")
            else []
        ),
    log:
        f"logs/{PRESET}/evaluate/{{evaluation}}/{{row}}.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/evaluate/{{evaluation}}/{{row}}.tsv"
    conda:
        CONDA_ENV
    threads: 4
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=0,
    shell:
        "python -m metrics.youtube_vos {input.dataset:q} {params.split:q} {input.masks:q} --out {params.outdir:q}"
        " --set {wildcards.evaluation:q} {params.videos:q} --workers {threads} --quiet > {log:q} 2>&1"


rule submission_zip:
    """YouTube-VOS valid has no public ground truth: zip the scored frames for the official server; its
    returned figures go into config.yaml's `server_results` file and fill the tables on the next run."""
    input:
        masks=f"{RESULTS}/{{evaluation}}/{{row}}/masks",
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
    output:
        f"{RESULTS}/{{evaluation}}/{{row}}/submission.zip",
    wildcard_constraints:
        evaluation=_alternatives(evaluated("server")),
    params:
        split=lambda wildcards: config["evaluations"][wildcards.evaluation]["split"],
    log:
        f"logs/{PRESET}/submission/{{evaluation}}/{{row}}.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/submission/{{evaluation}}/{{row}}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=0,
    shell:
        "python -m vos_datasets.youtube_vos submit {input.dataset:q} {params.split:q} {input.masks:q} {output:q}"
        " > {log:q} 2>&1"
