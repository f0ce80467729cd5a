"""The papers' published numbers (reporting/published.yaml): loading, checking, and looking a cell up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

PUBLISHED_FILE = Path(__file__).with_name("published.yaml")
METRICS = ("J&F-Mean", "J-Mean", "F-Mean", "G", "J-seen", "J-unseen", "F-seen", "F-unseen", "FPS")
BACKBONES = ("resnet18", "resnet50", "resnet101")


class PublishedTableError(ValueError):
    """reporting/published.yaml does not hold together (a row of the wrong length, an unknown source...)."""


@dataclass(frozen=True)
class Column:
    header: str
    benchmark: str
    metric: str


@dataclass(frozen=True)
class PublishedRow:
    label: str
    values: tuple[float | None, ...]
    source: str
    printed: tuple[str | None, ...]  # each value as the paper prints it ("0.00" stays "0.00")
    candidates: tuple[str, ...] = ()  # the reproduced row(s) (a preset's rows keys) placed beside it: the first
    # that ran on a column's evaluation fills the cell (e.g. LWL's DAVIS-fine-tuned row, else the main one)
    group: str | None = None
    flags: tuple[str, ...] = ()
    released: tuple[str, ...] = ()  # the row(s) running the authors' released weights (`released_row:`),
    # chosen per column like the candidates; their cells read "published / released / retrained"
    backbone: str | None = None  # the published model's backbone (`backbone:`), required beside `released_row:`
    # so that a released file is only set beside a figure of its own network (rn18 files: ResNet-18 rows)
    released_model: str | None = None  # `released_model:` where the released file is NOT the model the
    # figures are of (LWL's lwl_stage2 beside its DAVIS-fine-tuned figures): its part is labelled, no difference


@dataclass(frozen=True)
class PublishedTable:
    key: str
    title: str
    source: str
    columns: tuple[Column, ...]
    rows: tuple[PublishedRow, ...]
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Published:
    sources: dict
    benchmarks: dict
    tables: dict[str, PublishedTable] = field(default_factory=dict)

    def reproduced_rows(self) -> set[str]:
        """The retrained rows named by `row:`."""
        return {name for table in self.tables.values() for row in table.rows for name in row.candidates}

    def released_rows(self) -> set[str]:
        """The released-weights rows named by `released_row:`."""
        return {name for table in self.tables.values() for row in table.rows for name in row.released}


def _names(value: str | list | None) -> tuple[str, ...]:
    """A `row:` / `released_row:` entry: one name or a list of them."""
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def parse_values(raw: list, where: str) -> tuple[tuple[float | None, ...], tuple[str | None, ...]]:
    """Numbers of a published row and their printed text. A value whose printed form a YAML float would lose
    (trailing zeros: "0.00") is written as a quoted string."""
    values, printed = [], []
    for value in raw:
        if value is None:
            values.append(None)
            printed.append(None)
            continue
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            raise PublishedTableError(f"{where}: {value!r} is not a number (write null for a blank cell)") from None
        printed.append(str(value))
    return tuple(values), tuple(printed)


def load_published(path: str | Path = PUBLISHED_FILE) -> Published:
    path = Path(path)
    data = yaml.safe_load(path.read_text())
    sources, benchmarks = data["sources"], data["benchmarks"]
    tables = {}
    for key, spec in data["tables"].items():
        where = f"{path}: tables.{key}"
        columns = tuple(Column(**column) for column in spec["columns"])
        for column in columns:
            if column.benchmark not in benchmarks:
                raise PublishedTableError(f"{where}: column {column.header!r} names unknown benchmark "
                                          f"{column.benchmark!r}; known: {sorted(benchmarks)}")
            if column.metric not in METRICS:
                raise PublishedTableError(f"{where}: column {column.header!r} has metric {column.metric!r}; "
                                          f"one of {METRICS}")
        flags = tuple(spec.get("flags", ()))
        rows = []
        for index, row in enumerate(spec["rows"]):
            values, printed = parse_values(row["values"], f"{where}: row {index} ({row['label']!r})")
            if len(values) != len(columns):
                raise PublishedTableError(f"{where}: row {index} ({row['label']!r}) has {len(values)} values for "
                                          f"{len(columns)} columns")
            if len(row.get("flags", ())) not in (0, len(flags)):
                raise PublishedTableError(f"{where}: row {row['label']!r} needs {len(flags)} flags {list(flags)}")
            source = row.get("source", spec["source"])
            if source not in sources:
                raise PublishedTableError(f"{where}: row {row['label']!r} names unknown source {source!r}")
            candidates, released = _names(row.get("row")), _names(row.get("released_row"))
            if released and row.get("backbone") not in BACKBONES:
                raise PublishedTableError(f"{where}: row {row['label']!r} has a released_row but no backbone "
                                          f"(one of {BACKBONES}): the released file must be of the same network")
            if not candidates and not released and (row.get("backbone") or row.get("released_model")):
                raise PublishedTableError(f"{where}: row {row['label']!r} names a backbone or released_model "
                                          "but no row or released_row")
            rows.append(PublishedRow(label=row["label"], values=values, printed=printed, source=source,
                                     candidates=candidates, group=row.get("group"),
                                     flags=tuple(row.get("flags", ())), released=released,
                                     backbone=row.get("backbone"), released_model=row.get("released_model")))
        if spec["source"] not in sources:
            raise PublishedTableError(f"{where}: unknown source {spec['source']!r}")
        tables[key] = PublishedTable(key=key, title=spec["title"], source=spec["source"], columns=columns,
                                     rows=tuple(rows), flags=flags)
    return Published(sources=sources, benchmarks=benchmarks, tables=tables)
