# What each job asks of the machine or the cluster, in one place: threads, memory (mem_mb), time (runtime,
# minutes) and GPUs (gpu), which profiles/slurm maps to sbatch options, and the software environment.
EVALUATION_ENV = "../../envs/evaluation.yaml"  # no torch: data, scoring, summary, plots, tables
TORCH_ENV = "../../envs/torch.yaml"  # training, inference, and provenance (it records torch and the GPUs)


def training_gpus(wildcards):
    gpus = TRAININGS[wildcards.training].get("gpus", 0)
    _refuse_more_gpus_than_allowed(wildcards.training, gpus)
    return gpus


def _refuse_more_gpus_than_allowed(training, gpus):
    """A run limited to fewer GPUs (profiles/local: resources gpu=1, or --resources gpu=N) stops when the DAG is
    built, not hours later when its scheduler meets the job. A training whose weights are there already does
    not run and is not refused (trained on a cluster, the rows inferred locally)."""
    # Snakemake 9 gives a Resource, its value None where the run sets none
    allowed = workflow.global_resources.get("gpu").value
    if allowed is None or gpus <= allowed or Path(trained_head(training)).exists():
        return
    raise WorkflowError(
        f"training {training} asks {gpus} GPUs ({entry_file('trainings', training)} trainings.{training}.gpus) "
        f"but this run allows gpu={allowed} (the profile's `resources: gpu`, or --resources gpu=N): on a machine "
        f"with {gpus} GPUs pass --resources gpu={gpus}; otherwise run the trainings with profiles/slurm "
        f"(docs/reproducing.md, 'Resources on a cluster')"
    )


def training_threads(wildcards):
    """GPU trainings: data loading for each GPU's process; CPU trainings: 2."""
    return 8 * training_gpus(wildcards) if training_gpus(wildcards) else 2


def inference_device(wildcards):
    return str(row_settings(wildcards.row).get("device", "cpu"))


# A training longer than the cluster's wall-time limit (config.yaml job_time_limit_hours) runs as a chain of
# jobs: rule train_part trains up to an epoch and stops with the checkpoint, the next job resumes from it
# (methods.core.trainer: --stop-at-epoch); rule train runs the last part and writes the weights. Each job asks
# for its share of the training's hours (the preset's `hours:` with its source) times this margin: those hours
# are the papers' (their GPUs, the released code), not measured for this code. A job that still runs past its
# time is killed, and its retry (profiles/slurm retries) resumes from the checkpoint of its last epoch.
TRAINING_TIME_MARGIN = 1.5
CPU_TRAINING_HOURS = 2  # the CPU presets' trainings take minutes


def training_hours(training):
    """The expected wall-clock hours of a training on its GPUs, the margin included."""
    return TRAININGS[training].get("hours", CPU_TRAINING_HOURS) * (
        TRAINING_TIME_MARGIN if TRAININGS[training].get("gpus", 0) else 1
    )


def training_part_count(training):
    """How many jobs a training runs as: its hours over the job limit (at most one an epoch)."""
    return min(
        math.ceil(training_hours(training) / config["job_time_limit_hours"]), training_epochs(training)
    )


def training_epochs(training):
    entry = TRAININGS[training]
    settings = json.loads(json.dumps(training_settings(training, resolve=False)))
    return registry.training_settings(entry["method"], settings).epochs


def part_end_epoch(training, part):
    """The epochs done after part `part` (1, 2, ...) of a training's chain: the epochs shared evenly."""
    return round(training_epochs(training) * int(part) / training_part_count(training))


def training_parts(training):
    """The parts before the last of a training's chain (their end marks): none for a training that fits one job."""
    return [training_path(f"part-{part}.done", training) for part in range(1, training_part_count(training))]


def training_minutes(wildcards):
    """Each job of a training's chain asks for the same share of its hours."""
    share = training_hours(wildcards.training) / training_part_count(wildcards.training)
    return math.ceil(60 * min(share, config["job_time_limit_hours"]))


def training_memory(wildcards):
    return 32000 * training_gpus(wildcards) if training_gpus(wildcards) else 8000


# Inference on a GPU asks for the time the papers' speed gives its evaluation, with a margin: each
# row's method at the slower FPS its paper gives (DAVIS 2016 val, one GPU: reporting/published.yaml; FRTM
# Tables 2-3 Ours 14.6 FPS, Ours (fast) 25.3; LWL section 4, 14 FPS on single-object sequences), times the frames
# and objects the job processes (both methods track each object: time grows with the objects), times the margin
# (this code's speed on the cluster's GPU is not measured; reading frames, writing masks and score maps), plus
# a start-up allowance (imports, CUDA, the weights). An evaluation no figure is known for asks the job limit.
PAPER_FPS = {"frtm": 14.6, "lwl": 14.0}
INFERENCE_TIME_MARGIN = 3
INFERENCE_START_MINUTES = 10
# frames x objects per benchmark. DAVIS: counted (2016 val 1376 frames, one object; 2017 val 1999 frames, 61
# objects, their frames x objects in ../shared's davis2017-val-osvos). YouTube-VOS, every frame (the all-frames
# folders): not counted here; bounded by clips of at most 6 s at 30 FPS (180 frames) and 1.76 objects per video
# (YouTube-VOS paper, Xu et al. 2018: 7,822 objects in 4,453 videos), for 474 (valid) or 300 (held-out) videos.
BENCHMARK_FRAME_OBJECTS = {
    "davis2016-val": 1376,
    "davis2017-val": 3984,
    "ytvos2018-valid": round(474 * 180 * 1.76),
    "ytvos2018-jjvalid": round(300 * 180 * 1.76),
    "ytvos2019-jjvalid": round(300 * 180 * 1.76),
}


def inference_minutes(wildcards):
    if not inference_device(wildcards).startswith("cuda"):
        return 60
    frame_objects = BENCHMARK_FRAME_OBJECTS.get(config["evaluations"][wildcards.evaluation].get("benchmark"))
    fps = PAPER_FPS.get(config["rows"][wildcards.row]["method"])
    if frame_objects is None or fps is None:
        return 60 * config["job_time_limit_hours"]
    return math.ceil(INFERENCE_START_MINUTES + INFERENCE_TIME_MARGIN * frame_objects / fps / 60)


THREADS = {"train": training_threads, "infer": 2, "evaluate": 2, "evaluate_youtube_vos": 4, "interactive": 2}
SMALL_JOB = dict(mem_mb=1000, runtime=5, gpu=0)  # a summary, a plot, a table
RESOURCES = {
    "generate_embedded": dict(mem_mb=2000, runtime=10, gpu=0),
    "download_davis": dict(mem_mb=2000, runtime=240, gpu=0),
    "fetch_weights": dict(mem_mb=2000, runtime=60, gpu=0),
    # per GPU: the training process, its 7 DataLoader workers and pinned batches (an allowance, not measured)
    "train": dict(mem_mb=training_memory, runtime=training_minutes, gpu=training_gpus),
    "infer": dict(
        # on a GPU: the torch/CUDA process and a sequence's frames (a 180-frame 1280x720 YouTube-VOS video is
        # 0.5 GB as read, 2 GB as float32): an allowance, not measured; on the CPU presets' small frames, 4 GB
        mem_mb=lambda wildcards: 16000 if inference_device(wildcards).startswith("cuda") else 4000,
        runtime=inference_minutes,
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
    "interactive_standin": dict(mem_mb=2000, runtime=10, gpu=0),
    # a session: the method, the package's robot and scoring of every interaction (the track's 30 s per object and
    # interaction bound a real session's method time; the robot and scoring add minutes: an allowance)
    "interactive_session": dict(
        mem_mb=8000,
        runtime=lambda wildcards: 60 * config["job_time_limit_hours"],
        gpu=lambda wildcards: int(
            str(session_settings(wildcards.session).get("device", "cpu")).startswith("cuda")
        ),
    ),
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


def _check_training_hours():
    for name, entry in TRAININGS.items():
        if entry.get("gpus") and "hours" not in entry:
            raise WorkflowError(
                f"{entry_file('trainings', name)} trainings.{name}: a training on GPUs needs `hours:`, its expected "
                "wall-clock hours on them (the jobs' time requests come from it: docs/reproducing.md, 'Resources on a cluster')"
            )


_check_training_hours()
