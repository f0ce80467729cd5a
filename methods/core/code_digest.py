"""A short digest of the code a job runs, so that a change of that code, and only of that code, is noticed.

The workflow gives it to a rule as a parameter (Snakemake reruns a job whose parameters changed), the
target-model cache puts it in its keys and a training's checkpoint identity includes it. Standard library
only: the workflow computes it while it parses, without torch.

What a digest covers: the files' paths relative to the checkout root and their bytes, in sorted order. Not
their modification times, not where the checkout lies: two clones of the same commit, on any machine, give
the same digest. Files that count: Python sources and the data files that packages read at run time
(DATA_SUFFIXES: the training splits in vos_datasets/splits/*.txt, reporting/published.yaml); not
documentation (*.md), not __pycache__.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout (or the site-packages an installed copy lies in)
DATA_SUFFIXES = frozenset({".yaml", ".yml", ".json", ".txt", ".csv", ".toml"})
SUFFIXES = DATA_SUFFIXES | {".py"}
SKIPPED_FOLDERS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})


def _under_root(path: str | Path, root: Path) -> Path:
    path = (root / path).resolve()  # a relative path is taken from the root, not from the working directory
    if not path.exists():
        raise FileNotFoundError(f"code digest: {path} does not exist; name files or folders of the checkout {root}")
    if not path.is_relative_to(root):
        raise ValueError(f"code digest: {path} is outside the checkout {root}; name files or folders inside it")
    return path


def _counted(path: Path) -> bool:
    return path.suffix in SUFFIXES and not SKIPPED_FOLDERS.intersection(path.parts)


def source_files(*paths: str | Path, root: str | Path | None = None) -> list[Path]:
    """The files a digest of `paths` covers (files as given, folders searched recursively), sorted."""
    root = Path(root or REPO).resolve()
    files: set[Path] = set()
    for given in paths:
        path = _under_root(given, root)
        if path.is_file():
            files.add(path)  # a file named explicitly counts whatever its suffix
        else:
            files.update(f for f in path.rglob("*") if f.is_file() and _counted(f.relative_to(root)))
    return sorted(files)


def code_digest(*paths: str | Path, root: str | Path | None = None) -> str:
    """16 hex digits of SHA-256 over the files under `paths` (names relative to `root`, the checkout by
    default; relative `paths` are taken from it)."""
    if not paths:
        raise ValueError("code digest: name at least one file or folder")
    root = Path(root or REPO).resolve()
    digest = hashlib.sha256()
    for file in source_files(*paths, root=root):
        content = file.read_bytes()
        # name and length first, so that moving bytes from one file to the next changes the digest
        digest.update(f"{file.relative_to(root).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:16]


# --- the code a module runs: itself and every module of the checkout it imports, transitively ---------------
def _module_file(name: str, root: Path) -> Path | None:
    """The checkout's file of module `name` (a package: its __init__.py); None for a module from elsewhere."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(file: Path, root: Path) -> str:
    parts = file.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(file: Path, root: Path) -> frozenset[str]:
    """Every module `file` may import, wherever the statement stands (in a function too: lazy imports run)."""
    stat = file.stat()  # the workflow asks for many jobs' digests while it parses: each file is parsed once
    return _parsed_imports(file, root, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _parsed_imports(file: Path, root: Path, mtime_ns: int, size: int) -> frozenset[str]:
    own = _module_name(file, root)
    package = own if file.name == "__init__.py" else own.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(file.read_bytes(), filename=str(file))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package, `level - 1` steps up
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from package import module`
    return frozenset(names)


def _with_parents(name: str) -> Iterable[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = name.split(".")
    return (".".join(parts[:k]) for k in range(1, len(parts) + 1))


def _package_data(folder: Path) -> set[Path]:
    """Data files a package may read: in its folder and its subfolders that are not packages themselves."""
    files = set()
    for entry in folder.iterdir():
        if entry.is_file() and entry.suffix in DATA_SUFFIXES:
            files.add(entry)
        elif entry.is_dir() and entry.name not in SKIPPED_FOLDERS and not (entry / "__init__.py").exists():
            files.update(f for f in entry.rglob("*") if f.is_file() and f.suffix in DATA_SUFFIXES)
    return files


def import_closure(*modules: str | Path, root: str | Path | None = None) -> list[Path]:
    """The checkout's files that running `modules` (dotted names, or .py files) may execute or read: the
    modules, their packages' __init__.py, every module of the checkout they import (transitively, lazy
    imports included; third-party ones are not followed) and the data files of the packages involved."""
    root = Path(root or REPO).resolve()
    pending: list[Path] = []
    for module in modules:
        # a file counts as its module does (`python -m pkg.mod` and `import pkg.mod` run the same code)
        name = _module_name(_under_root(module, root), root) if str(module).endswith(".py") else str(module)
        file = _module_file(name, root)
        if file is None:
            raise ValueError(f"code digest: no module {module} in the checkout {root}")
        pending.extend(f for n in _with_parents(name) if (f := _module_file(n, root)))
    seen: set[Path] = set()
    while pending:
        file = pending.pop()
        if file in seen:
            continue
        seen.add(file)
        for name in _imported_names(file, root):
            pending.extend(f for n in _with_parents(name) if (f := _module_file(n, root)) and f not in seen)
    data = set().union(*(_package_data(f.parent) for f in seen if f.name == "__init__.py"))
    return sorted(seen | data)


def import_digest(*modules: str | Path, root: str | Path | None = None) -> str:
    """code_digest of the import closure of `modules`: the digest of the code they run."""
    if not modules:
        raise ValueError("code digest: name at least one module")
    return code_digest(*import_closure(*modules, root=root), root=root)
