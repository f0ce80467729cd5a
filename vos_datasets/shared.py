"""Where the read-only shared material (real DAVIS data, official-toolkit fixtures) lives.

The project never copies ../shared; it reads it from the folder named by the environment variable
VOS_SHARED, or from ../shared beside the repository when that exists.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "VOS_SHARED"


def shared_dir() -> Path | None:
    """The shared folder, or None when it is not available (a plain clone)."""
    configured = os.environ.get(ENV_VAR)
    candidate = Path(configured) if configured else REPO_ROOT.parent / "shared"
    return candidate if candidate.is_dir() else None


def require_shared(*parts: str) -> Path:
    """A path inside the shared folder; raises FileNotFoundError saying how to provide it."""
    root = shared_dir()
    if root is None:
        raise FileNotFoundError(
            f"the shared data folder is not available: set {ENV_VAR}=/path/to/shared "
            f"or place it at {REPO_ROOT.parent / 'shared'}"
        )
    path = root.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist in the shared folder {root}")
    return path
