# Optional: score one row's masks with the official DAVIS toolkit (davis2017-evaluation, in its own pinned
# environment) and compare every figure with the suite's tables. Not part of the default target; ask for it:
#   snakemake --use-conda results/<preset>/<evaluation>/<row>/official-crosscheck.md
#   snakemake --use-conda crosscheck_official_all          (every row of every evaluation it applies to)
# See docs/official-toolkit.md.
# The evaluations the toolkit can score: DAVIS-protocol ones with its own object rule (first frame), of either
# task (an evaluation's `task`: semi-supervised by default, or unsupervised).
CROSSCHECK_EVALUATIONS = [
    name
    for name in evaluated("davis")
    if config["evaluations"][name].get("objects", "first-frame") == "first-frame"
]


localrules:
    crosscheck_official_all,


rule crosscheck_official:
    input:
        masks=row_path("masks"),
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
        per_object=scores_path("per-object"),
        protocol=scores_path("protocol"),
    output:
        official=directory(row_path("official")),
        report=row_path("official-crosscheck.md"),
    log:
        log_path("crosscheck", "{evaluation}", "{row}"),
    wildcard_constraints:
        evaluation=alternatives(evaluated("davis")),
    conda:
        "../../envs/davis2017-toolkit.yaml"
    threads: 1
    resources:
        **RESOURCES["crosscheck_official"],
    params:
        code=lambda wildcards: registry.files_digest("metrics"),
        script=Path(workflow.basedir) / "metrics" / "crosscheck.py",
        split=lambda wildcards: config["evaluations"][wildcards.evaluation]["split"],
        year=lambda wildcards: config["datasets"][evaluation_dataset(wildcards.evaluation)].get(
            "year", "2017"
        ),
        selection=lambda wildcards: sequence_selection(wildcards.evaluation),
        objects=lambda wildcards: config["evaluations"][wildcards.evaluation].get("objects", "first-frame"),
        task=lambda wildcards: evaluation_task(wildcards.evaluation),
        scores=lambda wildcards, input: Path(input.per_object).parent,
    shell:
        "python {params.script:q} official {input.dataset:q} {input.masks:q} --split {params.split:q}"
        " --year {params.year:q} {params.selection:q} --task {params.task:q} --objects {params.objects:q}"
        " --evaluation {wildcards.evaluation:q} --out {output.official:q} > {log:q} 2>&1"
        " && python {params.script:q} compare {output.official:q} {params.scores:q}"
        " --official-set {params.split:q} --suite-set {wildcards.evaluation:q} --task {params.task:q}"
        " --report {output.report:q} >> {log:q}"


rule crosscheck_official_all:
    input:
        [
            report
            for evaluation in CROSSCHECK_EVALUATIONS
            for report in evaluation_files(evaluation, "official-crosscheck.md")
        ],
