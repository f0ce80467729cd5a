"""Atomic writes: whole or nothing, and readable by others as an ordinary write would be."""

import os
import stat

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
