# What each job asks of the machine or the cluster, in one place: threads, memory (mem_mb), time (runtime,
# minutes) and GPUs (gpu), which profiles/slurm maps to sbatch options, and the software environment.
EVALUATION_ENV = "../../envs/evaluation.yaml"  # no torch: data, scoring, summary, plots, tables
TORCH_ENV = "../../envs/torch.yaml"  # training, inference, and provenance (it records torch and the GPUs)


def training_gpus(wildcards):
    return TRAININGS[wildcards.training].get("gpus", 0)


def training_threads(wildcards):
    """GPU trainings: data loading for each GPU's process; CPU trainings: 2."""
    return 8 * training_gpus(wildcards) if training_gpus(wildcards) else 2


def inference_device(wildcards):
    return str(row_settings(wildcards.row).get("device", "cpu"))


THREADS = {"train": training_threads, "infer": 2, "evaluate": 2, "evaluate_youtube_vos": 4}
SMALL_JOB = dict(mem_mb=1000, runtime=5, gpu=0)  # a summary, a plot, a table
RESOURCES = {
    "generate_embedded": dict(mem_mb=2000, runtime=10, gpu=0),
    "download_davis": dict(mem_mb=2000, runtime=240, gpu=0),
    "fetch_weights": dict(mem_mb=2000, runtime=60, gpu=0),
    "train": dict(
        mem_mb=lambda wildcards: 32000 * training_gpus(wildcards) if training_gpus(wildcards) else 8000,
        runtime=lambda wildcards: 4320 if training_gpus(wildcards) else 120,  # 3 days on GPUs
        gpu=training_gpus,
    ),
    "infer": dict(
        mem_mb=4000,
        runtime=lambda wildcards: 60 if inference_device(wildcards).startswith("cpu") else 720,
        gpu=lambda wildcards: int(inference_device(wildcards).startswith("cuda")),
    ),
    "evaluate": dict(mem_mb=2000, runtime=30, gpu=0),
    "evaluate_youtube_vos": dict(mem_mb=4000, runtime=60, gpu=0),
    "submission_zip": dict(mem_mb=2000, runtime=30, gpu=0),
    "aggregate": SMALL_JOB,
    "plot_speed_accuracy": SMALL_JOB,
    "plot_training": SMALL_JOB,
    "plot_evaluation": dict(mem_mb=2000, runtime=10, gpu=0),
    "provenance": dict(mem_mb=1000, runtime=30, gpu=0),
    "check_released": SMALL_JOB,
    "render_tables": SMALL_JOB,
    "crosscheck_official": dict(mem_mb=8000, runtime=60, gpu=0),
}


def _partition(gpus):
    """The SLURM partition of a job asking `gpus` GPUs (config.yaml slurm_partitions; used by profiles/slurm)."""
    return config["slurm_partitions"]["gpu" if gpus else "cpu"]


def _partition_of(gpu):
    """slurm_partition from a rule's gpu resource (a number, or a function of the wildcards)."""
    if callable(gpu):
        return lambda wildcards: _partition(gpu(wildcards))
    return _partition(gpu)


# Every job names its partition, so that a dry run shows where it would go: a job asking no GPU (the first-frame
# copy's inference too) goes to the CPU partition.
RESOURCES = {
    job: {**resources, "slurm_partition": _partition_of(resources["gpu"])}
    for job, resources in RESOURCES.items()
}
