"""Atomic writes: whole or nothing, and readable by others as an ordinary write would be."""

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vos_datasets.fileio import atomic_directory, atomic_path, atomic_write_text


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_and_folders_get_the_umask_permissions_not_tempfiles_private_ones(tmp_path, umask_022):
    atomic_write_text(tmp_path / "table.md", "x")
    with atomic_path(tmp_path / "weights.pt") as tmp:
        tmp.write_bytes(b"w")
    with atomic_directory(tmp_path / "masks") as tmp:
        (tmp / "00000.png").write_bytes(b"p")
    assert mode(tmp_path / "table.md") == 0o644
    assert mode(tmp_path / "weights.pt") == 0o644
    assert mode(tmp_path / "masks") == 0o755
    assert mode(tmp_path / "masks" / "00000.png") == 0o644


def test_a_stricter_umask_is_respected(tmp_path):
    previous = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "private.md", "x")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "private.md") == 0o600


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


# Writes a mask folder and a weights file atomically, says so, then is SIGKILLed ("kill") or waits ("live").
WRITER = """
import os, signal, sys
from pathlib import Path
from vos_datasets.fileio import atomic_directory, atomic_path
out = Path(sys.argv[1])
with atomic_directory(out / "masks") as folder, atomic_path(out / "head.pt") as part:
    (folder / "seq").mkdir()
    (folder / "seq" / "00000.png").write_bytes(b"half a folder")
    part.write_bytes(b"half a file")
    print("writing", flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.read()
"""
REPO = Path(__file__).resolve().parent.parent


def writer(out: Path, how: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out), how],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline() == "writing\n"
    return process


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_the_next_write_removes_what_a_killed_writer_left_and_nothing_of_a_live_one(tmp_path):
    """A SIGKILLed writer cannot remove its temporaries (issue 19: a killed inference left its staging mask
    folder in results/ for good); the next atomic write of the same output removes them, but not those of a
    writer still running nor those of another host (a shared folder)."""
    killed = writer(tmp_path, "kill")
    assert killed.wait() == -signal.SIGKILL
    left_by_killed = temporaries(tmp_path)
    assert (
        len(left_by_killed) == 2 and not (tmp_path / "masks").exists() and not (tmp_path / "head.pt").exists()
    )
    live = writer(tmp_path, "live")
    of_live = sorted(set(temporaries(tmp_path)) - set(left_by_killed))
    other_host = tmp_path / ".masks.another-host~1.abcd1234.tmp"
    other_host.mkdir()
    try:
        with atomic_directory(tmp_path / "masks") as folder:
            (folder / "00000.png").write_bytes(b"whole")
        atomic_write_text(tmp_path / "head.pt", "whole")
        assert temporaries(tmp_path) == sorted([*of_live, other_host.name])
        assert (tmp_path / "masks/00000.png").read_bytes() == b"whole" and (
            tmp_path / "head.pt"
        ).read_text() == "whole"
    finally:
        live.kill()
        live.wait()
    atomic_write_text(tmp_path / "head.pt", "again")  # the live writer is gone now: its file goes too
    assert temporaries(tmp_path) == sorted(
        [of for of in of_live if of.startswith(".masks.")] + [other_host.name]
    )
