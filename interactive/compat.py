"""The DAVIS interactive package (`davisinteractive` 1.0.4, GPL-3.0: imported, never copied) on today's stack.

`load_davisinteractive()` imports the package once and applies every shim below before anything of it runs;
the rest of the suite gets the package's modules only from there. Each shim is named, does one thing at the
narrowest point, and has a test in tests/test_interactive_compat.py that fails without it:

- numpy_aliases: the package calls `np.int`, `np.float` (removed in numpy 1.24) and `np.trapz` (removed in
  numpy 2.4). Its modules see a numpy that has them (numpy itself is left as it is, so the suite's own code
  cannot come to rely on them); a name numpy still has is never replaced.
- networkx_sparse: the robot calls `networkx.from_scipy_sparse_matrix`, renamed `from_scipy_sparse_array` in
  networkx 3.
- pandas_summary: `EvaluationService.summarize_report` takes the group-by mean of a report that still holds the
  string column `session_id`; pandas < 2 dropped it silently, pandas >= 2 refuses. And the session's report
  keeps the object dtype of the empty table its rows are concatenated onto (pandas >= 2 no longer ignores an
  empty frame's dtypes in concat), which np.interp refuses. The column is dropped first (the package drops it
  right after the mean: the figures are the same) and the columns get the dtypes of their values (the
  measures float even in an empty report: every sample past its time).
- pandas_reconstruction: `EvaluationService._reconstruct_report` (a timed-out sample's missing interactions
  take the previous one's results with timing 0) keeps `.values` of a `df.loc` selection and zeroes its timing
  column. pandas < 3 gave a copy there; pandas 3 (copy-on-write) gives a read-only view, and the assignment
  fails. The report it works on hands out copies again.
- pinned_robot: see `LegacyTieBreak`.
- no_download: the package's `Davis` downloads the scribbles or the whole DAVIS 2017 archive, unasked, when a
  file is missing. The runner checks every file first (interactive.session); this makes a download impossible.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import sys
import types
from dataclasses import dataclass

import numpy as np
import pandas as pd

SETUP_HINT = "make interactive-setup"
PACKAGE = "davisinteractive"

# What the runner, the summary and the stand-in builder use of the package (importing these loads it all).
MODULES = (
    "davisinteractive.dataset.davis",
    "davisinteractive.evaluation.service",
    "davisinteractive.robot.interactive_robot",
    "davisinteractive.session.session",
    "davisinteractive.utils.scribbles",
    "davisinteractive.storage.local",
    "davisinteractive.connector.local",
)

# The report's measures (davisinteractive.storage.abstract.AbstractStorage.COLUMNS).
REPORT_MEASURES = ("jaccard", "contour", "j_and_f", "timing")

# Names the package takes from numpy that numpy no longer has, and what they were.
NUMPY_ALIASES = {"int": int, "float": float, "bool": bool, "trapz": getattr(np, "trapezoid", None)}


class MissingPackageError(RuntimeError):
    """davisinteractive is not installed; the message names the fix."""


class DownloadRefused(RuntimeError):
    """The package tried to download data; the suite downloads only when asked (download-scribbles)."""


@dataclass(frozen=True)
class DavisInteractive:
    """The package's pieces, after every shim has been applied."""

    Davis: type
    EvaluationService: type
    DavisInteractiveSession: type
    InteractiveScribblesRobot: type
    ROBOT_DEFAULT_PARAMETERS: dict
    scribbles2mask: types.FunctionType
    robot_module: types.ModuleType
    version: str


# --- the shims --------------------------------------------------------------------------------------------


def _missing_numpy_names() -> dict:
    return {name: value for name, value in NUMPY_ALIASES.items() if value is not None and not hasattr(np, name)}


class _NumpyWithAliases(types.ModuleType):
    """numpy, plus the removed names the package uses (looked up in numpy first)."""

    def __init__(self, aliases: dict) -> None:
        super().__init__("numpy")
        self.__dict__.update(aliases)

    def __getattr__(self, name: str):
        return getattr(np, name)


@contextlib.contextmanager
def _aliases_while_importing(aliases: dict):
    """numpy with the aliases while the package is imported: a default argument of `Davis.load_annotations`
    (`dtype=np.int`) is evaluated then. Removed again afterwards."""
    for name, value in aliases.items():
        setattr(np, name, value)
    try:
        yield
    finally:
        for name in aliases:
            delattr(np, name)


def numpy_aliases(modules: list[types.ModuleType], aliases: dict) -> None:
    proxy = _NumpyWithAliases(aliases)
    for module in modules:
        if getattr(module, "np", None) is np:
            module.np = proxy


def networkx_sparse(robot_module: types.ModuleType) -> None:
    nx = robot_module.nx
    if not hasattr(nx, "from_scipy_sparse_matrix"):
        proxy = types.ModuleType("networkx")
        proxy.__getattr__ = lambda name: getattr(nx, name)
        proxy.from_scipy_sparse_matrix = nx.from_scipy_sparse_array
        robot_module.nx = proxy


def pandas_summary(service_class: type) -> None:
    original = service_class.summarize_report
    if getattr(original, "_drops_session_id", False):
        return

    @functools.wraps(original)
    def summarize_report(self, df):
        df = df.drop(columns="session_id", errors="ignore").infer_objects()
        return original(self, df.astype({column: float for column in REPORT_MEASURES if column in df}))

    summarize_report._drops_session_id = True
    service_class.summarize_report = summarize_report


class _ValuesCopied(pd.DataFrame):
    """A DataFrame, and every frame taken from it, whose `.values` is a writable copy (pandas < 3)."""

    @property
    def _constructor(self):
        return _ValuesCopied

    @property
    def values(self):
        return super().values.copy()


def pandas_reconstruction(service_class: type) -> None:
    original = service_class._reconstruct_report
    if getattr(original, "_values_copied", False):
        return

    @functools.wraps(original)
    def _reconstruct_report(self, df):
        return pd.DataFrame(original(self, _ValuesCopied(df)))

    _reconstruct_report._values_copied = True
    service_class._reconstruct_report = _reconstruct_report


class LegacyTieBreak(np.random.Generator):
    """The tie-break of `skimage.morphology.medial_axis` before scikit-image 0.19.

    medial_axis removes pixels in the order of their distance to the background, then their cornerness, then a
    random tie-break. Up to 0.18 that tie-break was `np.random.RandomState(0).permutation(np.arange(n))`, the
    same on every call; from 0.19 it is `np.random.default_rng(rng).permutation(...)`, with `rng=None` a fresh
    unseeded generator, so the robot's skeleton, hence its scribble, changes from run to run (two identical
    sessions diverge from interaction 2). Nothing else of medial_axis changed between 0.18.3 and 0.26 (its
    helpers _skeletonize_loop, _table_lookup and _pattern_of neither, but for formatting). A seed
    (`rng=0`) would make it repeatable but not the robot the benchmark was built with: Generator.permutation
    shuffles differently from RandomState.permutation. This generator, passed as `rng` (default_rng hands a
    Generator back unchanged), returns exactly the old permutation, drawn afresh from RandomState(0) each call.
    """

    def __init__(self) -> None:
        super().__init__(np.random.PCG64(0))  # unused: permutation below is the only draw medial_axis makes

    def permutation(self, x, axis=0):
        return np.random.RandomState(0).permutation(x)


def pinned_robot(robot_module: types.ModuleType) -> None:
    medial_axis = robot_module.medial_axis
    if getattr(medial_axis, "_legacy_tie_break", False):
        return
    if "rng" not in inspect.signature(medial_axis).parameters:  # scikit-image < 0.19: RandomState(0) already
        return
    pinned = functools.partial(medial_axis, rng=LegacyTieBreak())
    pinned._legacy_tie_break = True
    robot_module.medial_axis = pinned


def no_download(davis_class: type) -> None:
    def refuse(self, *args, **kwargs):
        raise DownloadRefused(
            f"{self.davis_root}: a DAVIS file is missing and the package tried to download it; the suite "
            "downloads nothing unasked: run `python -m interactive download-scribbles` (or build a stand-in)"
        )

    davis_class._download_scribbles = refuse
    davis_class._download_annotations = refuse


# --- loading ----------------------------------------------------------------------------------------------


def package_modules() -> list[types.ModuleType]:
    return [module for name, module in sorted(sys.modules.items())
            if module is not None and (name == PACKAGE or name.startswith(PACKAGE + "."))]


@functools.cache
def load_davisinteractive() -> DavisInteractive:
    """The package with every shim applied (once per process); MissingPackageError when not installed."""
    if importlib.util.find_spec(PACKAGE) is None:
        raise MissingPackageError(f"the DAVIS interactive package ({PACKAGE} 1.0.4) is not installed: run "
                                  f"`{SETUP_HINT}` (the optional extra `interactive`)")
    aliases = _missing_numpy_names()
    with _aliases_while_importing(aliases):
        loaded = {name: importlib.import_module(name) for name in MODULES}
    numpy_aliases(package_modules(), aliases)
    robot_module = loaded["davisinteractive.robot.interactive_robot"]
    service_module = loaded["davisinteractive.evaluation.service"]
    davis_module = loaded["davisinteractive.dataset.davis"]
    networkx_sparse(robot_module)
    pandas_summary(service_module.EvaluationService)
    pandas_reconstruction(service_module.EvaluationService)
    pinned_robot(robot_module)
    no_download(davis_module.Davis)
    return DavisInteractive(
        Davis=davis_module.Davis,
        EvaluationService=service_module.EvaluationService,
        DavisInteractiveSession=loaded["davisinteractive.session.session"].DavisInteractiveSession,
        InteractiveScribblesRobot=robot_module.InteractiveScribblesRobot,
        ROBOT_DEFAULT_PARAMETERS=dict(service_module.ROBOT_DEFAULT_PARAMETERS),
        scribbles2mask=loaded["davisinteractive.utils.scribbles"].scribbles2mask,
        robot_module=robot_module,
        version=importlib.import_module(PACKAGE).__version__,
    )
