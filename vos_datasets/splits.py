"""YouTube-VOS train-set splits of the papers' ablation tables (lists of video ids).

Copies of the official lists ship in vos_datasets/splits/ (they are data, released with the papers'
code): `frtm_ytvos2018_jjvalid` (the 300 held-out videos of FRTM Table 1) and `frtm_ytvos2018_jjtrain`,
`lwl_ytvos2019_jjvalid` (LWL Table 1) and `lwl_ytvos2019_jjtrain`.
"""

from __future__ import annotations

from pathlib import Path

SPLIT_DIR = Path(__file__).resolve().parent / "splits"


def available_splits() -> list[str]:
    return sorted(p.stem for p in SPLIT_DIR.glob("*.txt"))


def read_split(name_or_path: str | Path) -> list[str]:
    """Video ids of a named ablation split (see available_splits()) or of a split file."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SPLIT_DIR / f"{name_or_path}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"unknown split {name_or_path!r}; known splits: {available_splits()}")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path}: repeated video ids")
    return ids
