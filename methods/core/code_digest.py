"""A short digest of the code a job runs, so that a change of that code, and only of that code, is noticed.

The workflow gives it to a rule as a parameter (Snakemake reruns a job whose parameters changed), the
target-model cache puts it in its keys and a training's checkpoint identity includes it. Standard library
only: the workflow computes it while it parses, without torch.

What a digest covers: the files' paths relative to the checkout root and each file's own digest, in sorted
order. Not their modification times, not where the checkout lies: two clones of the same commit, on any
machine, give the same digest. Files that count: Python sources and the data files that packages read at run
time (DATA_SUFFIXES: the training splits in vos_datasets/splits/*.txt, reporting/published.yaml); not
documentation (*.md), not __pycache__.

A Python file's digest is that of its code, not of its text: its syntax tree (ast.parse) without docstrings
and other bare string statements, written out without line numbers (code_text). So comments, docstrings,
blank lines and formatting (line breaks, parentheses, quotes, trailing commas) change nothing, while any
change of what runs does, a renamed identifier (a local variable too) included: the digest does not judge
which code changes are harmless (trainings can be told to keep their checkpoints across one: the setting
keep_checkpoints_across_code_changes). A data file's digest is that of its bytes.
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

# "1": a training resumes a checkpoint of its settings written by other code (the trainer's
# --keep-checkpoint-on-code-change; the workflow sets it from keep_checkpoints_across_code_changes)
KEEP_CHECKPOINTS_VARIABLE = "VOS_KEEP_CHECKPOINTS_ACROSS_CODE_CHANGES"


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
    default; relative `paths` are taken from it): their names and file_digest."""
    if not paths:
        raise ValueError("code digest: name at least one file or folder")
    return combined_digest(file_digests(*paths, root=root))


def file_digests(*paths: str | Path, root: str | Path | None = None) -> dict[str, str]:
    """{name relative to `root`: file_digest} of the files under `paths`, in sorted order."""
    root = Path(root or REPO).resolve()
    return {file.relative_to(root).as_posix(): file_digest(file) for file in source_files(*paths, root=root)}


def combined_digest(digests: dict[str, str]) -> str:
    """The digest of files given as file_digests gives them."""
    digest = hashlib.sha256()
    for name, file in sorted(digests.items()):
        digest.update(f"{name}\0{file}\n".encode())  # a file's name with its digest: a move changes the digest
    return digest.hexdigest()[:16]


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The names whose digest differs between two file_digests, added and removed files included, sorted."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def file_digest(file: Path) -> str:
    """16 hex digits of SHA-256 over a Python file's code (code_text) or any other file's bytes."""
    return _python_file(file)[0] if file.suffix == ".py" else _data_digest(file, *_version(file))


def _version(file: Path) -> tuple[int, int]:
    """What tells an edited file from the one read before (the workflow asks for many jobs' digests while it
    parses: each file is read and parsed once)."""
    stat = file.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.cache
def _data_digest(file: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()[:16]


def _python_file(file: Path) -> tuple[str, tuple[tuple[int, str, tuple[str, ...]], ...]]:
    """(file_digest, the file's imports as (level, module, imported names)) of a Python file."""
    return _parsed_python_file(file, *_version(file))


@functools.cache
def _parsed_python_file(file: Path, mtime_ns: int, size: int) -> tuple[str, tuple[tuple[int, str, tuple[str, ...]], ...]]:
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except SyntaxError as err:
        raise ValueError(f"code digest: {file}, line {err.lineno}: {err.msg}; fix the file (it does not parse as Python)") from None
    imports = []
    for node in ast.walk(tree):  # wherever the statement stands (in a function too: lazy imports run)
        if isinstance(node, ast.Import):
            imports.extend((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.level, node.module or "", tuple(alias.name for alias in node.names)))
    return hashlib.sha256(code_text(tree).encode()).hexdigest()[:16], tuple(imports)


def code_text(tree: ast.AST) -> str:
    """A syntax tree as text without what does not run: no line and column numbers, no docstrings nor other
    bare string statements (they only set __doc__, which this checkout reads for help texts alone), no
    spelling of a string's prefix. Fields that are None or empty are left out, so that the text of the same
    code stays the same across the Python versions that add such fields (3.12's type_params)."""
    parts: list[str] = []
    _write_node(tree, parts)
    return "".join(parts)


def _is_bare_string(node: object) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _write_node(node: object, parts: list[str]) -> None:
    if isinstance(node, ast.AST):
        parts.append(type(node).__name__)
        parts.append("(")
        for name, value in ast.iter_fields(node):
            if value is None or (isinstance(value, list) and not value) or name == "kind":
                continue
            parts.append(name)
            parts.append("=")
            _write_node(value, parts)
            parts.append(",")
        parts.append(")")
    elif isinstance(node, list):
        parts.append("[")
        for item in node:
            if not _is_bare_string(item):
                _write_node(item, parts)
                parts.append(",")
        parts.append("]")
    else:
        parts.append(repr(node))


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
    own = _module_name(file, root)
    package = own if file.name == "__init__.py" else own.rpartition(".")[0]
    names = set()
    for level, module, imported in _python_file(file)[1]:
        if level:  # relative: from the package, `level - 1` steps up
            anchor = package.split(".")[: len(package.split(".")) - (level - 1)]
            base = ".".join(anchor + ([module] if module else []))
        else:
            base = module
        names.add(base)
        names.update(f"{base}.{name}" for name in imported)  # `from package import module`
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
    return combined_digest(import_file_digests(*modules, root=root))


def import_file_digests(*modules: str | Path, root: str | Path | None = None) -> dict[str, str]:
    """file_digests of the import closure of `modules` (a checkpoint records them: changed_files names what
    changed since)."""
    if not modules:
        raise ValueError("code digest: name at least one module")
    return file_digests(*import_closure(*modules, root=root), root=root)
