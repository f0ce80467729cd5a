# Datasets: the embedded synthetic set is generated; DAVIS archives are downloaded (checksums, resume,
# retries, atomic extraction); YouTube-VOS is a configured local folder (it needs registration).


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
        "python -m vos_datasets.synthetic {output} --seed {params.spec[seed]} --n-train {params.spec[n_train]}"
        " --n-val {params.spec[n_val]} --n-frames {params.spec[n_frames]} --height {params.spec[height]}"
        " --width {params.spec[width]} > {log} 2>&1"


rule download_davis:
    output:
        directory("resources/datasets/{archive}"),
    wildcard_constraints:
        archive="davis2016|davis2017",
    params:
        mirror=lambda wildcards: f"--mirror {config['downloads']['mirror']}" if config["downloads"].get("mirror") else "",
        archive=lambda wildcards: (
            f"--archive {config['downloads']['archives'][wildcards.archive]}"
            if wildcards.archive in config["downloads"].get("archives", {})
            else ""
        ),
        sha256=lambda wildcards: (
            f"--sha256 {config['downloads']['sha256'][wildcards.archive]}"
            if wildcards.archive in config["downloads"].get("sha256", {})
            else ""
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
        "python -m vos_datasets.download {wildcards.archive} resources/datasets {params.mirror} {params.archive}"
        " {params.sha256} --retries {params.retries} > {log} 2>&1"
