"""The side-by-side ratios of a pytest-benchmark run, from its stored stats (the --benchmark-json file, or a run
that --benchmark-autosave kept under .benchmarks/): per benchmark group, each row's median seconds, FPS where
the row says how many frames a round processes (extra_info "frames"), and its speed relative to the group's
reference row (extra_info "reference": vos-benchmark, backbone-only, the conv2d upsampler) and to times measured
elsewhere (extra_info "recorded_seconds": the official toolkit's wall time recorded in the fixture).

    python benchmarks/report.py benchmarks/results/<stamp>.json --out benchmarks/results/<stamp>.md

Speed relative to X = X's median / the row's median: 2.0 is twice as fast as X. In the method groups it is the
FRTM paper's speed figure, FPS over backbone-only FPS (both rounds cover the same frames).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load_run(path: Path) -> dict:
    """A pytest-benchmark JSON file; ValueError naming the file when it is not one."""
    try:
        run = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read it as JSON ({error}); give a file that --benchmark-json wrote") from None
    if not isinstance(run, dict) or not isinstance(run.get("benchmarks"), list):
        raise ValueError(f"{path}: no 'benchmarks' list, so not a pytest-benchmark run; give a file that "
                         "--benchmark-json or --benchmark-autosave wrote")
    return run


def _ratio(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def group_table(group: str, benchmarks: list[dict]) -> str:
    """One group's markdown table; each row's speed relative to the reference row and to the recorded times."""
    references = [b for b in benchmarks if b["extra_info"].get("reference")]
    if len(references) > 1:
        raise ValueError(f"benchmark group {group!r} has {len(references)} reference rows "
                         f"({', '.join(b['name'] for b in references)}); mark one with extra_info['reference']")
    reference = references[0] if references else None
    recorded: dict[str, float] = {}
    for bench in benchmarks:
        recorded.update(bench["extra_info"].get("recorded_seconds", {}))
    with_frames = any("frames" in b["extra_info"] for b in benchmarks)
    with_jf = any("J&F" in b["extra_info"] for b in benchmarks)

    def label(bench: dict) -> str:
        return bench["extra_info"].get("label", bench["name"])

    header = ["run", "median s", "rounds"] + (["FPS"] if with_frames else [])
    header += [f"speed vs {label(reference)}"] if reference else []
    header += [f"speed vs {name}" for name in recorded] + (["J&F"] if with_jf else [])
    lines = [f"### {group}", "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]

    def row(name: str, seconds: float, rounds: str, extra: dict) -> str:
        cells = [name, f"{seconds:.4g}", rounds]
        if with_frames:
            cells.append(f"{extra['frames'] / seconds:.2f}" if "frames" in extra else "")
        if reference:
            cells.append(_ratio(reference["stats"]["median"] / seconds))
        cells += [_ratio(other / seconds) for other in recorded.values()]
        if with_jf:
            cells.append(f"{100 * extra['J&F']:.2f}" if "J&F" in extra else "")
        return "| " + " | ".join(cells) + " |"

    for bench in benchmarks:
        lines.append(row(label(bench), bench["stats"]["median"], str(bench["stats"]["rounds"]), bench["extra_info"]))
    for name, seconds in recorded.items():
        lines.append(row(name, seconds, "recorded", {}))
    return "\n".join(lines) + "\n"


def render(run: dict) -> str:
    """Every group of a run, in the order the run measured them, under a line saying when and where."""
    groups: dict[str, list[dict]] = {}
    for bench in run["benchmarks"]:
        groups.setdefault(bench.get("group") or bench["name"], []).append(bench)
    machine, commit = run.get("machine_info", {}), run.get("commit_info", {})
    cpu = machine.get("cpu", {})
    torch_info = machine.get("torch") or {}
    where = ", ".join(str(part) for part in (
        cpu.get("brand_raw") or machine.get("processor") or machine.get("machine"),
        f"{cpu['count']} cores" if cpu.get("count") else None,
        f"Python {machine['python_version']}" if machine.get("python_version") else None,
        f"torch {torch_info['version']}, torch threads: {torch_info['threads']}" if torch_info else None,
    ) if part)
    when = f"{run.get('datetime', '?')}, commit {str(commit.get('id', '?'))[:7]}"
    if commit.get("dirty"):
        when += " with uncommitted changes"
    parts = [f"Run {when}; {where}. Medians over the rounds shown; speed vs X = X's median / the row's median.", ""]
    parts += [group_table(group, benches) for group, benches in groups.items()]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a pytest-benchmark JSON file")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    try:
        text = render(load_run(args.run))
    except ValueError as error:
        parser.error(str(error))
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
