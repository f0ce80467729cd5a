"""Settings dataclasses built from config dictionaries, refusing keys they do not know."""

from __future__ import annotations

from dataclasses import fields


def from_known_keys(cls, values: dict, what: str):
    """cls(**values), or a ValueError naming the unknown keys and the known ones ("unknown <what> [...]")."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known settings: {sorted(known)}")
    return cls(**values)
