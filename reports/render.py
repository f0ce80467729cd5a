"""Render reports/tables.md from a preset's summary: a provenance header, then one table per evaluation."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from pathlib import Path

import pandas as pd

from vos_datasets.fileio import atomic_write_text

SHOWN = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]


def git_commit(repo: Path) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def hardware() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"GPU {torch.cuda.get_device_name(0)}; CPU {platform.machine()}"
    except ImportError:
        pass
    import os

    return f"CPU only: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def render(summary: pd.DataFrame, preset: str, description: str, datasets: dict, repo: Path) -> str:
    lines = [
        "# Reproduced tables",
        "",
        f"- **Preset:** `{preset}`: {description}",
        "- **Data:** " + "; ".join(f"`{name}` ({spec.get('kind')}"
                                    + (f", {spec['root']}" if spec.get("root") else "") + ")"
                                    for name, spec in datasets.items()),
        f"- **Hardware:** {hardware()}",
        f"- **Commit:** {git_commit(repo)}",
        f"- **Date:** {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        "Figures are percentages (J, F as in the DAVIS toolkit x 100); FPS is the mean over sequences of "
        "frames per second of the method alone (PNG writing excluded), on the hardware above.",
        "",
    ]
    for evaluation, group in summary.groupby("evaluation", sort=False):
        lines += [f"## {evaluation}", ""]
        header = ["Method", *SHOWN, "FPS", "Objects"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for _, row in group.iterrows():
            cells = [str(row["label"])] + [f"{100 * row[c]:.1f}" for c in SHOWN]
            cells += [f"{row['FPS']:.1f}", str(int(row["objects"]))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Published numbers beside these rows arrive with the method issues (FRTM, LWL); this table lists "
              "what this preset reproduced.", ""]
    return "\n".join(lines)


def write(text: str, out: str | Path) -> None:
    atomic_write_text(out, text)
