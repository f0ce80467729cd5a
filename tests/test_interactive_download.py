"""interactive.download (the DAVIS 2017 scribbles into a DAVIS root) against a local HTTP server on 127.0.0.1
serving an archive built here (the server and archive helpers of tests/test_download.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from interactive import download
from interactive.__main__ import main
from vos_datasets.download import ChecksumError, DownloadError

from .test_download import server, sha256, write_zip  # noqa: F401  (server: the fixture)

SCRIBBLE = json.dumps({"sequence": "seq", "scribbles": [[{"path": [[0.1, 0.2]], "object_id": 1}]]}).encode()


@pytest.fixture
def archive(tmp_path, monkeypatch) -> bytes:
    """The scribbles archive's layout (DAVIS/Scribbles/<seq>/00N.json), its checksum made the expected one."""
    data = write_zip(tmp_path / download.SCRIBBLES.filename, {"DAVIS/Scribbles/seq/001.json": SCRIBBLE,
                                                              "DAVIS/Scribbles/seq/002.json": SCRIBBLE})
    monkeypatch.setattr(download, "SCRIBBLES", dataclasses.replace(download.SCRIBBLES, sha256=sha256(data)))
    return data


@pytest.fixture
def davis_root(tmp_path):
    root = tmp_path / "datasets/davis2017"
    (root / "JPEGImages/480p/seq").mkdir(parents=True)
    return root


def test_the_scribbles_arrive_checked_into_the_davis_root(server, archive, davis_root):  # noqa: F811
    url = server.serve(f"/mirror/{download.SCRIBBLES.filename}", archive)
    folder = download.fetch_scribbles(davis_root, mirror=url.rsplit("/", 1)[0], progress=False)
    assert folder == davis_root / "Scribbles"
    assert (folder / "seq/001.json").read_bytes() == SCRIBBLE and (folder / "seq/002.json").is_file()
    assert (davis_root.parent / "archives" / download.SCRIBBLES.filename).read_bytes() == archive
    assert sorted(path.name for path in davis_root.iterdir()) == ["JPEGImages", "Scribbles"]  # no leftovers
    assert download.fetch_scribbles(davis_root, mirror="http://127.0.0.1:9/none") == folder  # there: no request


def test_a_corrupted_download_is_refused_and_nothing_is_unpacked(server, archive, davis_root):  # noqa: F811
    url = server.serve(f"/m/{download.SCRIBBLES.filename}", archive, corrupt=True)
    with pytest.raises(ChecksumError, match="SHA-256"):
        download.fetch_scribbles(davis_root, mirror=url.rsplit("/", 1)[0], progress=False)
    assert not (davis_root / "Scribbles").exists()


def test_the_command_takes_an_archive_on_disk_and_refuses_a_wrong_one(tmp_path, archive, davis_root, capsys):
    assert main(["download-scribbles", "--quiet", "--davis-root", str(davis_root),
                 "--archive", str(tmp_path / download.SCRIBBLES.filename)]) == 0
    assert (davis_root / "Scribbles/seq/001.json").is_file()
    other = tmp_path / "other"
    (other / "JPEGImages").mkdir(parents=True)
    write_zip(tmp_path / "wrong.zip", {"DAVIS/Scribbles/seq/001.json": b"{}"})
    capsys.readouterr()
    assert main(["download-scribbles", "--quiet", "--davis-root", str(other), "--archive",
                 str(tmp_path / "wrong.zip")]) == 2
    assert "SHA-256 differs" in capsys.readouterr().err and not (other / "Scribbles").exists()
    with pytest.raises(DownloadError, match="not a DAVIS 2017 root"):
        download.fetch_scribbles(tmp_path / "empty", archive_path=tmp_path / "wrong.zip")


def test_the_checksum_is_the_packages():
    pytest.importorskip("davisinteractive", reason="the optional extra `interactive` (make interactive-setup)")
    from interactive.compat import load_davisinteractive

    davis = load_davisinteractive().Davis
    assert download.SCRIBBLES.sha256 == davis.SCRIBBLES_HASH and download.SCRIBBLES.url == davis.SCRIBBLES_URL
