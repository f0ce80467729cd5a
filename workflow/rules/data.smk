# Datasets: the embedded synthetic set is generated; DAVIS archives are downloaded (checksums, resume,
# retries, atomic extraction); YouTube-VOS is a configured local folder (it needs registration).
# Every value that reaches the shell is quoted ({...:q}); optional options are lists (an empty one adds nothing).


rule generate_embedded:
    output:
        directory(f"resources/generated/{PRESET}/{{dataset}}"),
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
    log:
        f"logs/{PRESET}/data/generate_embedded-{{dataset}}.log",
    benchmark:
        f"logs/{PRESET}/benchmarks/generate_embedded-{{dataset}}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
        gpu=0,
    shell:
        "python -m vos_datasets.synthetic {output:q} --seed {params.spec[seed]:q} --n-train {params.spec[n_train]:q}"
        " --n-val {params.spec[n_val]:q} --n-frames {params.spec[n_frames]:q} --height {params.spec[height]:q}"
        " --width {params.spec[width]:q} > {log:q} 2>&1"


rule download_davis:
    output:
        directory("resources/datasets/{archive}"),
    wildcard_constraints:
        archive="davis2016|davis2017",
    params:
        mirror=lambda wildcards: (
            ["--mirror", config["downloads"]["mirror"]] if config["downloads"].get("mirror") else []
        ),
        archive=lambda wildcards: (
            ["--archive", config["downloads"]["archives"][wildcards.archive]]
            if wildcards.archive in config["downloads"].get("archives", {})
            else []
        ),
        sha256=lambda wildcards: (
            ["--sha256", config["downloads"]["sha256"][wildcards.archive]]
            if wildcards.archive in config["downloads"].get("sha256", {})
            else []
        ),
        retries=config["downloads"]["retries"],
    log:
        "logs/data/download-{archive}.log",
    benchmark:
        "logs/benchmarks/download-{archive}.tsv"
    conda:
        CONDA_ENV
    retries: 2
    resources:
        mem_mb=2000,
        runtime=240,
        gpu=0,
    shell:
        "python -m vos_datasets.download {wildcards.archive:q} resources/datasets {params.mirror:q} {params.archive:q}"
        " {params.sha256:q} --retries {params.retries:q} > {log:q} 2>&1"
