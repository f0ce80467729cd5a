"""methods.core.code_digest: the digest of the code a job runs (workflow parameters, cache keys, checkpoints)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from methods.core.code_digest import (
    REPO,
    changed_files,
    code_digest,
    file_digests,
    import_closure,
    import_digest,
    source_files,
)


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A small checkout: a package with a lazy, a relative and a third-party import, data, docs, bytecode."""
    root = tmp_path / "checkout"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "splits").mkdir()
    (root / "pkg" / "__pycache__").mkdir()
    (root / "other").mkdir()
    files = {
        "pkg/__init__.py": "",
        "pkg/main.py": "import numpy\nfrom . import helper\n\ndef run():\n    from pkg.sub import lazy\n",
        "pkg/helper.py": "X = 1\n",
        "pkg/unused.py": "Y = 2\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/lazy.py": "from ..helper import X\n",
        "pkg/splits/train.txt": "video-a\nvideo-b\n",
        "pkg/README.md": "documentation\n",
        "pkg/__pycache__/main.cpython-312.pyc": "bytecode",
        "other/__init__.py": "",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_one_changed_byte_changes_the_digest(checkout):
    before = code_digest("pkg", root=checkout)
    helper = checkout / "pkg" / "helper.py"
    helper.write_text("X = 2\n")
    assert code_digest("pkg", root=checkout) != before
    helper.write_text("X = 1\n")
    assert code_digest("pkg", root=checkout) == before


def test_a_renamed_file_changes_the_digest(checkout):
    before = code_digest("pkg", root=checkout)
    (checkout / "pkg" / "unused.py").rename(checkout / "pkg" / "spare.py")
    assert code_digest("pkg", root=checkout) != before


def test_touching_a_file_does_not_change_the_digest(checkout):
    before = code_digest("pkg", root=checkout)
    for file in (checkout / "pkg").rglob("*"):
        os.utime(file, (1e9, 1e9))
    assert code_digest("pkg", root=checkout) == before


def test_moving_the_checkout_does_not_change_the_digest(checkout, tmp_path):
    moved = tmp_path / "elsewhere" / "clone"
    shutil.copytree(checkout, moved)
    assert code_digest("pkg", root=moved) == code_digest("pkg", root=checkout)
    assert import_digest("pkg.main", root=moved) == import_digest("pkg.main", root=checkout)
    # absolute paths name the same files as relative ones
    assert code_digest(moved / "pkg", root=moved) == code_digest("pkg", root=checkout)


def test_documentation_and_bytecode_do_not_count_but_data_files_do(checkout):
    names = {f.relative_to(checkout).as_posix() for f in source_files("pkg", root=checkout)}
    assert "pkg/splits/train.txt" in names and "pkg/main.py" in names
    assert not any(name.endswith((".md", ".pyc")) for name in names)
    before = code_digest("pkg", root=checkout)
    (checkout / "pkg" / "README.md").write_text("other documentation\n")
    assert code_digest("pkg", root=checkout) == before
    (checkout / "pkg" / "splits" / "train.txt").write_text("video-a\n")
    assert code_digest("pkg", root=checkout) != before


def test_the_import_closure_follows_the_checkouts_imports_only(checkout):
    names = {f.relative_to(checkout).as_posix() for f in import_closure("pkg.main", root=checkout)}
    assert names == {"pkg/__init__.py", "pkg/main.py", "pkg/helper.py", "pkg/sub/__init__.py", "pkg/sub/lazy.py",
                     "pkg/splits/train.txt"}  # not pkg/unused.py, not other/, not numpy
    before = import_digest("pkg.main", root=checkout)
    (checkout / "pkg" / "unused.py").write_text("Y = 3\n")
    assert import_digest("pkg.main", root=checkout) == before
    assert import_digest(checkout / "pkg" / "main.py", root=checkout) == before  # the file is its module
    (checkout / "pkg" / "sub" / "lazy.py").write_text("from ..helper import X as Z\n")
    assert import_digest("pkg.main", root=checkout) != before


def test_the_training_digests_cover_their_code_and_not_the_trackers():
    frtm = {f.relative_to(REPO).as_posix() for f in import_closure("methods.frtm.training")}
    assert {"methods/frtm/training.py", "methods/frtm/target_model.py", "methods/core/gauss_newton.py",
            "methods/core/trainer.py", "vos_datasets/build.py", "vos_datasets/splits/frtm_ytvos2018_jjtrain.txt"} <= frtm
    assert "methods/frtm/tracker.py" not in frtm and "methods/runner.py" not in frtm


def test_bad_paths_are_named(checkout, tmp_path):
    with pytest.raises(FileNotFoundError, match="pkg/missing.py does not exist"):
        code_digest("pkg/missing.py", root=checkout)
    (tmp_path / "outside.py").write_text("")
    with pytest.raises(ValueError, match="outside.py is outside the checkout"):
        code_digest(tmp_path / "outside.py", root=checkout)
    with pytest.raises(ValueError, match="no module pkg.absent"):
        import_digest("pkg.absent", root=checkout)


def test_the_digest_is_the_same_from_any_working_directory_and_needs_no_torch(tmp_path):
    script = ("import sys; from methods.core.code_digest import import_digest, code_digest; "
              "print(import_digest('methods.frtm.training'), code_digest('methods'), 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    output = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            check=True).stdout.split()
    assert output == [import_digest("methods.frtm.training"), code_digest("methods"), "False"]


CODE = '''"""A module."""

import math


def area(radius):
    """The area of a circle."""
    return math.pi * radius ** 2  # pi r squared
'''
SAME_CODE = {
    "a comment": CODE.replace("  # pi r squared", "  # the disc's area\n    # (radius in pixels)"),
    "a docstring": CODE.replace('"""The area of a circle."""', '"""The area of a disc,\n    any radius."""'),
    "the module's docstring removed": CODE.replace('"""A module."""\n', ""),
    "a reformat": CODE.replace("def area(radius):", "def area(\n    radius,\n):").replace(
        "return math.pi * radius ** 2", "return (math.pi\n            * radius**2)").replace("\n\n\ndef", "\ndef"),
}
OTHER_CODE = {
    "a computation": CODE.replace("radius ** 2", "radius ** 3"),
    "a renamed identifier": CODE.replace("radius", "r"),
    "a constant": CODE.replace("math.pi", "3.14"),
}


@pytest.mark.parametrize("edit", SAME_CODE)
def test_comments_docstrings_and_formatting_do_not_change_a_python_files_digest(checkout, edit):
    """A checkpoint's identity and the workflow's rerun parameters hold this digest: days of training must not
    be discarded for a comment."""
    source = checkout / "pkg" / "helper.py"
    source.write_text(CODE)
    before = code_digest("pkg", root=checkout), import_digest("pkg.main", root=checkout)
    source.write_text(SAME_CODE[edit])
    assert (code_digest("pkg", root=checkout), import_digest("pkg.main", root=checkout)) == before


@pytest.mark.parametrize("edit", OTHER_CODE)
def test_a_change_of_the_code_changes_a_python_files_digest(checkout, edit):
    source = checkout / "pkg" / "helper.py"
    source.write_text(CODE)
    before = code_digest("pkg", root=checkout)
    digests = file_digests("pkg", root=checkout)
    source.write_text(OTHER_CODE[edit])
    assert code_digest("pkg", root=checkout) != before
    assert changed_files(digests, file_digests("pkg", root=checkout)) == ["pkg/helper.py"]


def test_data_files_count_by_their_bytes(checkout):
    """A split's comment line (or a trailing blank) can change what is read: data is not normalised."""
    before = code_digest("pkg", root=checkout)
    (checkout / "pkg" / "splits" / "train.txt").write_text("video-a\nvideo-b\n\n")
    assert code_digest("pkg", root=checkout) != before


def test_a_file_that_does_not_parse_is_one_line_naming_it(checkout):
    (checkout / "pkg" / "helper.py").write_text("X = (1\n")
    with pytest.raises(ValueError, match=r"helper.py, line 1: .*fix the file") as raised:
        import_digest("pkg.main", root=checkout)
    assert "\n" not in str(raised.value)


def test_changed_files_names_edits_additions_and_removals():
    assert changed_files({"a.py": "1", "b.py": "2", "c.py": "3"}, {"a.py": "1", "b.py": "9", "d.py": "4"}) == [
        "b.py", "c.py", "d.py"]
