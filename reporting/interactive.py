"""The DAVIS interactive track's table and plots (reports/<preset>/interactive.md, figures/interactive-*.png).

Each session's summary.json (`python -m interactive session`) gives J&F per interaction (the hardware-free result),
the AUC and J&F@60s of the curve of J&F against time, and the device it ran on. The table sets the published
methods (reporting/published_interactive.yaml) beside them, with the measure each was published in (J or J&F),
its source and how it was verified. AUC and J&F@60s depend on the hardware: measured on a CPU they read "(CPU)"
and no difference with a published GPU figure is taken; on a stand-in dataset nothing is compared at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from vos_datasets.fileio import atomic_write_text  # noqa: E402

from .plots import save  # noqa: E402

PUBLISHED_INTERACTIVE = Path(__file__).with_name("published_interactive.yaml")
MEASURES = ("J&F", "J")
VERIFICATIONS = {
    "source-file": "read in the authors' published file",
    "paper": "read in the paper",
    "secondary": "secondary source only",
}


class InteractiveSummaryError(ValueError):
    """A session's summary.json or the published file lacks what the table needs."""


@dataclass(frozen=True)
class Session:
    """One session's figures, in percent."""

    name: str
    label: str
    per_interaction: tuple[float, ...]
    auc: float
    at_60s: float
    curve_time: tuple[float, ...]
    curve: tuple[float, ...]
    device: str
    threads: int | None
    dataset_label: str
    standin: bool
    weights: str | None = None  # the weights file its settings name (`checkpoint`), None: none
    note: str | None = None

    @property
    def seconds_per_interaction(self) -> float:
        """The method's mean time an interaction of a sample (the curve's time at the last interaction / their count)."""
        return self.curve_time[len(self.per_interaction)] / len(self.per_interaction)


def load_session(path: Path, name: str, label: str, note: str | None = None) -> Session:
    try:
        summary = json.loads(Path(path).read_text())
        rows = sorted(summary["per_interaction"], key=lambda row: row["interaction"])
        dataset = summary["dataset"]
        return Session(
            name=name,
            label=label,
            per_interaction=tuple(100 * row["J&F"] for row in rows),
            auc=100 * summary["auc"],
            at_60s=100 * summary["jf_at_60s"],
            curve_time=tuple(summary["curve"]["time"]),
            curve=tuple(100 * value for value in summary["curve"]["J&F"]),
            device=str(summary.get("device", "unknown")),
            threads=summary.get("threads"),
            dataset_label=str(dataset.get("label") or dataset.get("root")),
            standin=bool(dataset.get("standin")),
            weights=(summary.get("settings") or {}).get("checkpoint"),
            note=note,
        )
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InteractiveSummaryError(
            f"{path}: not a session summary ({type(err).__name__}: {err}); rerun its interactive_session job"
        ) from None


def load_published(path: Path = PUBLISHED_INTERACTIVE) -> dict:
    published = yaml.safe_load(Path(path).read_text())
    for method in published["methods"]:
        problems = [key for key in ("name", "measure", "auc", "at_60s", "verified", "source") if key not in method]
        if method.get("measure") not in MEASURES:
            problems.append(f"measure {method.get('measure')!r} (one of {', '.join(MEASURES)})")
        if method.get("verified") not in VERIFICATIONS:
            problems.append(f"verified {method.get('verified')!r} (one of {', '.join(VERIFICATIONS)})")
        curve = method.get("per_interaction")
        if curve is not None and len(curve) != 8:
            problems.append(f"per_interaction has {len(curve)} values, not 8")
        if problems:
            raise InteractiveSummaryError(f"{path}: method {method.get('name')!r}: {'; '.join(map(str, problems))}")
    return published


def _on_gpu(device: str) -> bool:
    return device.startswith("cuda")


def _timed(value: float, session: Session, digits: int = 1) -> str:
    """A hardware-dependent figure, marked with the device kind where it is not a GPU's."""
    return f"{value:.{digits}f}" if _on_gpu(session.device) else f"{value:.{digits}f} (CPU)"


def render_table(preset: str, sessions: list[Session], published: dict) -> str:
    interactions = max((len(s.per_interaction) for s in sessions), default=8)
    header = ["Method", "Measure", *map(str, range(1, interactions + 1)), "AUC", "@60s", "s / interaction", "Data",
              "Device"]
    lines = [
        f"# Interactive VOS ({preset} preset)",
        "",
        "J&F (%) after each interaction (the hardware-free result), and the AUC and J&F@60s of the curve of J&F "
        "against time (DAVIS interactive track, davisinteractive's robot). AUC and @60s depend on the machine: a CPU "
        "figure reads \"(CPU)\" and takes no difference with the published GPU figures.",
        "",
    ]
    standins = sorted({s.dataset_label for s in sessions if s.standin})
    if standins:
        lines += [
            f"**Stand-in data** ({'; '.join(standins)}): the sessions marked stand-in ran on data built from the shared "
            "folder with stand-in scribbles drawn by the robot, not on DAVIS 2017 val with its official scribbles: "
            "they test the protocol and cannot be compared with the published rows.",
            "",
        ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for session in sessions:
        curve = [f"{value:.1f}" for value in session.per_interaction]
        device = session.device + (f", {session.threads} thread(s)" if session.threads and not _on_gpu(session.device) else "")
        lines.append("| " + " | ".join([
            f"{session.label} (this suite)", "J&F", *curve, _timed(session.auc, session),
            _timed(session.at_60s, session), _timed(session.seconds_per_interaction, session, digits=2),
            "stand-in" if session.standin else session.dataset_label, device,
        ]) + " |")
    for method in published["methods"]:
        curve = method.get("per_interaction") or [None] * interactions
        cells = [("n.p." if value is None else f"{value:.1f}") for value in curve[:interactions]]
        cells += ["n.p."] * (interactions - len(cells))
        name = f"{method['name']} ({method['venue']}, published)" if method.get("venue") else method["name"]
        lines.append("| " + " | ".join([
            name, method["measure"], *cells, f"{method['auc']:.1f}", f"{method['at_60s']:.1f}", "n.p.", "DAVIS 2017 val",
            method.get("device") or "GPU (not stated)",
        ]) + " |")
    lines += [""]
    for session in sessions:
        weights = f"weights {session.weights}. " if session.weights else ""
        if weights or session.note:
            lines.append(f"- {session.label}: {weights}{session.note or ''}".rstrip())
    lines += [
        "",
        "s / interaction: the method's mean seconds an interaction of a sample (its share of the time axis). "
        "n.p.: not published. Measure J: the method was published with J only (the 2018 track's measure; the robot "
        "then scribbles on the worst J frame), so its figures are not J&F and stand apart.",
        "",
        "Published figures, their sources and how each was checked (reporting/published_interactive.yaml):",
        "",
    ]
    for method in published["methods"]:
        note = f" {method['note']}." if method.get("note") else ""
        lines.append(f"- {method['name']}: {VERIFICATIONS[method['verified']]}.{note} Source: {method['source'].strip()}")
    lines += ["", "Figures: figures/interactive-interactions.png (J&F per interaction), "
              "figures/interactive-time.png (J&F against time)."]
    return "\n".join(lines) + "\n"


def interactions_figure(sessions: list[Session], published: dict, out: Path) -> Path:
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for session in sessions:
        xs = range(1, len(session.per_interaction) + 1)
        label = f"{session.label} (this suite{', stand-in' if session.standin else ''})"
        ax.plot(xs, session.per_interaction, marker="o", linewidth=2, label=label)
    for method in published["methods"]:
        if method.get("per_interaction") and method["measure"] == "J&F":
            ax.plot(range(1, 9), method["per_interaction"], linestyle="--", marker=".", alpha=0.8,
                    label=f"{method['name']} (published, DAVIS 2017 val)")
    ax.set(xlabel="interaction", ylabel="J&F (%)", title="J&F after each interaction", ylim=(0, 100))
    ax.set_xticks(range(1, 9))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)  # off the curves
    return save(figure, out)


def time_figure(sessions: list[Session], out: Path) -> Path:
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for session in sessions:
        where = "GPU" if _on_gpu(session.device) else "CPU"
        ax.plot(session.curve_time, session.curve, marker=".", linewidth=2,  # linear: as AUC and @60s read it
                label=f"{session.label} ({where}{', stand-in' if session.standin else ''})")
    ax.axvline(60, color="grey", linestyle=":", label="60 s")
    # linear to 1 s, logarithmic beyond: a method taking 0.1 s and one taking 30 s an interaction both show
    ax.set_xscale("symlog", linthresh=1)
    longest = max((max(s.curve_time) for s in sessions if s.curve_time), default=60)
    ax.set(xlabel="cumulative mean time per sample (s; linear to 1 s, logarithmic beyond)", ylabel="J&F (%)",
           ylim=(0, 100), xlim=(0, max(100, 1.5 * longest)), title="J&F against time (the curve of AUC and J&F@60s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)  # off the curves
    return save(figure, out)


def write_interactive_report(preset: str, summaries: list[Path], labels: dict[str, str], published_file: Path,
                             out: Path, figure_interactions: Path, figure_time: Path,
                             notes: dict[str, str] | None = None) -> None:
    sessions = []
    for path in summaries:
        name = Path(path).parent.name
        sessions.append(load_session(path, name, labels.get(name, name), (notes or {}).get(name)))
    published = load_published(published_file)
    interactions_figure(sessions, published, figure_interactions)
    time_figure(sessions, figure_time)
    atomic_write_text(out, render_table(preset, sessions, published))
