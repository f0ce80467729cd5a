"""The interactive track's table and plots (reporting/interactive.py, `python -m reporting interactive`): the
sessions' J&F per interaction, AUC and J&F@60s marked by device and data, the published rows with their measure,
source and verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reporting.__main__ import main as reporting_main
from reporting.interactive import (
    PUBLISHED_INTERACTIVE,
    InteractiveSummaryError,
    load_published,
    load_session,
    render_table,
)


def write_summary(folder: Path, device: str = "cpu", standin: bool = True, threads: int | None = 1) -> Path:
    curve = [0.2 + 0.05 * i for i in range(8)]
    summary = {
        "dataset": {"root": "resources/interactive/ci/x", "standin": standin,
                    "label": "DAVIS 2016 val stand-in" if standin else "DAVIS 2017 val"},
        "method": "scribble_copy", "settings": {}, "max_interactions": 8, "max_time": None,
        "per_interaction": [{"interaction": i + 1, "J": v, "F": v, "J&F": v} for i, v in enumerate(curve)],
        "auc": 0.3456, "jf_at_60s": 0.5432,
        "curve": {"time": [0.0, *[0.5 * (i + 1) for i in range(8)], 8.0], "J&F": [0.0, *curve, curve[-1]]},
        "package_summary": {}, "device": device, "threads": threads,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder / "summary.json"


def table_line(text: str, start: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {start}"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_a_cpu_session_on_a_stand_in_is_marked_and_every_published_row_cites_its_source(tmp_path):
    session = load_session(write_summary(tmp_path / "scribble-copy"), "scribble-copy", "Scribble copy")
    text = render_table("ci", [session], load_published())
    cells = table_line(text, "Scribble copy (this suite)")
    assert cells[2:10] == ["20.0", "25.0", "30.0", "35.0", "40.0", "45.0", "50.0", "55.0"]
    assert cells[10:14] == ["34.6 (CPU)", "54.3 (CPU)", "0.50 (CPU)", "stand-in"]  # 4 s over 8 interactions
    assert "**Stand-in data**" in text and "cannot be compared" in text
    published = yaml.safe_load(PUBLISHED_INTERACTIVE.read_text())["methods"]
    for method in published:
        row = table_line(text, method["name"])
        assert row[1] == method["measure"] and row[10:13] == [f"{method['auc']:.1f}", f"{method['at_60s']:.1f}", "n.p."]
        assert f"- {method['name']}: " in text and method["source"].split()[0] in text
    # J-only publications keep their measure: never in a J&F column unmarked
    assert {m["name"] for m in published if m["measure"] == "J"} == {"MA-Net", "IPN"}


def test_a_gpu_session_on_real_data_reads_plain_figures(tmp_path):
    summary = write_summary(tmp_path / "s", device="cuda:0", standin=False)
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps({**data, "settings": {"checkpoint": "results/paper/training/frtm-refiner/head.pt"}}))
    session = load_session(summary, "s", "FRTM", note="below its aim: measured why")
    text = render_table("paper", [session], load_published())
    cells = table_line(text, "FRTM (this suite)")
    assert cells[10:14] == ["34.6", "54.3", "0.50", "DAVIS 2017 val"] and "Stand-in" not in text
    # the weights it ran and the preset's note, under the table
    assert "- FRTM: weights results/paper/training/frtm-refiner/head.pt. below its aim: measured why" in text


def test_a_published_row_without_its_measure_or_source_is_refused(tmp_path):
    published = yaml.safe_load(PUBLISHED_INTERACTIVE.read_text())
    published["methods"][0]["measure"] = "JF"
    del published["methods"][1]["source"]
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(published))
    with pytest.raises(InteractiveSummaryError, match="measure 'JF'"):
        load_published(path)
    published["methods"][0]["measure"] = "J&F"
    path.write_text(yaml.safe_dump(published))
    with pytest.raises(InteractiveSummaryError, match="GIS-RAmap.*source"):
        load_published(path)


def test_the_cli_writes_the_table_and_both_figures_and_names_a_broken_summary(tmp_path, capsys):
    summary = write_summary(tmp_path / "results" / "scribble-copy")
    out, interactions, time = tmp_path / "interactive.md", tmp_path / "f" / "i.png", tmp_path / "f" / "t.png"
    args = ["interactive", "--preset", "ci", "--summaries", str(summary), "--labels", '{"scribble-copy": "Copy"}',
            "--out", str(out), "--figure-interactions", str(interactions), "--figure-time", str(time)]
    assert reporting_main(args) == 0
    assert "| Copy (this suite) |" in out.read_text()
    assert interactions.read_bytes()[:8] == time.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary.write_text("{}")
    capsys.readouterr()
    assert reporting_main(args) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and str(summary) in error and "interactive_session" in error
