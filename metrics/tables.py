"""The evaluator's CSV files: the official two (same names, columns and 3-decimal format) and two
full-precision ones of ours (per object with all six figures, and per frame), and the output set.

The files of one run form a set that is never mixed with another run's (see `write_output_set`):
protocol-<set>.json is written last and lists the SHA-256 of each CSV, so its presence means the
set is complete, and `check_output_set` verifies it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import hashlib
import io
import json
import math
import numbers
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from vos_datasets.fileio import atomic_path

from .davis import GLOBAL_COLUMNS, EvaluationResult
from .errors import EvaluationError

LOCK_NAME = ".metrics-output.lock"
_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def check_set_name(subset: str) -> None:
    """EvaluationError unless `subset` is a plain name (letters, digits, . _ + -, no separator): it goes into
    the file names, and a name such as x/../../gt/bear/evil would write outside the output folder."""
    if not isinstance(subset, str) or not _SET_NAME.fullmatch(subset):
        raise EvaluationError(f"--set {subset!r}: not a plain name; use letters, digits, '.', '_', '+' and '-' "
                              "only, starting with a letter or digit (e.g. val)")


def check_out_dir(out_dir: str | os.PathLike) -> None:
    """EvaluationError if `out_dir` cannot hold the tables: it is a file, a file lies on its path, or the
    nearest existing folder is not writable. Meant to run before any scoring."""
    out_dir = Path(out_dir)
    probe = out_dir
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if probe == out_dir and out_dir.exists() and not out_dir.is_dir():
        raise EvaluationError(f"--out {out_dir}: an existing file, not a folder; name a folder (it is created "
                              "if missing)")
    if not probe.is_dir():
        raise EvaluationError(f"--out {out_dir}: {probe} is not a folder; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise EvaluationError(f"--out {out_dir}: cannot write into {probe} (permissions); choose another --out")


def output_names(subset: str) -> dict[str, str]:
    return {
        "global": f"global_results-{subset}.csv",
        "per_sequence": f"per-sequence_results-{subset}.csv",
        "per_object": f"per-object_results-{subset}.csv",
        "per_frame": f"per-frame_results-{subset}.csv",
        "protocol": f"protocol-{subset}.json",
    }


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """An exclusive lock on out_dir (a lock file inside it), released when the block ends or the process dies."""
    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_output_set(out_dir: str | os.PathLike, files: Mapping[str, bytes]) -> dict[str, Path]:
    """Write `files` (name -> content, in order; the LAST one is the completion marker) into out_dir so that
    the files present never come from two runs.

    Under an exclusive lock on out_dir (two runs writing the same folder take turns, the later set wins
    whole), every file of the set is removed first, the marker first of all; then each is written whole
    (temporary file, then rename), the marker last. So at any moment the files present come from one run:
    all of them with the marker, or (a run killed while writing) some of them without it.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(files)
    with _exclusive(out_dir):
        for name in reversed(names):
            (out_dir / name).unlink(missing_ok=True)
        for name in names:
            with atomic_path(out_dir / name) as tmp:
                tmp.write_bytes(files[name])
    return {name: out_dir / name for name in names}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_tables(result: EvaluationResult, out_dir: str | Path, subset: str = "val",
                 provenance: dict | None = None) -> dict[str, Path]:
    """Write every table as one set (see `write_output_set`): the four CSVs, then protocol-<subset>.json,
    which records the SHA-256 of each CSV and marks the set complete. Returns the paths by kind."""
    check_set_name(subset)
    out_dir = Path(out_dir)
    names = output_names(subset)
    glob = result.global_statistics()
    objects = result.object_statistics()
    object_columns = ["Sequence", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    contents = {
        # The official toolkit writes its two CSVs with float_format="%.3f".
        names["global"]: csv_bytes(GLOBAL_COLUMNS, [glob], "%.3f"),
        names["per_sequence"]: csv_bytes(["Sequence", "J-Mean", "F-Mean"], objects, "%.3f"),
        names["per_object"]: csv_bytes(object_columns, objects),
        names["per_frame"]: csv_bytes(["Sequence", "Object", "Frame", "J", "F"], result.per_frame()),
    }
    info = {"protocol": dataclasses.asdict(result.protocol), "global": glob}
    matching = {f"{seq.sequence}_{row}": {"proposal": proposal, "object": obj}
                for seq in result.sequences for row, (proposal, obj) in seq.matches.items()}
    if matching:  # the unsupervised task: which proposal and which annotated object each row holds
        info["matching"] = matching
    info.update(provenance or {})
    info["files"] = {name: _digest(data) for name, data in contents.items()}
    contents[names["protocol"]] = json.dumps(info, indent=2).encode()
    written = write_output_set(out_dir, contents)
    return {kind: written[name] for kind, name in names.items()}


def csv_bytes(columns: Sequence[str], rows: Sequence[Mapping], float_format: str | None = None) -> bytes:
    """The CSV that pandas writes for these rows (`DataFrame(rows, columns=columns).to_csv(index=False,
    float_format=float_format, lineterminator="\\n")`, byte for byte: the same csv writer, floats as
    `float_format % x` or else their shortest repr, NaN as an empty field), without importing pandas,
    whose import is a large share of a cold run's time."""
    def cell(value: object) -> object:
        if isinstance(value, numbers.Integral) or not isinstance(value, numbers.Real):
            return value
        value = float(value)
        if math.isnan(value):
            return ""
        return float_format % value if float_format else repr(value)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([cell(row[column]) for column in columns] for row in rows)
    return out.getvalue().encode()


def check_output_set(out_dir: str | os.PathLike, subset: str = "val") -> dict[str, Path]:
    """The paths of a complete, unmixed set written by `write_tables`; EvaluationError naming the file if
    protocol-<subset>.json is absent (the run was interrupted) or a CSV differs from the one it lists."""
    check_set_name(subset)
    out_dir = Path(out_dir)
    names = output_names(subset)
    marker = out_dir / names["protocol"]
    try:
        listed = json.loads(marker.read_text())["files"]
    except FileNotFoundError as err:
        raise EvaluationError(f"{marker}: absent, so the tables in {out_dir} are not a complete set "
                              "(an interrupted run?); evaluate again") from err
    except (ValueError, KeyError, TypeError) as err:
        raise EvaluationError(f"{marker}: no list of files ({err}); evaluate again") from err
    for kind, name in names.items():
        if kind == "protocol":
            continue
        path = out_dir / name
        if not path.is_file() or _digest(path.read_bytes()) != listed.get(name):
            raise EvaluationError(f"{path}: missing or not the file {marker.name} lists (another run's?); "
                                  "evaluate again")
    return {kind: out_dir / name for kind, name in names.items()}
