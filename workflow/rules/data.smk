# Datasets: the embedded synthetic set is generated; DAVIS archives are downloaded (checksums, resume,
# retries, atomic extraction); YouTube-VOS is a configured local folder (it needs registration).
# Every value that reaches the shell is quoted ({...:q}); optional options are lists (an empty one adds nothing).


# on the machine running Snakemake: cluster compute nodes often have no internet
localrules:
    download_davis,
    generate_embedded,


rule generate_embedded:
    output:
        directory(generated_dataset()),
    log:
        log_path("data", "generate_embedded-{dataset}"),
    benchmark:
        benchmark_path("generate_embedded-{dataset}")
    conda:
        EVALUATION_ENV
    resources:
        **RESOURCES["generate_embedded"],
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
    shell:
        "python -m vos_datasets.synthetic {output:q} --seed {params.spec[seed]:q} --n-train {params.spec[n_train]:q}"
        " --n-val {params.spec[n_val]:q} --n-frames {params.spec[n_frames]:q} --height {params.spec[height]:q}"
        " --width {params.spec[width]:q} > {log:q} 2>&1"


rule download_davis:
    output:
        directory(downloaded_dataset()),
    log:
        log_path("data", "download-{archive}", preset=False),
    benchmark:
        benchmark_path("download-{archive}", preset=False)
    wildcard_constraints:
        archive="davis2016|davis2017|davis2017-unsupervised",
    retries: 2
    conda:
        EVALUATION_ENV
    resources:
        **RESOURCES["download_davis"],
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
    shell:
        # its folder is downloaded_dataset()'s; spelled out here, as a new parameter or command would
        # download the archives again in every existing checkout (Snakemake's params and code triggers)
        "python -m vos_datasets.download {wildcards.archive:q} resources/datasets {params.mirror:q} {params.archive:q}"
        " {params.sha256:q} --retries {params.retries:q} > {log:q} 2>&1"
