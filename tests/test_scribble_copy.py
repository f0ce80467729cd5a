"""methods.scribble_copy, the interactive track's lower bound, and its entry in the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from methods import registry
from methods.scribble_copy import ScribbleCopy, dilated_labels


class Frames:
    """What start() reads of a sequence: its frames and size."""

    def __init__(self, count: int, height: int, width: int) -> None:
        self.frames = tuple(Path(f"{index:05d}.jpg") for index in range(count))
        self.size = (height, width)


def scribble(height: int, width: int, lines: dict[int, tuple[int, slice]]) -> np.ndarray:
    """-1 everywhere but horizontal lines: label -> (row, columns)."""
    labels = np.full((height, width), -1, np.int64)
    for label, (row, cols) in lines.items():
        labels[row, cols] = label
    return labels


def test_a_scribble_is_dilated_to_the_nearest_label_within_the_radius():
    labels = scribble(21, 30, {1: (5, slice(5, 10)), 2: (9, slice(5, 10))})
    painted = dilated_labels(labels, 3)
    assert painted[2, 7] == 1 and painted[1, 7] == -1  # 3 rows above object 1's line: in; 4: out
    assert painted[7, 7] == 1 and painted[8, 7] == 2  # between the lines: the nearer one
    assert painted[12, 7] == 2 and painted[13, 7] == -1
    assert (dilated_labels(labels, 0) == labels).all()  # radius 0: the scribble alone
    assert (dilated_labels(np.full((4, 4), -1), 5) == -1).all()


def test_the_first_scribble_reaches_every_frame_and_later_ones_are_copied_onward():
    method = ScribbleCopy(dilation_radius=1)
    method.start(Frames(4, 12, 16))
    first = method.interact(2, scribble(12, 16, {1: (3, slice(2, 12))}))
    assert first.shape == (4, 12, 16) and first.dtype == np.uint8
    assert all((first[t, 2:5, 2:12] == 1).all() and first[t].sum() == 32 for t in range(4))  # + both ends
    # interaction 2 on frame 1: a background scribble erases, an object 2 scribble adds, from frame 1 on
    second = method.interact(1, scribble(12, 16, {0: (3, slice(2, 7)), 2: (9, slice(0, 4))}))
    assert (second[0] == first[0]).all()
    for t in (1, 2, 3):
        assert (second[t, 2:5, 2:7] == 0).all() and second[t, 3, 7] == 0 and (second[t, 2:5, 8:12] == 1).all()
        assert (second[t, 8:11, 0:4] == 2).all() and second[t, 9, 4] == 2
    method.start(Frames(2, 12, 16))  # a new sample starts afresh
    assert (method.interact(1, scribble(12, 16, {1: (0, slice(0, 1))}))[0, 0, 0:2] == 1).all()


def test_bad_settings_and_calls_are_refused():
    with pytest.raises(ValueError, match="dilation_radius=-1 must be 0 or more"):
        ScribbleCopy(dilation_radius=-1)
    with pytest.raises(ValueError, match="unknown scribble_copy setting"):
        ScribbleCopy(radius=3)
    method = ScribbleCopy()
    with pytest.raises(RuntimeError, match="before start"):
        method.interact(0, np.full((4, 4), -1))
    method.start(Frames(2, 4, 4))
    with pytest.raises(ValueError, match="scribble of size"):
        method.interact(0, np.full((5, 4), -1))


def test_the_registry_names_it_as_an_interactive_method():
    entry = registry.interactive_method("scribble_copy")
    assert registry.load(entry.method) is ScribbleCopy
    assert registry.interactive_settings("scribble_copy", {}).dilation_radius == 8
    with pytest.raises(ValueError, match="unknown interactive method 'first_frame_copy'"):
        registry.interactive_method("first_frame_copy")  # a semi-supervised method, not an interactive one
    assert {"scribble_copy", "frtm", "lwl"} <= set(registry.INTERACTIVE_METHODS)
    assert len(registry.interactive_code_digest("scribble_copy")) == 16
