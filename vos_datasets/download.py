"""Downloads of the official DAVIS archives: checksums, resume, retries and safe, atomic extraction.

    python -m vos_datasets.download davis2017 resources/datasets          # official host
    python -m vos_datasets.download davis2016 resources/datasets --mirror https://my.mirror/davis/
    python -m vos_datasets.download davis2017 resources/datasets --archive ~/Downloads/DAVIS-2017-trainval-480p.zip
    python -m vos_datasets.download davis2017-unsupervised resources/datasets   # Annotations_unsupervised

A transfer goes to `<archive>.part` and resumes from there (HTTP Range) after an interruption; the
archive is renamed into place only once its size and SHA-256 match. Extraction goes into a temporary
folder that is renamed onto the dataset folder only when every member has been checked (no absolute
paths, no `..`, no links, no name that is both a file and a folder) and written: a dataset folder is complete
or absent, never half-written. Before anything is written the members' declared sizes are checked against the
archive's limit, its compression ratio (image archives hardly compress; a zip bomb does) and the free disk.
What an interrupted (killed) extraction left behind is removed by the next run.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from .fileio import atomic_directory


@dataclass(frozen=True)
class Archive:
    name: str
    url: str
    sha256: str | None  # None: the publisher gives none; the zip's own CRCs are still checked
    size: int | None
    top_folder: str  # folder the archive unpacks into
    max_extracted: int  # bytes its members may declare in all (a few times the real contents)
    note: str = ""
    required: tuple[str, ...] = ("JPEGImages",)  # folders of a complete dataset (the first that is missing is named)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ARCHIVES: dict[str, Archive] = {
    "davis2017": Archive(
        name="davis2017",
        url="https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip",
        # Size and SHA-256 as recorded by TensorFlow Datasets (tensorflow_datasets/video/davis/checksums.tsv).
        sha256="e3d0b5b77c3d031b000a19e0e25e3e2cac65d183755601bc2cf066df1a2aa492",
        size=832_766_765,
        top_folder="DAVIS",
        max_extracted=4_000_000_000,
        note="DAVIS 2017 train+val, 480p; also holds ImageSets/2016 for DAVIS 2016 evaluation",
    ),
    "davis2016": Archive(
        name="davis2016",
        url="https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip",
        sha256=None,  # not published; set downloads.davis2016.sha256 in the config to pin it
        size=None,
        top_folder="DAVIS",
        max_extracted=8_000_000_000,
        note="DAVIS 2016 (480p and 1080p), single-object 0/255 masks",
    ),
    "davis2017-unsupervised": Archive(
        name="davis2017-unsupervised",
        # The official host of the DAVIS 2017 archives, linked from https://davischallenge.org/davis2017/code.html
        # (the toolkit's DAVIS.DATASET_WEB): JPEGImages, Annotations_unsupervised and ImageSets under DAVIS/.
        url="https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-Unsupervised-trainval-480p.zip",
        sha256=None,  # not published, and not yet recorded here; set downloads.sha256 in the config to pin it
        size=None,
        top_folder="DAVIS",
        max_extracted=4_000_000_000,
        note="DAVIS 2017 train+val, 480p, with the unsupervised task's annotations (metrics --task unsupervised)",
        required=("JPEGImages", "Annotations_unsupervised"),
    ),
}


class DownloadError(RuntimeError):
    """A download that could not be completed; the message says what to do."""


class ChecksumError(DownloadError):
    pass


class UnsafeArchiveError(DownloadError):
    pass


# Declared contents over this many times the archive's size are refused (JPEG and PNG archives such as DAVIS
# are ~1x; 1 GB of zeros deflates ~1000x). Small archives pass below MIN_CHECKED_BYTES whatever their ratio.
MAX_RATIO = 20
MIN_CHECKED_BYTES = 64 << 20


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download_file(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest`, resuming a `.part` file, retrying transient failures.

    A finished transfer whose size or SHA-256 does not match is deleted and fetched once more from
    scratch; a second mismatch raises ChecksumError.
    """
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_of(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    checksum_failures = 0
    attempt = 0
    while True:
        try:
            _transfer(url, part, size, timeout, progress)
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as err:
            if isinstance(err, urllib.error.HTTPError) and 400 <= err.code < 500 and err.code != 416:
                raise DownloadError(f"{url}: HTTP {err.code}; check the URL or the configured mirror") from err
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"{url}: failed after {retries} retries ({err}); the partial file {part} is kept and "
                    "the next run resumes from it"
                ) from err
            time.sleep(backoff * 2 ** (attempt - 1))
            continue
        problem = None
        if size is not None and part.stat().st_size != size:
            problem = f"size {part.stat().st_size} bytes, expected {size}"
        elif sha256 is not None and (actual := sha256_of(part)) != sha256:
            problem = f"SHA-256 {actual}, expected {sha256}"
        if problem is None:
            os.replace(part, dest)
            return dest
        part.unlink()
        checksum_failures += 1
        if checksum_failures >= 2:
            raise ChecksumError(
                f"{url}: downloaded file has {problem} (twice); the file on the server or mirror differs "
                "from the official archive"
            )


def _transfer(url: str, part: Path, size: int | None, timeout: float, progress: bool) -> None:
    """Fetch the rest of `url` into `part` (one HTTP request)."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have >= size:
        if have > size:
            part.unlink()
            have = 0
        else:
            return
    request = urllib.request.Request(url, headers={"User-Agent": "vos-repro/0.1"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()  # the error response holds the connection open
        if err.code == 416:  # nothing left to fetch, or a bad partial file: start over
            part.unlink(missing_ok=True)
        raise
    with response:
        if have and response.status != 206:  # the server ignored Range: start over
            have = 0
        mode = "ab" if have else "wb"
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        with open(part, mode) as out, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                           desc=part.name.removesuffix(".part"), disable=not progress) as bar:
            received = 0
            while block := response.read(1 << 16):
                out.write(block)
                received += len(block)
                bar.update(len(block))
        if length is not None and received != int(length):
            raise http.client.IncompleteRead(b"", int(length) - received)


def _check_member(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} has an absolute path; refusing to extract")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} escapes the target folder; refusing to extract")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link; refusing to extract")
    return path


def _check_layout(checked: list[tuple[zipfile.ZipInfo, PurePosixPath]], archive: Path) -> None:
    """No member may be a file where another member needs a folder (`a` and `a/b`)."""
    files = {path.parts: info for info, path in checked if not info.is_dir()}
    for info, path in checked:
        for depth in range(1, len(path.parts) if not info.is_dir() else len(path.parts) + 1):
            clash = files.get(path.parts[:depth])
            if clash is not None and clash is not info:
                raise UnsafeArchiveError(f"{archive}: member {clash.filename!r} is both a file and a folder (of "
                                         f"{info.filename!r}); not a valid dataset archive, refusing to extract")


def _amount(count: float) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e8 else f"{count / 1e6:.2f} MB"


def _check_sizes(members: list[zipfile.ZipInfo], archive: Path, target: Path, max_bytes: int | None) -> None:
    """Refuse, before writing anything, an archive whose members declare more than its limit, a zip-bomb
    ratio, or more than the free disk (zipfile never writes more than a member declares)."""
    declared = sum(info.file_size for info in members)
    size = archive.stat().st_size
    if max_bytes is not None and declared > max_bytes:
        raise UnsafeArchiveError(f"{archive}: its members declare {_amount(declared)}, over the limit of "
                                 f"{_amount(max_bytes)} for this dataset: not the dataset's archive, refusing "
                                 "to extract (delete it or the downloads.archives entry naming it)")
    if declared > max(MAX_RATIO * size, MIN_CHECKED_BYTES):
        raise UnsafeArchiveError(f"{archive}: its members declare {_amount(declared)} from {_amount(size)} "
                                 f"({declared / max(size, 1):.0f}x, the limit is {MAX_RATIO}x; image archives are "
                                 "~1x): a decompression bomb or not an image archive, refusing to extract "
                                 "(delete it)")
    free = shutil.disk_usage(target.parent).free
    if declared > free:
        raise DownloadError(f"{archive}: extracting needs {_amount(declared)} but {target.parent} has "
                            f"{_amount(free)} free; free space there and run again")


def extract_zip(archive: str | Path, target: str | Path, progress: bool = True, max_bytes: int | None = None) -> Path:
    """Extract `archive` so that `target` appears complete or not at all; refuses unsafe members, and an
    archive that declares more than `max_bytes`, a zip-bomb ratio (MAX_RATIO) or more than the free disk."""
    archive, target = Path(archive), Path(target)
    try:
        zip_file = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive}: not a zip archive ({err}); delete it and download again") from err
    target.parent.mkdir(parents=True, exist_ok=True)
    with zip_file:
        members = zip_file.infolist()
        checked = [(info, _check_member(info, archive)) for info in members]  # all, before writing any
        _check_layout(checked, archive)
        _check_sizes(members, archive, target, max_bytes)
        with atomic_directory(target) as tmp:
            for info, path in tqdm(checked, desc=f"extract {archive.name}", unit="file", disable=not progress):
                out = tmp.joinpath(*path.parts)
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zip_file.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                except (zipfile.BadZipFile, OSError, EOFError) as err:  # CRC mismatch, truncation
                    raise DownloadError(f"{archive}: member {info.filename!r} is corrupt ({err}); "
                                        "delete the archive and download again") from err
    return target


def _remove_leftovers(dest_root: Path, name: str) -> None:
    """Remove what an interrupted extraction of `name` left in `dest_root`: the staging folder and the
    temporary folders of atomic_directory (`..<name>.extract.*.tmp`)."""
    staging = dest_root / f".{name}.extract"
    for leftover in [staging, *dest_root.glob(f".{staging.name}.*.tmp")]:
        if leftover.exists():
            print(f"{leftover}: removing what an interrupted extraction left")
            shutil.rmtree(leftover, ignore_errors=True)


def fetch_dataset(
    name: str,
    dest_root: str | Path,
    mirror: str | None = None,
    archive_path: str | Path | None = None,
    sha256: str | None = None,
    retries: int = 5,
    progress: bool = True,
) -> Path:
    """Download (or take from `archive_path`) and extract one registered dataset; returns its root.

    The dataset lands in `<dest_root>/<name>/` (e.g. resources/datasets/davis2017/, holding
    JPEGImages/, Annotations/, ImageSets/). `mirror` replaces the official host: the archive's file
    name is appended to it. `sha256` pins a checksum where the registry has none.
    """
    if name not in ARCHIVES:
        raise DownloadError(f"unknown dataset {name!r}; downloadable: {sorted(ARCHIVES)} "
                            "(YouTube-VOS needs registration: see vos_datasets.youtube_vos)")
    spec = ARCHIVES[name]
    dest_root = Path(dest_root)
    final = dest_root / name
    _remove_leftovers(dest_root, name)
    absent = [folder for folder in spec.required if not (final / folder).is_dir()]
    if not absent:
        return final
    if final.exists() or final.is_symlink():
        raise DownloadError(f"{final}: exists but is not a complete {name} dataset (no {absent[0]}/); delete it "
                            f"(rm -r {final}) to download and extract again, or put a complete copy there")
    expected_sha = sha256 or spec.sha256
    if archive_path is not None:
        archive = Path(archive_path)
        if not archive.is_file():
            raise DownloadError(f"{archive}: archive not found")
        if expected_sha and sha256_of(archive) != expected_sha:
            raise ChecksumError(f"{archive}: SHA-256 differs from the official {name} archive")
    else:
        url = spec.url if mirror is None else mirror.rstrip("/") + "/" + spec.filename
        archive = download_file(url, dest_root / "archives" / spec.filename, expected_sha, spec.size,
                                retries=retries, progress=progress)
    if expected_sha is None:
        print(f"{archive}: SHA-256 {sha256_of(archive)} (no published checksum; pin it in the config)")
    staging = dest_root / f".{name}.extract"
    extract_zip(archive, staging, progress=progress, max_bytes=spec.max_extracted)
    inner = staging / spec.top_folder
    absent = [folder for folder in spec.required if not (inner / folder).is_dir()]
    if absent:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"{archive}: does not hold {spec.top_folder}/{absent[0]}; not the {name} archive")
    os.replace(inner, final)
    shutil.rmtree(staging, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    prog = "vos-download" if Path(sys.argv[0]).name == "vos-download" else "python -m vos_datasets.download"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(ARCHIVES))
    parser.add_argument("dest_root", type=Path)
    parser.add_argument("--mirror", help="base URL that replaces the official host")
    parser.add_argument("--archive", type=Path, help="use an archive already on disk")
    parser.add_argument("--sha256", help="expected SHA-256 (where the registry has none)")
    parser.add_argument("--retries", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        root = fetch_dataset(args.dataset, args.dest_root, args.mirror, args.archive, args.sha256, args.retries)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.dataset} ready in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
