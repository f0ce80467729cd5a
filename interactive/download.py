"""The real data's scribbles: DAVIS-2017-scribbles-trainval.zip, downloaded with its checksum and unpacked
into the DAVIS 2017 root as Scribbles/<seq>/00N.json (the frames and annotations come from
`python -m vos_datasets.download davis2017`).

The download, resume, checksum and safe atomic extraction are vos_datasets.download's; this module only names
the archive and moves its Scribbles/ folder into place, whole or not at all.

    python -m interactive download-scribbles --davis-root resources/datasets/davis2017
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from vos_datasets.download import Archive, ChecksumError, DownloadError, download_file, extract_zip, sha256_of

SCRIBBLES = Archive(
    name="davis2017-scribbles",
    url="https://data.vision.ee.ethz.ch/csergi/share/DAVIS-Interactive/DAVIS-2017-scribbles-trainval.zip",
    # The package's own checksum of the archive (davisinteractive 1.0.4, Davis.SCRIBBLES_HASH, SHA-256).
    sha256="6c6811c67ef757091212a98b68b841305f92b57f6cd2938e0fa94ae8591c3226",
    size=None,
    top_folder="DAVIS",
    max_extracted=2_000_000_000,
    note="scribbles of DAVIS 2017 train+val (3 a sequence), the interactive track's first interaction",
)
FOLDER = "Scribbles"


def fetch_scribbles(davis_root: str | Path, mirror: str | None = None, archive_path: str | Path | None = None,
                    retries: int = 5, progress: bool = True) -> Path:
    """Put <davis_root>/Scribbles in place (nothing to do when it is there); returns it. The archive is kept in
    <davis_root>/../archives (as vos_datasets.download keeps the dataset archives)."""
    davis_root = Path(davis_root)
    final = davis_root / FOLDER
    if final.is_dir():
        return final
    if not (davis_root / "JPEGImages").is_dir():
        raise DownloadError(f"{davis_root}: not a DAVIS 2017 root (no JPEGImages/); download it first "
                            "(python -m vos_datasets.download davis2017 DEST) and pass DEST/davis2017")
    if archive_path is not None:
        archive = Path(archive_path)
        if not archive.is_file():
            raise DownloadError(f"{archive}: archive not found")
        if sha256_of(archive) != SCRIBBLES.sha256:
            raise ChecksumError(f"{archive}: SHA-256 differs from the official {SCRIBBLES.filename}")
    else:
        url = SCRIBBLES.url if mirror is None else mirror.rstrip("/") + "/" + SCRIBBLES.filename
        archive = download_file(url, davis_root.parent / "archives" / SCRIBBLES.filename, SCRIBBLES.sha256,
                                SCRIBBLES.size, retries=retries, progress=progress)
    staging = davis_root / f".{FOLDER}.extract"
    shutil.rmtree(staging, ignore_errors=True)  # what an interrupted extraction left
    extract_zip(archive, staging, progress=progress, max_bytes=SCRIBBLES.max_extracted)
    try:
        inner = staging / SCRIBBLES.top_folder / FOLDER
        if not inner.is_dir():
            raise DownloadError(f"{archive}: does not hold {SCRIBBLES.top_folder}/{FOLDER}/; not the scribbles "
                                "archive")
        os.replace(inner, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
