# VOS reproduction workflow: data -> methods -> metrics -> reports.
#   snakemake --cores 8 --use-conda reports/tables.md                 (default preset: embedded, CPU)
#   snakemake --cores 8 --use-conda reports/tables.md --config preset=paper
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/reports.smk"


rule all:
    input:
        "reports/tables.md",
    default_target: True
