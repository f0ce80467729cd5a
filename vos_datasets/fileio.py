"""Atomic writes: every output appears whole or not at all (write to a temporary path, then rename).

The temporary files and folders come from `tempfile`, which creates them private (0600 / 0700); before the
rename they get the permissions an ordinary write would give them (0666 / 0777 less the process umask), so
outputs stay readable by others where the umask allows it.

A temporary is named after its output and its writer, `.<name>.<host>~<pid>.<random>.tmp`, beside the output.
A writer killed before its rename (SIGKILL, the OOM killer, a lost node) cannot remove it; the next write of
the same output does (`remove_stale_temporaries`): those of this host whose process is gone. A live writer's
temporary (another process writing the same output) and one of another host (a shared folder) are left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

_WRITER = re.compile(r"(?P<host>[A-Za-z0-9-]+)~(?P<pid>[0-9]+)\.[^.]+")  # `<host>~<pid>.<random>` of a name


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _prefix(final: Path) -> str:
    """A temporary's name up to tempfile's random part: the output's name and this process."""
    return f".{final.name}.{_host()}~{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(final: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders that killed writers of `final` left beside it (this host's,
    whose process no longer runs); returns them. Called before every atomic write of `final`."""
    final = Path(final)
    head, host = f".{final.name}.", _host()
    try:
        entries = list(os.scandir(final.parent))
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for entry in entries:
        if not (entry.name.startswith(head) and entry.name.endswith(".tmp")):
            continue
        writer = _WRITER.fullmatch(entry.name[len(head) : -len(".tmp")])
        if writer is None or writer["host"] != host or _alive(int(writer["pid"])):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        removed.append(Path(entry.path))
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_if_created(path: Path, directory: bool = False) -> None:
    """Give `path`, which `tempfile` made private, the permissions of a freshly created file or folder under
    the current umask (what is written inside a folder already has them)."""
    mask = _umask()
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside `final`; rename it onto `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(final), suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            _as_if_created(tmp_path, directory=tmp_path.is_dir())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(final: str | os.PathLike, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside `final`; it replaces `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(final), suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        _as_if_created(tmp, directory=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
