"""The diagnosis scripts' markdown output: printed, and appended to a record file when one is named."""

from __future__ import annotations

from pathlib import Path

from vos_datasets.fileio import atomic_write_text


def show_and_record(text: str, record: str | None) -> None:
    """Print `text`; with `record`, append it to that markdown file (written whole, atomically)."""
    print(text)
    if record:
        path = Path(record)
        previous = path.read_text() if path.exists() else ""
        atomic_write_text(path, previous + ("\n" if previous else "") + text)
