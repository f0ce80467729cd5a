# One rule trains any offline part (a preset's `trainings` entry), one runs any table row (method x variant
# settings) over any evaluation dataset.


rule train:
    input:
        datasets=lambda wildcards: training_inputs(wildcards.training),
    output:
        head=f"{RESULTS}/training/{{training}}/head.pt",
        history=f"{RESULTS}/training/{{training}}/head.json",
    params:
        module=lambda wildcards: f"methods.{TRAININGS[wildcards.training]['method']}.training",
        config=lambda wildcards: training_config(wildcards.training),
        # several GPUs: one process each through torchrun (torch.distributed); otherwise plain python
        launcher=lambda wildcards: (
            ["torchrun", "--standalone", "--nproc_per_node", TRAININGS[wildcards.training]["gpus"]]
            if TRAININGS[wildcards.training].get("gpus", 0) > 1
            else ["python"]
        ),
    log:
        f"logs/{PRESET}/train/{{training}}.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/train/{{training}}.tsv"
    conda:
        CONDA_ENV
    threads: lambda wildcards: 8 * max(1, TRAININGS[wildcards.training].get("gpus", 0)) if TRAININGS[wildcards.training].get("gpus", 0) else 2
    resources:
        # GPU trainings: data loading for each GPU's process; runtime in minutes (3 days)
        mem_mb=lambda wildcards: 32000 * max(1, TRAININGS[wildcards.training].get("gpus", 0)) if TRAININGS[wildcards.training].get("gpus", 0) else 8000,
        runtime=lambda wildcards: 4320 if TRAININGS[wildcards.training].get("gpus", 0) else 120,
        gpu=lambda wildcards: TRAININGS[wildcards.training].get("gpus", 0),
    shell:
        "{params.launcher:q} -m {params.module:q} --config {params.config:q} --out {output.head:q}"
        " --discard-other-settings --quiet"
        " > {log:q} 2>&1"



rule infer:
    input:
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
        head=row_head,
    output:
        masks=directory(f"{RESULTS}/{{evaluation}}/{{row}}/masks"),
        timing=f"{RESULTS}/{{evaluation}}/{{row}}/timing.json",
        maps=directory(f"{RESULTS}/{{evaluation}}/{{row}}/score-maps"),
    params:
        method=lambda wildcards: config["rows"][wildcards.row]["method"],
        settings=lambda wildcards: json.dumps(row_settings(wildcards.row)),
        dataset=lambda wildcards: json.dumps(dataset_spec(wildcards.evaluation)),
        label=lambda wildcards: f"preset={PRESET} row={wildcards.row} evaluation={wildcards.evaluation}",
        maps=score_map_arguments,
    log:
        f"logs/{PRESET}/infer/{{evaluation}}/{{row}}.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/infer/{{evaluation}}/{{row}}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=lambda wildcards: 60 if str(row_settings(wildcards.row).get("device", "cpu")).startswith("cpu") else 720,
        gpu=lambda wildcards: int(str(row_settings(wildcards.row).get("device", "")).startswith("cuda")),
    shell:
        "python -m methods infer --method {params.method:q} --settings {params.settings:q}"
        " --dataset {params.dataset:q} --out {output.masks:q} --timing {output.timing:q}"
        " --label {params.label:q} {params.maps:q} --quiet > {log:q} 2>&1 && mkdir -p {output.maps:q}"
