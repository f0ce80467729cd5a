"""methods.core.code_digest: the digest of the code a job runs (workflow parameters, cache keys, checkpoints)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from methods.core.code_digest import REPO, code_digest, import_closure, import_digest, source_files


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
