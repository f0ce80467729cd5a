"""Settings dataclasses built from config dictionaries, refusing keys they do not know and values of the
wrong type (the dataclasses themselves convert nothing: a quoted "8" would reach the method as text)."""

from __future__ import annotations

import difflib
import numbers
import reprlib
import types
import typing
from dataclasses import dataclass, fields
from functools import cache


class SettingError(ValueError):
    """A setting refused by name: `key` lets the workflow say which config file set it."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def from_known_keys(cls, values: dict, what: str):
    """cls(**values), or a SettingError naming the unknown key ("unknown <what> [...]") and the known ones,
    or the value whose type is not its field's annotation."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SettingError(
            f"unknown {what} {unknown}{hint}; known settings: {', '.join(sorted(known))}", unknown[0]
        )
    hints = _field_types(cls)
    for key, value in values.items():
        if not _fits(value, hints[key]):
            raise SettingError(
                f"{what}: {key}={_short(value)} is {_kind(value)}, expected {_expected(hints[key])}"
                f"{_quoted_number_hint(value)}",
                key,
            )
    return cls(**values)


@cache
def _field_types(cls) -> dict:
    return typing.get_type_hints(cls)  # the annotations are strings (`from __future__ import annotations`)


def _fits(value, hint) -> bool:
    """Whether `value` (as YAML or JSON gives it) is of the annotated type: int, float (an int is a number
    too), str, bool, None, list[...] (a tuple too), dict[...] and unions of them; anything else passes."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # bool is an int to Python, never a count to a config
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is list or origin is list:
        return isinstance(value, list | tuple) and all(_fits(item, args[0]) for item in value if args)
    if hint is dict or origin is dict:
        return isinstance(value, dict) and all(_fits(item, args[1]) for item in value.values() if args)
    return True


_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    type(None): "null",
    list: "a list",
    dict: "a mapping",
}


def _expected(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(arg) for arg in args)
    if origin is list and args:
        return f"a list of {_PLURALS.get(args[0], 'values')}"
    return _NAMES.get(origin or hint, str(hint))


_PLURALS = {int: "integers", float: "numbers", str: "strings", dict: "mappings"}


def _kind(value) -> str:
    return next((name for kind, name in _NAMES.items() if type(value) is kind), type(value).__name__)


def _short(value) -> str:
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = 60
    return shortener.repr(value)


def _quoted_number_hint(value) -> str:
    """YAML 1.1 (PyYAML) reads 1e-3 as a string (a float needs a dot: 1.0e-3); say so where that is likely."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (a number in quotes? YAML reads 1e-3 as text: write 1.0e-3)"


@dataclass
class ScribbleSettings:
    """How an interactive tracker turns a user's scribbles into training labels (methods.core.scribbles); the
    interactive FRTM and LWL settings add these to their method's own. Torch-free."""

    # every scribble is widened to this many pixels (at the frames' size) around it, each pixel taking the
    # label of the nearest scribbled one: the robot's 1-pixel scribbles lie well inside the region they mark
    scribble_dilation: int = 2
    # from the second interaction on, the masks of the interacted frame the tracker gave before: used as labels
    # with this loss weight wherever the new scribbles do not contradict them; 0, the default: scribbles only
    # (the previous masks also keep the rest of the error the robot corrects: docs/interactive-methods.md)
    previous_masks_weight: float = 0.0
    # weak negatives: the pixels no scribble or previous mask labels, outside this multiple of the box of an
    # object's scribble, are its background with this loss weight (null: none)
    weak_negatives_box_scale: float | None = 1.5
    weak_negatives_weight: float = 0.1

    def validate_scribbles(self, what: str) -> None:
        def need(condition: bool, message: str) -> None:
            if not condition:
                raise SettingError(f"{what} setting {message}", message.partition("=")[0])

        need(self.scribble_dilation >= 0, f"scribble_dilation={self.scribble_dilation}: 0 or more pixels")
        need(0 <= self.previous_masks_weight <= 1, f"previous_masks_weight={self.previous_masks_weight}: in [0, 1]")
        need(self.weak_negatives_box_scale is None or self.weak_negatives_box_scale >= 1,
             f"weak_negatives_box_scale={self.weak_negatives_box_scale}: 1 or more, or null for no weak negatives")
        need(0 < self.weak_negatives_weight <= 1, f"weak_negatives_weight={self.weak_negatives_weight}: in (0, 1]")
