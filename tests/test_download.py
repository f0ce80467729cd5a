"""vos_datasets.download end to end against a local HTTP server on 127.0.0.1 (no other address is used).

The server serves archives built here with zipfile, honours `Range: bytes=N-` (206), and can be told to
cut the first transfer of a file short, to serve corrupted bytes, or to answer with an error status.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import re
import stat
import threading
import urllib.error
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vos_datasets import download
from vos_datasets.download import (
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    download_file,
    extract_zip,
    fetch_dataset,
)

MAX_REQUESTS = 50  # past this the server answers 404, which ends any download loop at once
FAST = {"backoff": 0.0, "timeout": 5.0, "progress": False}
DAVIS_FILENAME = download.ARCHIVES["davis2017"].filename


# --- archives -------------------------------------------------------------------------------------------


def _image_bytes(mode: str, fmt: str) -> bytes:
    pixels = np.zeros((4, 6, 3) if mode == "RGB" else (4, 6), np.uint8)
    pixels[1:3, 2:5] = 1 if mode == "P" else 200
    image = Image.fromarray(pixels, mode="L" if mode == "P" else mode)
    if mode == "P":
        image = image.convert("P")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def davis_members(top: str = "DAVIS", jpeg_images: bool = True) -> dict[str, bytes]:
    members = {
        f"{top}/Annotations/480p/seq/00000.png": _image_bytes("P", "PNG"),
        f"{top}/ImageSets/2017/val.txt": b"seq\n",
        # Incompressible padding, so that an archive spans several 64 KiB reads of the downloader.
        f"{top}/padding.bin": random.Random(0).randbytes(150_000),
    }
    if jpeg_images:
        members[f"{top}/JPEGImages/480p/seq/00000.jpg"] = _image_bytes("RGB", "JPEG")
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path.read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def davis_zip(tmp_path) -> Path:
    """A small valid DAVIS-like archive (top folder DAVIS/), in its own folder."""
    folder = tmp_path / "built"
    folder.mkdir()
    path = folder / DAVIS_FILENAME
    write_zip(path, davis_members())
    return path


# --- server ---------------------------------------------------------------------------------------------


@dataclass
class Served:
    data: bytes
    status: int = 200  # anything else: answered with that error status, every time
    truncate_first: int | None = None  # first request: send this many body bytes, then close
    corrupt: bool = False  # flip one byte in the middle (same length)
    honour_range: bool = True


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        assert host == "127.0.0.1"
        return f"http://{host}:{port}"

    def serve(self, path: str, data: bytes, **behaviour) -> str:
        self.files[path] = Served(data, **behaviour)
        return self.base + path

    def requests_for(self, path: str) -> list[str | None]:
        with self.lock:
            return [rng for seen, rng in self.requests if seen == path]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection; the server closes it after the response

    def log_message(self, format, *args):  # quiet test output
        pass

    def do_GET(self) -> None:
        owner: FileServer = self.server.owner  # type: ignore[attr-defined]
        range_header = self.headers.get("Range")
        with owner.lock:
            owner.requests.append((self.path, range_header))
            total_requests = len(owner.requests)
            nth = sum(1 for seen, _ in owner.requests if seen == self.path)
        entry = owner.files.get(self.path)
        if entry is None or total_requests > MAX_REQUESTS:
            self.send_error(404)
            return
        if entry.status != 200:
            self.send_error(entry.status)
            return
        data = bytearray(entry.data)
        if entry.corrupt:
            data[len(data) // 2] ^= 0xFF
        start = 0
        if range_header is not None and entry.honour_range:
            match = re.fullmatch(r"bytes=(\d+)-", range_header)
            if match is None or int(match[1]) >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(match[1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = bytes(data[start:])
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if entry.truncate_first is not None and nth == 1:
            self.wfile.write(body[: entry.truncate_first])  # then the connection is closed: a cut transfer
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(request) -> FileServer:
    srv = FileServer()
    request.addfinalizer(srv.stop)
    return srv


def leftovers(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


# --- download_file --------------------------------------------------------------------------------------


def test_good_archive_downloads_once(server, davis_zip, tmp_path):
    data = davis_zip.read_bytes()
    url = server.serve("/good.zip", data)
    dest = tmp_path / "dl" / "good.zip"

    out = download_file(url, dest, sha256(data), len(data), retries=2, **FAST)

    assert out == dest
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == {"good.zip"}  # no .part
    assert server.requests_for("/good.zip") == [None]

    assert download_file(url, dest, sha256(data), len(data), retries=2, **FAST) == dest
    assert server.requests_for("/good.zip") == [None]  # already there: no second request


def test_truncated_transfer_resumes_with_range(server, davis_zip, tmp_path):
    data = davis_zip.read_bytes()
    cut = len(data) // 3
    url = server.serve("/cut.zip", data, truncate_first=cut)
    dest = tmp_path / "dl" / "cut.zip"

    download_file(url, dest, sha256(data), len(data), retries=2, **FAST)

    assert server.requests_for("/cut.zip") == [None, f"bytes={cut}-"]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha256(data)
    assert leftovers(dest.parent) == {"cut.zip"}


def test_truncated_transfer_without_range_support_starts_over(server, davis_zip, tmp_path):
    data = davis_zip.read_bytes()
    cut = len(data) // 3
    url = server.serve("/norange.zip", data, truncate_first=cut, honour_range=False)
    dest = tmp_path / "dl" / "norange.zip"

    download_file(url, dest, sha256(data), len(data), retries=2, **FAST)

    assert server.requests_for("/norange.zip") == [None, f"bytes={cut}-"]  # asked, got 200, rewrote
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == {"norange.zip"}


def test_resumes_part_file_of_an_earlier_run(server, davis_zip, tmp_path):
    data = davis_zip.read_bytes()
    have = 40_000
    url = server.serve("/resume.zip", data)
    dest = tmp_path / "dl" / "resume.zip"
    dest.parent.mkdir()
    (dest.parent / "resume.zip.part").write_bytes(data[:have])

    download_file(url, dest, sha256(data), len(data), retries=2, **FAST)

    assert server.requests_for("/resume.zip") == [f"bytes={have}-"]  # one request, for the rest only
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == {"resume.zip"}


def test_complete_part_file_needs_no_request(server, davis_zip, tmp_path):
    data = davis_zip.read_bytes()
    url = server.serve("/whole.zip", data)
    dest = tmp_path / "dl" / "whole.zip"
    dest.parent.mkdir()
    (dest.parent / "whole.zip.part").write_bytes(data)

    download_file(url, dest, sha256(data), len(data), retries=2, **FAST)

    assert server.requests_for("/whole.zip") == []
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == {"whole.zip"}


def test_stale_part_file_is_replaced_after_checksum_mismatch(server, davis_zip, tmp_path):
    data = davis_zip.read_bytes()
    have = 40_000
    url = server.serve("/stale.zip", data)
    dest = tmp_path / "dl" / "stale.zip"
    dest.parent.mkdir()
    (dest.parent / "stale.zip.part").write_bytes(b"\0" * have)  # right length, wrong bytes

    download_file(url, dest, sha256(data), len(data), retries=2, **FAST)

    assert server.requests_for("/stale.zip") == [f"bytes={have}-", None]  # resumed, mismatched, refetched
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == {"stale.zip"}


@pytest.mark.parametrize("kind", ["corrupt-bytes", "wrong-size", "sha-only"])
def test_corrupt_archive_raises_checksum_error(server, davis_zip, tmp_path, kind):
    data = davis_zip.read_bytes()
    size: int | None = len(data)
    if kind == "wrong-size":
        url = server.serve("/bad.zip", data + b"extra")
        expected = "size"
    else:
        url = server.serve("/bad.zip", data, corrupt=True)
        expected = "SHA-256"
        if kind == "sha-only":
            size = None
    dest = tmp_path / "dl" / "bad.zip"

    with pytest.raises(ChecksumError, match=rf"{expected} .*\(twice\)"):
        download_file(url, dest, sha256(data), size, retries=3, **FAST)

    assert server.requests_for("/bad.zip") == [None, None]  # fetched once more from scratch, then gave up
    assert not dest.exists()
    assert leftovers(dest.parent) == set()  # no .part either


def assert_closed_http_error(error: DownloadError, code: int) -> None:
    cause = error.__cause__
    assert isinstance(cause, urllib.error.HTTPError) and cause.code == code
    assert cause.closed  # the error response does not keep its connection open


def test_complete_part_file_of_unknown_size_gets_416_and_starts_over(server, davis_zip, tmp_path):
    data = davis_zip.read_bytes()
    url = server.serve("/unsized.zip", data)
    dest = tmp_path / "dl" / "unsized.zip"
    dest.parent.mkdir()
    (dest.parent / "unsized.zip.part").write_bytes(data)

    download_file(url, dest, sha256(data), None, retries=1, **FAST)

    assert server.requests_for("/unsized.zip") == [f"bytes={len(data)}-", None]  # 416, then from scratch
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == {"unsized.zip"}


def test_http_404_fails_at_once(server, tmp_path):
    dest = tmp_path / "dl" / "missing.zip"

    with pytest.raises(DownloadError, match="HTTP 404") as excinfo:
        download_file(server.base + "/missing.zip", dest, retries=5, **FAST)

    assert type(excinfo.value) is DownloadError
    assert_closed_http_error(excinfo.value, 404)
    assert server.requests_for("/missing.zip") == [None]  # no retries
    assert leftovers(dest.parent) == set()


@pytest.mark.parametrize("retries", [0, 2])
def test_http_500_is_retried_then_fails(server, tmp_path, retries):
    url = server.serve("/flaky.zip", b"", status=500)
    dest = tmp_path / "dl" / "flaky.zip"

    with pytest.raises(DownloadError, match=rf"failed after {retries} retries \(HTTP Error 500") as excinfo:
        download_file(url, dest, retries=retries, **FAST)

    assert type(excinfo.value) is DownloadError
    assert_closed_http_error(excinfo.value, 500)
    assert server.requests_for("/flaky.zip") == [None] * (retries + 1)
    assert leftovers(dest.parent) == set()


# --- extract_zip ----------------------------------------------------------------------------------------


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


UNSAFE = {
    "dotdot": ("../evil.txt", lambda name: name, "escapes the target folder"),
    "absolute": ("/tmp/abs.txt", zipfile.ZipInfo, "absolute path"),
    "absolute-into-tmp_path": ("{tmp_path}/abs.txt", zipfile.ZipInfo, "absolute path"),
    "symlink": ("DAVIS/evil-link", _symlink_info, "symbolic link"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_member_is_refused_and_nothing_written(tmp_path, case):
    name, make_info, reason = UNSAFE[case]
    name = name.format(tmp_path=tmp_path.as_posix())
    outside = Path("/tmp/abs.txt")
    outside_existed = outside.exists()
    archive = tmp_path / "unsafe.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("DAVIS/ok.txt", b"fine")  # a safe member first: it must not be written either
        zf.writestr(make_info(name), b"../../../evil.txt" if case == "symlink" else b"evil")
        zf.writestr("DAVIS/after.txt", b"fine")
    with zipfile.ZipFile(archive) as zf:
        assert name in zf.namelist()  # zipfile kept the name as written
    target = tmp_path / "out" / "dataset"

    with pytest.raises(UnsafeArchiveError, match=re.escape(f"member {name!r}") + ".*" + reason):
        extract_zip(archive, target, progress=False)

    assert not target.exists()
    assert leftovers(target.parent) == set()  # no temporary folder left beside it
    assert {p.name for p in tmp_path.rglob("*")} == {"unsafe.zip", "out"}  # no evil file anywhere
    assert outside_existed or not outside.exists()


def test_member_with_bad_crc_raises_and_leaves_no_target(tmp_path):
    archive = tmp_path / "crc.zip"
    payload = b"0123456789abcdef" * 64
    raw = bytearray(
        write_zip(archive, {"DAVIS/ok.txt": b"fine", "DAVIS/JPEGImages/480p/seq/00000.jpg": payload})
    )
    offset = raw.index(payload)
    raw[offset + 100] ^= 0xFF  # corrupt the stored bytes; the recorded CRC stays
    archive.write_bytes(bytes(raw))
    target = tmp_path / "out" / "dataset"

    with pytest.raises(
        DownloadError, match=r"member 'DAVIS/JPEGImages/480p/seq/00000.jpg' is corrupt"
    ) as excinfo:
        extract_zip(archive, target, progress=False)

    assert not isinstance(excinfo.value, UnsafeArchiveError)
    assert not target.exists()
    assert leftovers(target.parent) == set()


def test_not_a_zip_raises_download_error(tmp_path):
    archive = tmp_path / "junk.zip"
    archive.write_bytes(b"<html>not found</html>")
    target = tmp_path / "out" / "dataset"

    with pytest.raises(DownloadError, match="not a zip archive"):
        extract_zip(archive, target, progress=False)

    assert not target.exists()


# --- fetch_dataset --------------------------------------------------------------------------------------


def pin_davis2017(monkeypatch, data: bytes) -> None:
    spec = dataclasses.replace(download.ARCHIVES["davis2017"], sha256=sha256(data), size=len(data))
    monkeypatch.setitem(download.ARCHIVES, "davis2017", spec)


def assert_davis_tree(root: Path) -> None:
    assert (root / "JPEGImages/480p/seq/00000.jpg").is_file()
    with Image.open(root / "JPEGImages/480p/seq/00000.jpg") as image:
        assert image.size == (6, 4)
    assert (root / "Annotations/480p/seq/00000.png").is_file()
    assert (root / "ImageSets/2017/val.txt").read_text() == "seq\n"


def test_fetch_dataset_from_mirror(server, davis_zip, tmp_path, monkeypatch):
    data = davis_zip.read_bytes()
    pin_davis2017(monkeypatch, data)
    server.serve("/" + DAVIS_FILENAME, data)
    dest_root = tmp_path / "datasets"

    root = fetch_dataset("davis2017", dest_root, mirror=server.base + "/", retries=1, progress=False)

    assert root == dest_root / "davis2017"
    assert_davis_tree(root)
    assert leftovers(dest_root) == {"archives", "davis2017"}  # no staging folders
    assert leftovers(dest_root / "archives") == {DAVIS_FILENAME}  # no .part
    assert server.requests_for("/" + DAVIS_FILENAME) == [None]

    assert fetch_dataset("davis2017", dest_root, mirror=server.base + "/", progress=False) == root
    assert server.requests_for("/" + DAVIS_FILENAME) == [None]  # already extracted: nothing fetched


def test_fetch_dataset_from_local_archive(davis_zip, tmp_path, monkeypatch):
    pin_davis2017(monkeypatch, davis_zip.read_bytes())
    dest_root = tmp_path / "datasets"

    root = fetch_dataset("davis2017", dest_root, archive_path=davis_zip, progress=False)

    assert root == dest_root / "davis2017"
    assert_davis_tree(root)
    assert leftovers(dest_root) == {"davis2017"}
    assert davis_zip.is_file()  # the user's archive is left alone


def test_fetch_dataset_local_archive_with_wrong_checksum(davis_zip, tmp_path):
    dest_root = tmp_path / "datasets"  # registry keeps the official SHA-256, which this archive lacks

    with pytest.raises(ChecksumError, match="SHA-256 differs"):
        fetch_dataset("davis2017", dest_root, archive_path=davis_zip, progress=False)

    assert leftovers(dest_root) == set()


@pytest.mark.parametrize("top", ["DAVIS-no-jpegs", "Other"])
def test_fetch_dataset_rejects_archive_without_davis_jpegimages(tmp_path, top):
    archive = tmp_path / "wrong.zip"
    members = davis_members(top="DAVIS", jpeg_images=False) if top == "DAVIS-no-jpegs" else davis_members(top)
    data = write_zip(archive, members)
    dest_root = tmp_path / "datasets"

    with pytest.raises(DownloadError, match="does not hold DAVIS/JPEGImages"):
        fetch_dataset("davis2017", dest_root, archive_path=archive, sha256=sha256(data), progress=False)

    assert leftovers(dest_root) == set()


def test_fetch_dataset_rejects_mirror_archive_without_jpegimages(server, tmp_path, monkeypatch):
    data = write_zip(tmp_path / "wrong.zip", davis_members(jpeg_images=False))
    pin_davis2017(monkeypatch, data)
    server.serve("/" + DAVIS_FILENAME, data)
    dest_root = tmp_path / "datasets"

    with pytest.raises(DownloadError, match="does not hold DAVIS/JPEGImages"):
        fetch_dataset("davis2017", dest_root, mirror=server.base + "/", retries=0, progress=False)

    assert leftovers(dest_root) == {"archives"}  # only the verified download; no dataset, no staging
    assert leftovers(dest_root / "archives") == {DAVIS_FILENAME}


def test_fetch_dataset_mirror_404(server, tmp_path, monkeypatch):
    dest_root = tmp_path / "datasets"

    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_dataset("davis2017", dest_root, mirror=server.base + "/nothing/", retries=3, progress=False)

    assert server.requests_for("/nothing/" + DAVIS_FILENAME) == [None]
    assert not (dest_root / "davis2017").exists()
    assert leftovers(dest_root / "archives") == set()


UNSUPERVISED = download.ARCHIVES["davis2017-unsupervised"]


def unsupervised_members() -> dict[str, bytes]:
    """The unsupervised archive's layout: DAVIS/JPEGImages, DAVIS/Annotations_unsupervised, DAVIS/ImageSets."""
    members = davis_members()
    members["DAVIS/Annotations_unsupervised/480p/seq/00000.png"] = members.pop("DAVIS/Annotations/480p/seq/00000.png")
    return members


def test_unsupervised_archive_entry_is_on_the_official_host():
    assert UNSUPERVISED.url == ("https://data.vision.ee.ethz.ch/csergi/share/davis/"
                                "DAVIS-2017-Unsupervised-trainval-480p.zip")
    assert UNSUPERVISED.url.rsplit("/", 1)[0] == download.ARCHIVES["davis2017"].url.rsplit("/", 1)[0]
    assert UNSUPERVISED.sha256 is None  # not published; recorded only once known


def test_fetch_unsupervised_annotations_from_mirror(server, tmp_path, capsys):
    data = write_zip(tmp_path / "built.zip", unsupervised_members())
    server.serve("/" + UNSUPERVISED.filename, data)
    dest_root = tmp_path / "datasets"

    root = fetch_dataset("davis2017-unsupervised", dest_root, mirror=server.base + "/", retries=1, progress=False)

    assert root == dest_root / "davis2017-unsupervised"
    assert (root / "Annotations_unsupervised/480p/seq/00000.png").is_file()
    assert (root / "JPEGImages/480p/seq/00000.jpg").is_file()
    assert leftovers(dest_root) == {"archives", "davis2017-unsupervised"}
    assert leftovers(dest_root / "archives") == {UNSUPERVISED.filename}
    # no published checksum: the archive's own is printed, to be pinned
    assert f"SHA-256 {sha256(data)} (no published checksum; pin it in the config)" in capsys.readouterr().out
    assert server.requests_for("/" + UNSUPERVISED.filename) == [None]
    assert fetch_dataset("davis2017-unsupervised", dest_root, mirror=server.base + "/", progress=False) == root
    assert server.requests_for("/" + UNSUPERVISED.filename) == [None]  # complete: nothing fetched again


def test_unsupervised_archive_without_its_annotations_is_refused(server, tmp_path):
    """The semi-supervised archive served under the unsupervised one's name: named, nothing extracted; a pinned
    checksum is checked as for the other archives."""
    data = write_zip(tmp_path / "semi.zip", davis_members())
    server.serve("/" + UNSUPERVISED.filename, data)
    dest_root = tmp_path / "datasets"

    with pytest.raises(DownloadError, match="does not hold DAVIS/Annotations_unsupervised; not the davis2017-unsup"):
        fetch_dataset("davis2017-unsupervised", dest_root, mirror=server.base + "/", sha256=sha256(data), retries=0,
                      progress=False)
    assert leftovers(dest_root) == {"archives"}
    with pytest.raises(ChecksumError):
        fetch_dataset("davis2017-unsupervised", tmp_path / "other", mirror=server.base + "/", sha256="0" * 64,
                      retries=0, progress=False)


def test_fetch_youtube_vos_needs_registration(tmp_path):
    dest_root = tmp_path / "datasets"

    with pytest.raises(DownloadError, match="registration"):
        fetch_dataset("youtube_vos", dest_root, progress=False)

    assert not dest_root.exists()


# --- leftovers, existing folders, zip bombs, clashing members, the CLI ------------------------------------


def test_leftovers_of_a_killed_extraction_are_removed(davis_zip, tmp_path, monkeypatch):
    """A killed extraction leaves atomic_directory's `..<name>.extract.*.tmp` (and the staging folder)."""
    import tempfile

    pin_davis2017(monkeypatch, davis_zip.read_bytes())
    dest_root = tmp_path / "datasets"
    dest_root.mkdir()
    killed = Path(tempfile.mkdtemp(prefix="..davis2017.extract.", suffix=".tmp", dir=dest_root))  # as fileio names it
    (killed / "DAVIS" / "JPEGImages").mkdir(parents=True)
    (killed / "DAVIS" / "half-written.jpg").write_bytes(b"\0" * 1000)
    (dest_root / ".davis2017.extract" / "DAVIS").mkdir(parents=True)
    other = dest_root / "..davis2016.extract.x1y2z3.tmp"  # another dataset's: not this run's to remove
    other.mkdir()

    root = fetch_dataset("davis2017", dest_root, archive_path=davis_zip, progress=False)

    assert_davis_tree(root)
    assert leftovers(dest_root) == {"davis2017", other.name}

    killed.mkdir()  # killed after the rename of an earlier run: the dataset is there, the leftover too
    assert fetch_dataset("davis2017", dest_root, archive_path=davis_zip, progress=False) == root
    assert leftovers(dest_root) == {"davis2017", other.name}


def test_existing_incomplete_dataset_folder_is_named_with_the_fix(davis_zip, tmp_path, monkeypatch):
    pin_davis2017(monkeypatch, davis_zip.read_bytes())
    dest_root = tmp_path / "datasets"
    (dest_root / "davis2017" / "Annotations").mkdir(parents=True)

    with pytest.raises(DownloadError) as excinfo:
        fetch_dataset("davis2017", dest_root, archive_path=davis_zip, progress=False)

    message = str(excinfo.value)
    assert "\n" not in message
    assert f"{dest_root / 'davis2017'}: exists but is not a complete davis2017 dataset" in message
    assert f"rm -r {dest_root / 'davis2017'}" in message
    assert leftovers(dest_root) == {"davis2017"}  # nothing extracted beside it
    assert leftovers(dest_root / "davis2017") == {"Annotations"}  # and the folder left as it was


def zeros_zip(path: Path, megabytes: int) -> Path:
    """A zip bomb: `megabytes` MiB of zeros in one deflated member (about 1000:1)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("DAVIS/JPEGImages/480p/seq/00000.jpg", b"")
        with zf.open("DAVIS/JPEGImages/480p/seq/zeros.jpg", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(megabytes):
                member.write(block)
    return path


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path):
    archive = zeros_zip(tmp_path / "bomb.zip", 80)
    assert archive.stat().st_size < 1_000_000
    dest_root = tmp_path / "datasets"

    with pytest.raises(UnsafeArchiveError) as excinfo:  # DAVIS 2016: no published checksum to stop it first
        fetch_dataset("davis2016", dest_root, archive_path=archive, progress=False)

    message = str(excinfo.value)
    assert message.startswith(f"{archive}: its members declare 83.89 MB from ")
    assert f"the limit is {download.MAX_RATIO}x" in message and "decompression bomb" in message
    assert not (dest_root / "davis2016").exists()
    assert not any(dest_root.rglob("*"))  # not a byte extracted


def test_archive_over_the_dataset_limit_is_refused(tmp_path, monkeypatch):
    archive = tmp_path / "big.zip"
    data = write_zip(archive, davis_members())  # stored, incompressible: ~1x, passes the ratio
    spec = dataclasses.replace(download.ARCHIVES["davis2016"], max_extracted=100_000)
    monkeypatch.setitem(download.ARCHIVES, "davis2016", spec)
    dest_root = tmp_path / "datasets"

    with pytest.raises(UnsafeArchiveError, match=re.escape(f"{archive}: its members declare ") +
                       r"0\.15 MB, over the limit of 0\.10 MB for this dataset"):
        fetch_dataset("davis2016", dest_root, archive_path=archive, sha256=sha256(data), progress=False)

    assert not any(dest_root.rglob("*"))


def test_archive_larger_than_the_free_disk_is_refused(davis_zip, tmp_path, monkeypatch):
    real = download.shutil.disk_usage
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: real(path)._replace(free=1000))
    target = tmp_path / "out" / "dataset"

    with pytest.raises(DownloadError, match=re.escape(f"{davis_zip}: extracting needs 0.15 MB but ") +
                       r".* has 0\.00 MB free; free space there and run again"):
        extract_zip(davis_zip, target, progress=False)

    assert not target.exists() and leftovers(target.parent) == set()


@pytest.mark.parametrize("order", ["file-first", "folder-first", "folder-entry"])
def test_member_that_is_both_a_file_and_a_folder_is_refused(tmp_path, order):
    archive = tmp_path / "clash.zip"
    members = {"file-first": [("DAVIS/JPEGImages/a", b"file"), ("DAVIS/JPEGImages/a/b.jpg", b"x")],
               "folder-first": [("DAVIS/JPEGImages/a/b.jpg", b"x"), ("DAVIS/JPEGImages/a", b"file")],
               "folder-entry": [("DAVIS/JPEGImages/a/", b""), ("DAVIS/JPEGImages/a", b"file")]}[order]
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    target = tmp_path / "out" / "dataset"

    with pytest.raises(UnsafeArchiveError, match=re.escape(f"{archive}: member 'DAVIS/JPEGImages/a' is both a file "
                                                           "and a folder")):
        extract_zip(archive, target, progress=False)

    assert not target.exists() and leftovers(target.parent) == set()


def test_cli_reports_a_download_error_in_one_line(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "nowhere.zip"
    done = subprocess.run([sys.executable, "-m", "vos_datasets.download", "davis2016", str(tmp_path / "datasets"),
                           "--archive", str(missing)], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == f"error: {missing}: archive not found\n"  # no traceback
