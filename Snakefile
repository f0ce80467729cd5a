# VOS reproduction workflow: data -> methods -> metrics -> reports.
#   snakemake --cores 8 --use-conda reports/tables.md                 (default preset: embedded, CPU)
#   snakemake --cores 8 --use-conda reports/tables.md --config preset=paper
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


# config and its checks, where outputs lie, what jobs are given, what they ask of the machine
include: "workflow/rules/config.smk"
include: "workflow/rules/layout.smk"
include: "workflow/rules/settings.smk"
include: "workflow/rules/validation.smk"
include: "workflow/rules/resources.smk"


# the names a path's wildcards take: the preset's (after validation.smk left out rows it cannot run)
wildcard_constraints:
    evaluation=alternatives(config["evaluations"]),
    row=alternatives(config["rows"]),
    training=alternatives(TRAININGS),
    session=alternatives(INTERACTIVE["sessions"]),
    interactive_dataset=alternatives(INTERACTIVE["datasets"]),


# the reviewers' image (envs/Dockerfile, docs/environments.md): used only under --software-deployment-method apptainer
container: config.get("container", "vos-repro.sif")


# the stages: rules only
include: "workflow/rules/data.smk"
include: "workflow/rules/weights.smk"  # before the rules that read the weights
include: "workflow/rules/inference.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/reports.smk"
include: "workflow/rules/crosscheck.smk"  # optional: the official DAVIS toolkit beside the suite's scores
include: "workflow/rules/interactive.smk"  # the DAVIS interactive track (a preset's `interactive:` section)


rule all:
    default_target: True
    input:
        LATEST_TABLES,
