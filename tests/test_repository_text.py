"""The repository's tracked text speaks to its readers: no absolute path of the machine it was written on (the
folder holding the checkout, the home folder), which means nothing anywhere else. The paths are those of the
machine the test runs on, found at test time, so a path that slips in is caught on the machine it came from."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (git ls-files failed): no tracked files to read")
    files = []
    for name in filter(None, listed.decode().split("\0")):
        path = REPO / name
        if path.is_file() and b"\0" not in path.read_bytes()[:8192]:  # text, not PNGs or weights
            files.append(path)
    return files


# Folders every machine has, which a text may name on purpose (a scratch folder in an example): a checkout held
# directly in one of them names nothing of its machine.
SYSTEM_FOLDERS = {"/", "/tmp", "/var/tmp", "/home", "/mnt", "/opt", "/srv", "/usr"}


def machine_folders() -> list[str]:
    """The folder that holds the checkout and the home folder, as absolute paths, but for SYSTEM_FOLDERS."""
    return sorted({str(REPO.parent), str(Path.home())} - SYSTEM_FOLDERS)


def occurrences(text: str, folder: str) -> list[int]:
    """Line numbers where `folder` appears as a path (not inside a longer word: a folder /ab is not /abc)."""
    pattern = re.compile(rf"(?<![\w.-]){re.escape(folder)}(?![\w.-])")
    return [number for number, line in enumerate(text.splitlines(), 1) if pattern.search(line)]


def test_no_tracked_text_names_a_folder_of_this_machine():
    found = {}
    for path in tracked_text_files():
        text = path.read_text(errors="replace")
        for folder in machine_folders():
            lines = occurrences(text, folder)
            if lines:
                found[f"{path.relative_to(REPO)}:{lines[0]}"] = folder
    assert not found, (
        f"tracked files name folders of this machine (say ../shared, <checkout>, ~ or a relative path instead): {found}"
    )


def test_the_path_search_finds_a_path_and_leaves_longer_words_alone():
    folder = "/srv/build"
    assert occurrences(f"see {folder}/main/README.md\nnothing here", folder) == [1]
    assert occurrences(f"cd {folder}", folder) == [1]
    assert not occurrences(f"{folder}er/x and {folder}-2/x and data{folder}", folder)
