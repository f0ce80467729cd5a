# One rule runs any table row (method x variant settings) over any evaluation dataset.


rule infer:
    input:
        dataset=lambda wildcards: dataset_root(evaluation_dataset(wildcards.evaluation)),
    output:
        masks=directory(f"{RESULTS}/{{evaluation}}/{{row}}/masks"),
        timing=f"{RESULTS}/{{evaluation}}/{{row}}/timing.json",
    params:
        method=lambda wildcards: config["rows"][wildcards.row]["method"],
        settings=lambda wildcards: json.dumps(config["rows"][wildcards.row].get("settings", {})),
        dataset=lambda wildcards: json.dumps(dataset_spec(wildcards.evaluation)),
        label=lambda wildcards: f"preset={PRESET} row={wildcards.row} evaluation={wildcards.evaluation}",
    log:
        f"logs/{PRESET}/infer/{{evaluation}}/{{row}}.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/infer/{{evaluation}}/{{row}}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=0,
    shell:
        "python -m methods infer --method {params.method} --settings {params.settings:q}"
        " --dataset {params.dataset:q} --out {output.masks} --timing {output.timing}"
        " --label {params.label:q} --quiet > {log} 2>&1"
