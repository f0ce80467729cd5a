# One rule trains any offline part (a preset's `trainings` entry), one runs any table row (method x variant
# settings) over any evaluation dataset. What a method needs comes from methods.registry (settings.smk).
from methods.core.code_digest import KEEP_CHECKPOINTS_VARIABLE

# what a training job runs: its method's training module, through torchrun on several GPUs
TRAIN_PARAMS = {
    "module": lambda wildcards: training_module(wildcards.training),
    "config": lambda wildcards: training_config(wildcards.training),
    # several GPUs: one process each through torchrun (torch.distributed); otherwise plain python
    "launcher": lambda wildcards: (
        ["torchrun", "--standalone", "--nproc_per_node", training_gpus(wildcards)]
        if training_gpus(wildcards) > 1
        else ["python"]
    ),
    "code": lambda wildcards: training_code(TRAININGS[wildcards.training]["method"]),
}
TRAIN_COMMAND = (
    "{params.launcher:q} -m {params.module:q} --config {params.config:q} --out {params.out:q}"
    " --discard-other-settings --quiet"
)
# keep_checkpoints_across_code_changes (config.yaml) reaches the trainer through the environment, not a
# parameter or the command (both rerun jobs when they change: Snakemake's params and code triggers), so turning
# it on or off reruns nothing. Cluster jobs parse this file again and get it too.
os.environ[KEEP_CHECKPOINTS_VARIABLE] = "1" if config["keep_checkpoints_across_code_changes"] else "0"


rule train_part:
    """A job of a training longer than the cluster's wall-time limit (resources.smk): trains up to an epoch and
    stops, its checkpoint in <head>.work/ for the next job of the chain to resume from."""
    input:
        datasets=lambda wildcards: training_inputs(wildcards.training),
        previous=lambda wildcards: training_parts(wildcards.training)[: int(wildcards.part) - 1][-1:],
        backbone=training_backbone_weights,  # fetched before any training (weights.smk)
    output:
        temp(training_path("part-{part}.done")),
    log:
        log_path("train", "{training}.part-{part}"),
    benchmark:
        benchmark_path("train", "{training}.part-{part}")
    wildcard_constraints:
        part=r"\d+",
    priority: training_priority
    conda:
        TORCH_ENV
    threads: THREADS["train"]
    resources:
        **RESOURCES["train"],
    params:
        **TRAIN_PARAMS,
        out=lambda wildcards: trained_head(wildcards.training),
        stop=lambda wildcards: part_end_epoch(wildcards.training, wildcards.part),
    shell:
        " ".join((TRAIN_COMMAND, "--stop-at-epoch {params.stop} > {log:q} 2>&1 && touch {output:q}"))


rule train:
    input:
        datasets=lambda wildcards: training_inputs(wildcards.training),
        # a training in several jobs: this one is the last, resuming from the part before
        previous=lambda wildcards: training_parts(wildcards.training)[-1:],
        backbone=training_backbone_weights,
    output:
        # write-protected where trainings take hours or days (protect_trained_weights, config.yaml / presets)
        head=protected(trained_head()) if config["protect_trained_weights"] else trained_head(),
        history=training_history(),
    log:
        log_path("train", "{training}"),
    benchmark:
        benchmark_path("train", "{training}")
    priority: training_priority
    conda:
        TORCH_ENV
    threads: THREADS["train"]
    resources:
        **RESOURCES["train"],
    params:
        **TRAIN_PARAMS,
        out=lambda wildcards, output: output.head,
    shell:
        " ".join((TRAIN_COMMAND, "> {log:q} 2>&1"))


# seconds each (the file's pickled key listing and its sha256), and before any GPU job
localrules:
    check_released,


rule check_released:
    """A released-weights file checked again as its row's jobs will read it (validation.smk checked it when the
    DAG was built; a file replaced since is caught here) and recorded for the provenance and the tables."""
    input:
        lambda wildcards: released_file(wildcards.released),
    output:
        released_record(),
    log:
        log_path("check_released", "{released}"),
    benchmark:
        benchmark_path("check_released", "{released}")
    wildcard_constraints:
        released=alternatives(
            sorted({spec["released"] for spec in config["rows"].values() if "released" in spec})
        ),
    conda:
        EVALUATION_ENV
    resources:
        **RESOURCES["check_released"],
    params:
        expected=lambda wildcards: released_check_arguments(wildcards.released),
    shell:
        "python -m methods.core.released_check {input:q} {params.expected:q} --out {output:q} > {log:q} 2>&1"


rule infer:
    input:
        dataset=infer_dataset,
        head=row_head,
        # a released file's record: its check passed before the row's (GPU) inference starts
        released=lambda wildcards: (
            [released_record(config["rows"][wildcards.row]["released"])]
            if config["rows"][wildcards.row].get("released")
            else []
        ),
        backbone=row_backbone_weights,
    output:
        masks=directory(row_path("masks")),
        timing=row_path("timing.json"),
        maps=directory(row_path("score-maps")),
    log:
        log_path("infer", "{evaluation}", "{row}"),
    benchmark:
        benchmark_path("infer", "{evaluation}", "{row}")
    conda:
        TORCH_ENV
    threads: THREADS["infer"]
    resources:
        **RESOURCES["infer"],
    params:
        method=lambda wildcards: config["rows"][wildcards.row]["method"],
        settings=lambda wildcards: json.dumps(row_settings(wildcards.row)),
        dataset=lambda wildcards: json.dumps(dataset_spec(wildcards.evaluation)),
        label=lambda wildcards: f"preset={PRESET} row={wildcards.row} evaluation={wildcards.evaluation}",
        maps=score_map_arguments,
        fps=lambda wildcards: [
            "--fps-protocol",
            config["fps"]["protocol"],
            "--warm-up-frames",
            str(config["fps"]["warm_up_frames"]),
        ],
        code=lambda wildcards: inference_code(config["rows"][wildcards.row]["method"]),
    shell:
        "python -m methods infer --method {params.method:q} --settings {params.settings:q}"
        " --dataset {params.dataset:q} --out {output.masks:q} --timing {output.timing:q}"
        " --label {params.label:q} {params.maps:q} {params.fps:q} --quiet > {log:q} 2>&1"
        " && mkdir -p {output.maps:q}"
