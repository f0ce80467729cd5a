# Scoring: the official DAVIS protocol (metrics/), local YouTube-VOS scoring of the papers' held-out train
# splits, and for YouTube-VOS valid (hidden ground truth) the server's submission zip.


rule evaluate:
    input:
        masks=row_path("masks"),
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
    output:
        global_csv=scores_path("global"),
        per_sequence=scores_path("per-sequence"),
        per_object=scores_path("per-object"),
        per_frame=scores_path("per-frame"),
        protocol=scores_path("protocol"),
    log:
        log_path("evaluate", "{evaluation}", "{row}"),
    benchmark:
        benchmark_path("evaluate", "{evaluation}", "{row}")
    wildcard_constraints:
        evaluation=alternatives(evaluated("davis")),
    conda:
        EVALUATION_ENV
    threads: THREADS["evaluate"]
    resources:
        **RESOURCES["evaluate"],
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.global_csv),
        annotations=lambda wildcards, input: annotations_folder(wildcards.evaluation, input.dataset),
        task=lambda wildcards: evaluation_task(wildcards.evaluation),
        selection=lambda wildcards: sequence_selection(wildcards.evaluation),
        objects=lambda wildcards: config["evaluations"][wildcards.evaluation].get("objects", "first-frame"),
        cache=config["ground_truth_cache"],
        code=lambda wildcards: scoring_code(),
    shell:
        "python -m metrics {params.annotations:q} {input.masks:q} --out {params.outdir:q}"
        " --set {wildcards.evaluation:q} {params.selection:q} --task {params.task:q} --objects {params.objects:q}"
        " --workers {threads} --cache-dir {params.cache:q} --quiet > {log:q} 2>&1"


rule evaluate_youtube_vos:
    input:
        masks=row_path("masks"),
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
    output:
        global_csv=scores_path("global"),
        per_object=scores_path("per-object"),
    log:
        log_path("evaluate", "{evaluation}", "{row}"),
    benchmark:
        benchmark_path("evaluate", "{evaluation}", "{row}")
    wildcard_constraints:
        evaluation=alternatives(evaluated("youtube_vos")),
    conda:
        EVALUATION_ENV
    threads: THREADS["evaluate_youtube_vos"]
    resources:
        **RESOURCES["evaluate_youtube_vos"],
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.global_csv),
        split=lambda wildcards: config["evaluations"][wildcards.evaluation]["split"],
        videos=lambda wildcards: (
            ["--videos-list", config["evaluations"][wildcards.evaluation]["videos_list"]]
            if config["evaluations"][wildcards.evaluation].get("videos_list")
            else []
        ),
        # which annotated frames score an object (metrics.youtube_vos FRAME_RULES): the authors' by default
        frames=lambda wildcards: config["evaluations"][wildcards.evaluation].get("frames", "authors"),
        code=lambda wildcards: scoring_code(),
    shell:
        "python -m metrics.youtube_vos {input.dataset:q} {params.split:q} {input.masks:q} --out {params.outdir:q}"
        " --set {wildcards.evaluation:q} {params.videos:q} --frames {params.frames:q} --workers {threads}"
        " --quiet > {log:q} 2>&1"


rule submission_zip:
    """YouTube-VOS valid has no public ground truth: zip the scored frames for the official server; its
    returned figures go into config.yaml's `server_results` file and fill the tables on the next run."""
    input:
        masks=row_path("masks"),
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
    output:
        row_path("submission.zip"),
    log:
        log_path("submission", "{evaluation}", "{row}"),
    benchmark:
        benchmark_path("submission", "{evaluation}", "{row}")
    wildcard_constraints:
        evaluation=alternatives(evaluated("server")),
    conda:
        EVALUATION_ENV
    resources:
        **RESOURCES["submission_zip"],
    params:
        split=lambda wildcards: config["evaluations"][wildcards.evaluation]["split"],
        code=lambda wildcards: scoring_code(),
    shell:
        "python -m vos_datasets.youtube_vos submit {input.dataset:q} {params.split:q} {input.masks:q} {output:q}"
        " > {log:q} 2>&1"
