"""The report layer: published numbers, table cells, regression check, figures' data, provenance."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from reporting.__main__ import main as reports_main
from reporting.plots import caption, decay_curves, read_attributes
from reporting.provenance import dataset_fingerprint
from reporting.published import PUBLISHED_FILE, PublishedTableError, load_published
from reporting.regression import (
    Run,
    compare,
    frames_file,
    refresh_baseline,
    render_comparison,
    write_baseline,
)
from reporting.render import (
    MARKS,
    evaluation_for,
    format_cell,
    fps_device,
    render,
    render_paper_table,
    reproduced_value,
)
from vos_datasets.download import sha256_of

PAPER_PRESET = PUBLISHED_FILE.parent.parent / "config" / "presets" / "paper.yaml"


def summary_frame(**jf_by_row) -> pd.DataFrame:
    records = []
    for row, (evaluation, jf, fps) in jf_by_row.items():
        records.append({"preset": "test", "row": row.replace("_", "-"), "label": row, "method": "frtm",
                        "evaluation": evaluation, "J&F-Mean": jf, "J-Mean": jf + 0.01, "J-Recall": 0.5,
                        "J-Decay": 0.1, "F-Mean": jf - 0.01, "F-Recall": 0.5, "F-Decay": 0.1, "objects": 3,
                        "FPS": fps, "device": "cpu"})
    return pd.DataFrame.from_records(records)


def test_published_numbers_are_the_papers():
    published = load_published()
    frtm1 = published.tables["frtm-table1"]
    assert [(r.label, r.values[0]) for r in frtm1.rows] == [
        ("Base net", 52.0), ("Base net + F-T", 57.2), ("D-only", 58.8), ("Ours - no update", 67.6), ("Ours", 70.6)]
    assert [r.values[0] for r in published.tables["lwl-table1"].rows] == [74.5, 77.5, 78.9, 79.8]
    ours = published.tables["frtm-table3"].rows[0]
    assert ours.values[0] == 73.4 and ours.values[3] == 84.8 and ours.values[-1] == 14.6
    assert published.tables["lwl-table2"].rows[0].values[0] == 81.5
    assert published.tables["lwl-table4"].rows[0].values[0] == 70.4
    assert published.tables["lwl-table4"].rows[0].values[5] == 70.8
    # both FRTM versions are kept apart, labelled by source
    cvpr = [r for t in published.tables.values() for r in t.rows if r.source == "frtm-cvpr2020"]
    assert {r.values[0] for r in cvpr} >= {72.1, 76.7, 68.8}
    assert all(r.source == "frtm-arxiv" for r in frtm1.rows)
    # every reproduced row named there is a row of the paper preset, and every paper row but the released
    # code's settings has its published counterpart (retrained or released weights)
    paper_rows = set(yaml.safe_load(PAPER_PRESET.read_text())["rows"])
    assert published.reproduced_rows() <= paper_rows
    assert paper_rows - published.reproduced_rows() - published.released_rows() == {"frtm-code"}


def preset_backbone(preset: dict, name: str) -> str:
    """The backbone a row of the paper preset runs: its own setting, else method_defaults (LWL's released
    files carry their ResNet-50)."""
    row = preset["rows"][name]
    default = "resnet50" if row["method"] == "lwl" else preset["method_defaults"][row["method"]]["backbone"]
    return (row.get("settings") or {}).get("backbone", default)


def test_released_rows_stand_beside_their_own_paper_version_and_network():
    preset = yaml.safe_load(PAPER_PRESET.read_text())
    rows = preset["rows"]
    published = load_published()
    named = [(table.key, row) for table in published.tables.values() for row in table.rows if row.released]
    assert len(named) == 11
    for key, row in named:
        methods = {rows[name]["method"] for name in (*row.released, *row.candidates)}
        assert len(methods) == 1, f"{key} {row.label!r}: rows of several methods {methods}"
        for name in row.released:
            assert name in rows, f"{key} {row.label!r}: {name} is not a row of the paper preset"
            assert rows[name].get("released"), f"{key} {row.label!r}: {name} runs no released weights"
            # an rn18 file never stands beside a ResNet-101 figure (nor the reverse)
            assert preset_backbone(preset, name) == row.backbone, f"{key} {row.label!r}: {name} is another network"
            assert rows[name]["released"].startswith({"resnet18": "rn18_", "resnet101": "rn101_",
                                                      "resnet50": "lwl_"}[row.backbone])
        if methods == {"frtm"}:  # the frtm-vos files are the CVPR 2020 version's: never beside arXiv v1 figures
            assert row.source == "frtm-cvpr2020" and not row.candidates, f"{key} {row.label!r}"
    assert published.released_rows() == {name for name, spec in rows.items() if spec.get("released")}
    arxiv = [row for t in published.tables.values() for row in t.rows if row.source == "frtm-arxiv"]
    assert arxiv and not any(row.released for row in arxiv)  # the retrained rows keep the arXiv v1 figures
    cvpr_ytvos = published.tables["frtm-table2"].rows[-2]
    assert cvpr_ytvos.released == ("frtm-ours-released-ytvos", "frtm-ours-released")  # YouTube-VOS, then FPS
    assert cvpr_ytvos.values[:5] == (72.1, 72.3, 65.9, 76.2, 74.1)  # LWL Table 2's FRTM, Only YouTube-VOS
    fast = [row for t in published.tables.values() for row in t.rows if "frtm-fast-released" in row.released]
    assert fast and all(row.backbone == "resnet18" and set(row.values) == {None} for row in fast)
    assert published.tables["lwl-table4"].rows[0].released == ("lwl-box-init-released",)
    # lwl_stage2 is compared as what it is on YouTube-VOS; its DAVIS cell is marked as another model's
    assert published.tables["lwl-table2"].rows[0].released_model is None
    assert "lwl_stage2.pth" in published.tables["lwl-table3"].rows[0].released_model


def test_a_released_row_needs_its_backbone(tmp_path):
    data = yaml.safe_load(PUBLISHED_FILE.read_text())
    data["tables"]["frtm-table3"]["rows"][3]["released_row"] = "frtm-ours-released"  # AGAME
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PublishedTableError, match="'AGAME' has a released_row but no backbone"):
        load_published(path)


def test_a_malformed_published_table_names_the_row(tmp_path):
    data = yaml.safe_load(PUBLISHED_FILE.read_text())
    data["tables"]["frtm-table3"]["rows"][1]["values"].pop()
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PublishedTableError, match=r"frtm-table3: row 1 \('Ours \(fast\)'\) has 6 values for 7"):
        load_published(path)


def test_cells_show_published_reproduced_and_difference():
    assert format_cell(70.6, 48.7, "J-Mean", True, True) == "70.6 / 48.7 (−21.9)"
    assert format_cell(14.6, 3.66, "FPS", True, True, device="cuda:0") == "14.6 / 3.66 (−10.9)"  # GPU vs GPU
    assert format_cell(7.7, None, "FPS", False, False) == "7.7"  # published as printed
    assert format_cell(None, 25.5, "J&F-Mean", True, True) == "n.p. / 25.5"  # not in the paper
    assert format_cell(70.6, None, "J-Mean", True, True) == "70.6 / n.m."  # ran, not measured
    assert format_cell(None, None, "J-Mean", False, False) == "n.p."
    assert format_cell(71.5, None, "J&F-Mean", False, False) == "71.5"
    assert format_cell(70.6, None, "J-Mean", True, False) == "70.6 / not run"
    assert format_cell(0.0, None, "FPS", False, False, printed="0.00") == "0.00"
    assert format_cell(81.7, 62.3, "J&F-Mean", True, True, released="81.2 (−0.5)") == "81.7 / 81.2 (−0.5) / 62.3 (−19.4)"


DAVIS_EVALUATIONS = {"d17": {"benchmark": "davis2017-val"}, "d16": {"benchmark": "davis2016-val"}}


def test_cells_with_released_weights_read_published_released_retrained():
    summary = summary_frame(frtm_ours=("d17", 0.523, 3.66), frtm_ours_released=("d17", 0.729, 9.1),
                            frtm_dv17_released=("d17", 0.671, 9.0), frtm_fast_released=("d17", 0.70, 20.0))
    published = load_published()
    text = "\n".join(render_paper_table(published.tables["frtm-table3"], published, summary, DAVIS_EVALUATIONS))
    # the arXiv v1 rows: the retrained row alone, beside its v1 figures
    assert ("| Ours (row `frtm-ours`) | 73.4 / 52.3 (−21.1) | 71.3 / 53.3 (−18.0) | 75.5 / 51.3 (−24.2) | "
            "84.8 / n.m. | 85.0 / n.m. | 84.5 / n.m. | 14.6 / n.m. |") in text
    assert "| Ours (fast) (row `frtm-fast`) | 70.9 / not run |" in text
    # the released files beside the CVPR 2020 version's figures (LWL Table 3): J&F, J (= J&F + 1), F (= J&F - 1)
    # on DAVIS 2017; DAVIS 2016 and FPS are not in the quoting source, so no difference there
    assert ("| FRTM, ResNet-101, additional data (weights file rn101_all) [FRTM (CVPR 2020, LWL Tables 2-3)] "
            "(released row `frtm-ours-released`) | 76.7 / 72.9 (−3.8) | 73.8 / 73.9 (+0.1) | 79.6 / 71.9 (−7.7) "
            "| not found / n.m. | not found / n.m. | not found / n.m. | not found / n.m. |") in text
    assert ("| FRTM, ResNet-101, DAVIS 2017 only (weights file rn101_dv) [FRTM (CVPR 2020, LWL Tables 2-3)] "
            "(released row `frtm-dv17-released`) | 68.8 / 67.1 (−1.7) |") in text
    # the ResNet-18 file: beside its own (not found) figures, never beside a ResNet-101 one
    assert ("| FRTM fast, ResNet-18, additional data (weights file rn18_all) [FRTM (CVPR 2020, LWL Tables 2-3)] "
            "(released row `frtm-fast-released`) | not found / 70.0 |") in text
    assert "70.0 (" not in text
    assert MARKS["not found"] in text and "Not found: LWL (ECCV 2020) Tables 2-3" in text
    report = render(summary, "paper", "test", {}, DAVIS_EVALUATIONS, published, PUBLISHED_FILE.parent.parent)
    assert "**published / released (released − published) / retrained (retrained − published)**" in report
    assert "**published (CVPR 2020) / released**" in report
    assert "| frtm_ours (`frtm-ours`) |" in report  # a retrained row is not marked
    assert "(`frtm-ours-released`) † |" in report and "Rows marked † run the authors' released weights" in report
    # a released YouTube-VOS row awaiting the server's figures says so in its part of the cell
    server = pd.DataFrame([{"row": "lwl", "evaluation": "v", "G": 0.815, "status": "official server"},
                           {"row": "lwl-released", "evaluation": "v", "G": None,
                            "status": "awaiting server scores for lwl-released"}])
    text = "\n".join(render_paper_table(published.tables["lwl-table2"], published, server,
                                        {"v": {"benchmark": "ytvos2018-valid"}}))
    assert "| 81.5 / awaiting server scores / 81.5 (+0.0) | 80.4 / awaiting server scores / n.m. |" in text
    assert "*Awaiting server:*" in text


def test_lwl_stage2_is_marked_as_another_model_beside_the_davis_fine_tuned_figures():
    published = load_published()
    summary = summary_frame(lwl_released=("d17", 0.80, 14.0), lwl_davis=("d17", 0.79, 14.0))
    lines = render_paper_table(published.tables["lwl-table3"], published, summary, DAVIS_EVALUATIONS)
    cells = table_row(lines, "| LWL (released row `lwl-released`").split(" | ")
    assert "(released file: lwl_stage2.pth is LWL_ytvos, the network before the DAVIS 2017 fine-tuning" in cells[0]
    assert cells[1] == "81.6 / [other model 80.0] / 79.0 (−2.6) from `lwl-davis`"  # no released difference
    assert MARKS["other model"] in "\n".join(lines)
    # on YouTube-VOS (LWL Table 2) the same file is the published model: a difference is taken
    server = pd.DataFrame([{"row": "lwl-released", "evaluation": "v", "G": 0.811, "status": "official server"}])
    lines = render_paper_table(published.tables["lwl-table2"], published, server, {"v": {"benchmark": "ytvos2018-valid"}})
    assert table_row(lines, "| LWL (released row `lwl-released`").split(" | ")[1] == "81.5 / 81.1 (−0.4) / not run"


def test_without_released_rows_the_cells_and_text_are_as_before():
    summary = summary_frame(frtm_ours=("d17", 0.523, 3.66))
    published = load_published()
    text = "\n".join(render_paper_table(published.tables["frtm-table3"], published, summary, DAVIS_EVALUATIONS))
    assert "| Ours (row `frtm-ours`) | 73.4 / 52.3 (−21.1) | 71.3 / 53.3 (−18.0) | 75.5 / 51.3 (−24.2) | " \
           "84.8 / n.m. | 85.0 / n.m. | 84.5 / n.m. | 14.6 / n.m. |" in text
    assert "released" not in text
    report = render(summary, "ci", "test", {}, DAVIS_EVALUATIONS, published, PUBLISHED_FILE.parent.parent)
    assert "released" not in report and "†" not in report


def test_published_values_keep_their_printed_form(tmp_path):
    cinm = next(row for row in load_published().tables["frtm-table3"].rows if row.label == "CINM")
    assert cinm.values[-1] == 0.0 and cinm.printed[-1] == "0.00"
    data = yaml.safe_load(PUBLISHED_FILE.read_text())
    data["tables"]["frtm-table3"]["rows"][1]["values"][0] = "seventy"
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PublishedTableError, match=r"'seventy' is not a number"):
        load_published(path)


def test_tables_take_the_exact_benchmark_before_a_stand_in():
    evaluations = {"synthetic": {"stands_in_for": ["davis2016-val", "ytvos2018-jjvalid"]},
                   "real": {"benchmark": "davis2016-val"}}
    assert evaluation_for("davis2016-val", evaluations).evaluation == "real"
    assert evaluation_for("ytvos2018-jjvalid", evaluations).exact is False
    assert evaluation_for("davis2017-val", evaluations) is None
    summary = summary_frame(frtm_ours=("real", 0.487, 3.66), frtm_d_only=("synthetic", 0.406, 13.6))
    assert reproduced_value(summary, "frtm-ours", "real", "J&F-Mean") == pytest.approx(48.7)
    assert reproduced_value(summary, "frtm-ours", "real", "G") is None  # a DAVIS J&F is not a G
    assert reproduced_value(summary, "frtm-ours", "real", "J-seen") is None
    assert reproduced_value(summary, "frtm-ours", "real", "FPS") == pytest.approx(3.66)
    published = load_published()
    lines = render_paper_table(published.tables["frtm-table1"], published, summary,
                               {"synthetic": {"stands_in_for": ["ytvos2018-jjvalid"]}})
    text = "\n".join(lines)
    assert "Reproduced cells: J: reproduced on `synthetic`, a STAND-IN for ytvos2018-jjvalid" in text
    assert "| D-only (row `frtm-d-only`) | x |  |  |  | 58.8 / [stand-in 41.6] |" in text  # no difference
    assert "| Ours - no update (row `frtm-no-update`) | x | x |  |  | 67.6 / not run |" in text
    assert "| Ours (row `frtm-ours`) | x | x | x |  | 70.6 / n.m. |" in text  # ran, on no evaluation for this table


def test_a_held_out_youtube_vos_table_names_the_frames_it_scored():
    summary = summary_frame(frtm_ours=("jj", 0.70, 9.0))
    published = load_published()
    for rule, words in (("authors", "the video's last annotated frame excluded"),
                        ("all-after-first", "every annotated frame after the object's first one, the last included")):
        evaluations = {"jj": {"benchmark": "ytvos2018-jjvalid", "frames": rule}}
        text = "\n".join(render_paper_table(published.tables["frtm-table1"], published, summary, evaluations))
        assert "J: reproduced on `jj` (ytvos2018-jjvalid; scored on " in text
        assert words in text and f"`frames: {rule}`)" in text


EMBEDDED_LIKE = {"synthetic": {"stands_in_for": ["davis2017-val", "davis2016-val", "ytvos2018-valid"]}}


def table_row(lines: list[str], start: str) -> str:
    """The one table line that starts with `start`."""
    [line] = [line for line in lines if line.startswith(start)]
    return line


def test_a_stand_in_value_is_labelled_and_has_no_difference():
    summary = summary_frame(frtm_ours=("synthetic", 0.523, 1.07))
    published = load_published()
    lines = render_paper_table(published.tables["frtm-table3"], published, summary, EMBEDDED_LIKE)
    ours = table_row(lines, "| Ours (row `frtm-ours`) |")
    assert ours == ("| Ours (row `frtm-ours`) | 73.4 / [stand-in 52.3] | 71.3 / [stand-in 53.3] | "
                    "75.5 / [stand-in 51.3] | 84.8 / [stand-in 52.3] | 85.0 / [stand-in 53.3] | "
                    "84.5 / [stand-in 51.3] | 14.6 / [stand-in 1.07 (CPU)] |")
    assert "(−" not in ours and "(+" not in ours  # no published − stand-in difference anywhere
    assert "shown as [stand-in value], no difference" in "\n".join(lines)  # above the table
    assert MARKS["stand-in"] in "\n".join(lines)  # and under it
    # the same benchmark scored exactly: the difference is back
    exact = render_paper_table(published.tables["frtm-table3"], published,
                               summary_frame(frtm_ours=("d17", 0.523, 1.07)), DAVIS_EVALUATIONS)
    assert table_row(exact, "| Ours (row `frtm-ours`) |").startswith("| Ours (row `frtm-ours`) | 73.4 / 52.3 (−21.1) |")
    # the released-weights form labels both parts alike
    both = summary_frame(lwl_box_init=("synthetic", 0.523, 1.07), lwl_box_init_released=("synthetic", 0.729, 9.1))
    lines = render_paper_table(published.tables["lwl-table4"], published, both, EMBEDDED_LIKE)
    assert table_row(lines, "| LWL (released row").split(" | ")[6] == "70.8 / [stand-in 72.9] / [stand-in 52.3]"


def test_a_davis_stand_in_never_fills_youtube_vos_columns():
    # a DAVIS-protocol stand-in for YouTube-VOS valid: J&F, J, F but no G, no seen/unseen
    summary = summary_frame(frtm_ours=("synthetic", 0.523, 1.07), lwl_box_init=("synthetic", 0.40, 8.1))
    assert reproduced_value(summary, "frtm-ours", "synthetic", "G") is None
    published = load_published()
    lines = render_paper_table(published.tables["frtm-table2"], published, summary, EMBEDDED_LIKE)
    assert table_row(lines, "| Ours (row `frtm-ours`) |") == (
        "| Ours (row `frtm-ours`) | 71.0 / n.m. | 71.6 / n.m. | 65.0 / n.m. | 74.7 / n.m. | 72.5 / n.m. | "
        "14.6 / [stand-in 1.07 (CPU)] |")
    text = "\n".join(lines)
    # the stand-in's J&F only in a line of its own that says it is not a G
    assert "*Stand-in J&F, not G:* `synthetic` stands in for ytvos2018-valid" in text
    assert "Ours (`frtm-ours`) 52.3." in text
    lines = render_paper_table(published.tables["lwl-table4"], published, summary, EMBEDDED_LIKE)
    assert table_row(lines, "| LWL (row `lwl-box-init`) |") == (
        "| LWL (row `lwl-box-init`) | 70.4 / n.m. | 73.0 / n.m. | 63.0 / n.m. | 75.9 / n.m. | 70.0 / n.m. | "
        "70.8 / [stand-in 40.0] | 68.2 / [stand-in 41.0] | 73.5 / [stand-in 39.0] |")
    # a YouTube-VOS-style stand-in that measures G (local scoring, no seen/unseen split) fills G, labelled
    local = pd.DataFrame([{"row": "lwl-box-init", "evaluation": "jj", "G": 0.70, "J-Mean": 0.68, "F-Mean": 0.72,
                           "J&F-Mean": 0.70, "J-seen": None, "FPS": 9.0, "device": "cpu"}])
    lines = render_paper_table(published.tables["lwl-table4"], published, local,
                               {"jj": {"stands_in_for": ["ytvos2018-valid"]}})
    assert table_row(lines, "| LWL (row").startswith("| LWL (row `lwl-box-init`) | 70.4 / [stand-in 70.0] | 73.0 / n.m. |")
    assert "Stand-in J&F" not in "\n".join(lines)


def test_an_fps_measured_on_a_cpu_has_no_difference_from_the_papers_gpu_fps():
    assert fps_device("cpu") == "CPU"
    assert fps_device("x86_64, 2 cores (Linux)") == "CPU"  # what a method without a device records
    assert fps_device("cuda") is None and fps_device("cuda:0") is None
    assert fps_device(float("nan")) == "device not recorded"
    published = load_published()
    for device, fps in (("cpu", "14.6 / 1.07 (CPU)"), ("x86_64, 2 cores (Linux)", "14.6 / 1.07 (CPU)"),
                        ("cuda:0", "14.6 / 1.07 (−13.5)"), (None, "14.6 / 1.07 (device not recorded)")):
        summary = summary_frame(frtm_ours=("d16", 0.80, 1.07)).assign(device=device)
        lines = render_paper_table(published.tables["frtm-table3"], published, summary, DAVIS_EVALUATIONS)
        assert table_row(lines, "| Ours (row `frtm-ours`) |").endswith(f" | {fps} |"), device
        # the accuracy on the exact benchmark keeps its difference whatever the device
        assert "| 84.8 / 80.0 (−4.8) |" in table_row(lines, "| Ours (row `frtm-ours`) |")
    assert format_cell(14.6, 1.07, "FPS", True, True, device="cpu") == "14.6 / 1.07 (CPU)"
    report = render(summary_frame(frtm_ours=("d16", 0.80, 1.07)), "t", "t", {}, DAVIS_EVALUATIONS, published,
                    PUBLISHED_FILE.parent.parent)
    assert MARKS["CPU"] in report
    assert "| frtm_ours (`frtm-ours`) | 80.0 | 81.0 | 50.0 | 10.0 | 79.0 | 50.0 | 10.0 | 1.07 | CPU | 3 |" in report


def test_missing_values_have_distinct_marks_explained_under_each_table():
    summary = summary_frame(frtm_ours=("d17", 0.523, 3.66), first_frame_copy=("d17", 0.30, 500.0))
    published = load_published()
    lines = render_paper_table(published.tables["frtm-table3"], published, summary, {"d17": {"benchmark": "davis2017-val"}})
    text = "\n".join(lines)
    assert "| AGAME | 70.0 | 67.2 | 72.7 | n.p. | 82.0 | n.p. | 14.3 |" in text  # not in the paper
    assert table_row(lines, "| Ours (row `frtm-ours`) |").endswith(" | 84.8 / n.m. | 85.0 / n.m. | 84.5 / n.m. | 14.6 / n.m. |")
    assert "| Ours (fast) (row `frtm-fast`) | 70.9 / not run |" in text
    assert table_row(lines, "| First-frame copy").startswith(
        "| First-frame copy (lower bound) (row `first-frame-copy`) | n.p. / 30.0 | n.p. / 31.0 |")
    assert "–" not in text.replace("(−", "")  # the dash means nothing any more
    # the legend under the table explains every mark it uses, and only those
    [legend] = [line for line in lines if line.startswith("*Marks:*")]
    assert lines.index(legend) > lines.index(table_row(lines, "| First-frame copy"))
    for key in ("n.p.", "n.m.", "not run"):
        assert MARKS[key] in legend
    assert MARKS["stand-in"] not in legend and MARKS["from"] not in legend
    assert "not in the paper" in MARKS["n.p."] and "not measured" in MARKS["n.m."]
    # the paragraph above the tables explains them too; every reproduced row marks what it does not measure
    server = pd.DataFrame([{"row": "lwl", "label": "LWL", "evaluation": "v", "G": 0.815, "J&F-Mean": 0.8,
                            "J-Mean": 0.79, "F-Mean": 0.81, "objects": None, "FPS": 10.0, "device": "cuda",
                            "status": "official server"}])
    report = render(server, "t", "t", {}, {"v": {"benchmark": "ytvos2018-valid"}}, published,
                    PUBLISHED_FILE.parent.parent)
    assert "**n.p.** = not in the paper; **n.m.** = not measured by this preset" in report
    assert "| LWL (`lwl`) | 80.0 | 79.0 | n.m. | n.m. | 81.0 | n.m. | n.m. | 10.0 | GPU | n.m. |" in report
    assert "*Marks:* **n.m.** = not measured by this evaluation" in report
    assert "| – " not in report and " – |" not in report


def test_a_cell_that_several_rows_can_fill_names_the_row_that_did():
    published = load_published()
    evaluations = {"d17": {"benchmark": "davis2017-val"}, "d16": {"benchmark": "davis2016-val"},
                   "v": {"benchmark": "ytvos2018-valid"}}
    # LWL Table 3's LWL: the DAVIS-fine-tuned row if it ran, else the main one; either way the cell says which
    for ran, other in (("lwl", "lwl_davis"), ("lwl_davis", "lwl")):
        summary = summary_frame(**{ran: ("d17", 0.80, 15.0)})
        lines = render_paper_table(published.tables["lwl-table3"], published, summary, evaluations)
        row = table_row(lines, "| LWL (row `lwl-davis` or `lwl`) |")
        name = ran.replace("_", "-")
        assert row.split(" | ")[1] == f"81.6 / 80.0 (−1.6) from `{name}`"
        assert f"from `{other.replace('_', '-')}`" not in row
        assert MARKS["from"] in "\n".join(lines)
    # FRTM Table 2's CVPR 2020 row: the released YouTube-VOS row fills G..., the released DAVIS row the FPS
    summary = pd.DataFrame([
        {"row": "frtm-ours", "evaluation": "d16", "J&F-Mean": 0.8, "FPS": 13.0, "device": "cuda"},
        {"row": "frtm-ours-released", "evaluation": "d16", "J&F-Mean": 0.84, "FPS": 14.0, "device": "cuda"},
        {"row": "frtm-ours-released-ytvos", "evaluation": "v", "G": 0.72, "J-seen": 0.73, "device": "cuda",
         "status": "official server"}])
    lines = render_paper_table(published.tables["frtm-table2"], published, summary, evaluations)
    cells = table_row(lines, "| FRTM, ResNet-101, YouTube-VOS training").split(" | ")
    assert cells[0].endswith("(released row `frtm-ours-released-ytvos` or `frtm-ours-released`)")
    assert cells[1] == "72.1 / 72.0 (−0.1) from `frtm-ours-released-ytvos`"
    assert cells[-1] == "not found / 14.0 from `frtm-ours-released` |"  # the FPS is not in LWL's tables
    assert table_row(lines, "| Ours (row `frtm-ours`)").split(" | ")[-1] == "14.6 / 13.0 (−1.6) |"


REGRESSION_PRESET = {"rows": {"first-frame-copy": {}, "frtm-ours": {"training": "frtm-refiner"},
                               "frtm-ours-fixed": {"checkpoint": "weights.pt"}}}


def write_run(folder, summary: pd.DataFrame, frame_shift: float = 0.0):
    """A run's results folder: its summary and, for the rows without a training, per-frame scores (J, F of 4
    frames; `frame_shift` moves the fixed row's frames in opposite directions, leaving its mean)."""
    folder.mkdir(parents=True)
    summary.to_csv(folder / "summary.csv", index=False)
    for row in ("first-frame-copy", "frtm-ours-fixed"):
        shift = frame_shift if row == "frtm-ours-fixed" else 0.0
        scores = folder / "ci" / row / "scores"
        scores.mkdir(parents=True)
        pd.DataFrame({"Sequence": ["a", "a", "b", "b"], "Object": 1, "Frame": ["00001", "00002", "00001", "00002"],
                      "J": [0.5 + shift, 0.5 - shift, 0.4, 0.6], "F": [0.5, 0.5, 0.4 - shift, 0.6 + shift]}
                     ).to_csv(scores / "per-frame_results-ci.csv", index=False)
    return Run(folder.name, folder)


def regression_runs(tmp_path, shifts=(0.0, 0.0005, 0.0)) -> list:
    """Three runs: the trained row's J&F spreads over 3 points, the fixed row's frames move by up to 0.05
    points (its means not at all), the first-frame copy never moves."""
    return [write_run(tmp_path / f"seed{seed}", summary_frame(first_frame_copy=("ci", 0.255, 50.0),
                                                              frtm_ours=("ci", 0.470 + 0.015 * seed, 3.6),
                                                              frtm_ours_fixed=("ci", 0.5, 3.6)), shifts[seed])
            for seed in range(3)]


def test_the_regression_baseline_derives_each_rows_tolerance_from_the_measured_spread(tmp_path):
    baseline = tmp_path / "baseline.yaml"
    write_baseline(regression_runs(tmp_path), REGRESSION_PRESET, "test machine", baseline, commit="abc")
    rows = yaml.safe_load(baseline.read_text())["rows"]
    trained, fixed = rows["frtm-ours@ci"], rows["frtm-ours-fixed@ci"]
    assert trained["kind"] == "trained" and fixed["kind"] == "fixed weights"
    assert trained["expected"]["J&F-Mean"] == pytest.approx(48.5)
    assert trained["measured"]["sd"]["J&F-Mean"] == pytest.approx(1.5)
    assert trained["tolerance"]["J&F-Mean"] == pytest.approx(4.5)  # 3 sd > max - min (3.0)
    assert "frames" not in trained  # a training's frames move freely
    assert fixed["tolerance"]["J&F-Mean"] == pytest.approx(0.25)  # no spread: the floor
    assert fixed["frames"]["reference_run"] == "seed0"
    assert fixed["frames"]["measured"]["seed1"] == {"J": pytest.approx(0.025), "F": pytest.approx(0.025)}
    assert fixed["frames"]["tolerance"] == {"J": pytest.approx(0.1), "F": pytest.approx(0.1)}  # 3 x, rounded up
    assert rows["first-frame-copy@ci"]["frames"]["tolerance"] == {"J": 0.05, "F": 0.05}  # the floor
    reference = pd.read_csv(frames_file(baseline))
    assert len(reference) == 8 and set(reference["key"]) == {"first-frame-copy@ci", "frtm-ours-fixed@ci"}
    with pytest.raises(ValueError, match="a spread needs at least 2"):
        write_baseline(regression_runs(tmp_path / "one")[:1], REGRESSION_PRESET, "m", tmp_path / "x.yaml")
    without_fixed = {"rows": {**REGRESSION_PRESET["rows"], "lwl-fixed": {"checkpoint": "w.pt"}}}
    with pytest.raises(ValueError, match="lwl-fixed"):
        write_baseline(regression_runs(tmp_path / "more"), without_fixed, "m", tmp_path / "x.yaml")


def test_the_regression_check_holds_each_row_to_its_own_tolerance_and_says_what_to_do(tmp_path, capsys):
    baseline = tmp_path / "baseline.yaml"
    write_baseline(regression_runs(tmp_path / "measured"), REGRESSION_PRESET, "test machine", baseline)
    assert compare(regression_runs(tmp_path / "same")[1].folder, baseline).passed

    def run_with(folder, frame_shift=0.0, **figures):
        summary = summary_frame(first_frame_copy=("ci", 0.255, 50.0), frtm_ours=("ci", 0.470, 3.6),
                                frtm_ours_fixed=("ci", 0.5, 3.6))
        for row, value in figures.items():
            summary.loc[summary["row"] == row.replace("_", "-"), "J&F-Mean"] = value
        return write_run(tmp_path / folder, summary, frame_shift).folder

    assert compare(run_with("trained-moved", frtm_ours=0.445), baseline).passed  # -4.0: inside the trained 4.5
    result = compare(run_with("fixed-moved", frtm_ours_fixed=0.497), baseline)  # -0.3: outside the fixed 0.25
    assert not result.passed
    text = render_comparison(result)
    assert "FAILED" in text and "REGRESSED" in text and "frtm-ours-fixed@ci" in text and "-0.3" in text
    assert "make regression-baseline" in text and "a regression" in text  # both cases: defect, intended change
    # a fault that leaves the fixed row's means where they were still moves its frames
    frames_moved = compare(run_with("frames-moved", frame_shift=0.02), baseline)
    changed = frames_moved.table[frames_moved.table["status"] != "ok"]
    assert list(changed["measure"]) == ["per-frame |dJ|", "per-frame |dF|"]
    assert changed["now"].tolist() == [pytest.approx(1.0), pytest.approx(1.0)]  # 2 of 4 frames moved 2 points
    partial = run_with("partial")
    (partial / "summary.csv").write_text(pd.read_csv(partial / "summary.csv").iloc[1:2].to_csv(index=False))
    missing = compare(partial, baseline)
    assert not missing.passed and missing.missing == ["first-frame-copy@ci", "frtm-ours-fixed@ci"]
    assert reports_main(["regress", "--results", str(run_with("cli", frtm_ours_fixed=0.497)),
                         "--baseline", str(baseline)]) == 1
    preset = tmp_path / "ci.yaml"
    preset.write_text(yaml.safe_dump(REGRESSION_PRESET))
    runs = [str(run.folder) for run in regression_runs(tmp_path / "cli-runs")]
    assert reports_main(["baseline", "--run", *runs, "--preset-file", str(preset), "--out", str(baseline)]) == 0
    assert yaml.safe_load(baseline.read_text())["made"]["runs"] == ["seed0", "seed1", "seed2"]
    # a row that changed kind since the baseline was measured is refused, with what to do
    switched = {"rows": {**REGRESSION_PRESET["rows"], "frtm-ours": {"checkpoint": "weights.pt"}}}
    preset.write_text(yaml.safe_dump(switched))
    capsys.readouterr()
    assert reports_main(["regress", "--results", runs[0], "--baseline", str(baseline),
                         "--preset-file", str(preset)]) == 2
    assert "frtm-ours@ci was measured as a 'trained' row" in capsys.readouterr().err


def test_refreshing_named_rows_remakes_their_entries_and_keeps_the_others(tmp_path, capsys):
    """`make regression-baseline ROWS=...`: an intended change of one row remakes that row's entry (and its
    per-frame reference) from new runs; the other rows keep what was measured, and `made` says what was remade."""
    baseline = tmp_path / "baseline.yaml"
    write_baseline(regression_runs(tmp_path / "first"), REGRESSION_PRESET, "first machine", baseline, commit="abc")
    before = yaml.safe_load(baseline.read_text())
    frames_before = pd.read_csv(frames_file(baseline), dtype={"Sequence": str, "Frame": str})

    def moved_runs(folder, trained, fixed, frame_shift):
        return [write_run(tmp_path / folder / f"s{seed}",
                          summary_frame(first_frame_copy=("ci", 0.300, 50.0), frtm_ours=("ci", trained + 0.01 * seed, 3.6),
                                        frtm_ours_fixed=("ci", fixed, 3.6)), frame_shift * seed)
                for seed in range(2)]

    refresh_baseline(moved_runs("trained", 0.600, 0.700, 0.0), REGRESSION_PRESET, "second machine", baseline,
                     ["frtm-ours"], commit="def")
    after = yaml.safe_load(baseline.read_text())
    assert after["rows"]["frtm-ours@ci"]["expected"]["J&F-Mean"] == pytest.approx(60.5)
    assert after["rows"]["frtm-ours@ci"]["measured"]["runs"] == ["s0", "s1"]
    for kept in ("first-frame-copy@ci", "frtm-ours-fixed@ci"):  # the new runs moved these too: not taken
        assert after["rows"][kept] == before["rows"][kept]
    assert after["made"]["commit"] == "abc" and after["made"]["runs"] == ["seed0", "seed1", "seed2"]
    [line] = after["made"]["updated"]
    assert line.endswith(": frtm-ours@ci from the runs s0, s1 at def on second machine (make regression-baseline "
                         "ROWS=...); the other rows as made before")
    pd.testing.assert_frame_equal(pd.read_csv(frames_file(baseline), dtype={"Sequence": str, "Frame": str}),
                                  frames_before)
    # a fixed row: its per-frame reference is remade from the first new run, the copy's stays
    refresh_baseline(moved_runs("fixed", 0.600, 0.700, 0.001), REGRESSION_PRESET, "m", baseline, ["frtm-ours-fixed"])
    frames = pd.read_csv(frames_file(baseline), dtype={"Sequence": str, "Frame": str})
    assert len(frames) == len(frames_before) and frames["Frame"].str.len().eq(5).all()
    fixed = yaml.safe_load(baseline.read_text())["rows"]["frtm-ours-fixed@ci"]
    assert fixed["expected"]["J&F-Mean"] == pytest.approx(70.0) and fixed["frames"]["reference_run"] == "s0"
    assert fixed["frames"]["measured"]["s1"] == {"J": pytest.approx(0.05), "F": pytest.approx(0.05)}
    assert len(yaml.safe_load(baseline.read_text())["made"]["updated"]) == 2
    assert compare(moved_runs("check", 0.600, 0.700, 0.0)[0].folder, baseline).passed is False  # the copy moved
    with pytest.raises(ValueError, match=r"rows \['frtm-our'\] are not rows of the preset"):
        refresh_baseline(moved_runs("typo", 0.6, 0.7, 0.0), REGRESSION_PRESET, "m", baseline, ["frtm-our"])
    with pytest.raises(FileNotFoundError, match="no baseline to refresh rows of"):
        refresh_baseline(moved_runs("none", 0.6, 0.7, 0.0), REGRESSION_PRESET, "m", tmp_path / "no.yaml", ["frtm-ours"])
    preset = tmp_path / "ci.yaml"
    preset.write_text(yaml.safe_dump(REGRESSION_PRESET))
    runs = [str(run.folder) for run in moved_runs("cli", 0.500, 0.700, 0.0)]
    assert reports_main(["baseline", "--run", *runs, "--preset-file", str(preset), "--out", str(baseline),
                         "--rows", "frtm-ours"]) == 0
    assert "rows frtm-ours of" in capsys.readouterr().out
    assert yaml.safe_load(baseline.read_text())["rows"]["frtm-ours@ci"]["expected"]["J&F-Mean"] == pytest.approx(50.5)


def test_a_baseline_refuses_runs_with_a_missing_figure(tmp_path):
    runs = regression_runs(tmp_path)
    summary = runs[1].summary
    summary.loc[summary["row"] == "frtm-ours", "F-Mean"] = float("nan")
    summary.to_csv(runs[1].folder / "summary.csv", index=False)
    with pytest.raises(ValueError, match=r"frtm-ours@ci: F-Mean is NaN in the runs \['seed1'\]"):
        write_baseline(runs, REGRESSION_PRESET, "m", tmp_path / "baseline.yaml")


def test_decay_curves_bin_normalised_time():
    frames = [f"{t:05d}" for t in range(1, 11)]
    per_frame = pd.DataFrame({"Sequence": ["a"] * 10 + ["b"] * 5, "Object": [1] * 15,
                              "Frame": frames + frames[:5],
                              "J": np.r_[np.linspace(1, 0, 10), np.ones(5)], "F": np.r_[np.ones(10), np.zeros(5)]})
    curves = decay_curves(per_frame, bins=2)
    # first half: a's frames 0..4 (J 1..0.556), b's frames 0..2 (t = 0, .25, .5 -> bins 0, 0, 1)
    assert list(curves.index) == [0.25, 0.75]
    assert curves.loc[0.25, "J"] == pytest.approx(100 * (np.linspace(1, 0, 10)[:5].mean() + 1) / 2)
    assert curves.loc[0.25, "F"] == pytest.approx(50.0)


def test_attributes_and_captions(tmp_path):
    (tmp_path / "db_info.yml").write_text(yaml.safe_dump({"sequences": [{"name": "a", "attributes": ["OCC"]}]}))
    assert read_attributes(tmp_path) == {"a": ["OCC"]}
    assert read_attributes(tmp_path / "nothing") is None
    assert "embedded-val" in caption(tmp_path / "decay-embedded-val.png")
    summary = summary_frame(frtm_ours=("e", 0.5, 1.0))
    assert caption(tmp_path / "qualitative-e" / "frtm-ours.png", summary).startswith("frtm_ours on e")


def test_dataset_fingerprint_follows_the_content(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"1234")
    first = dataset_fingerprint(tmp_path)
    assert first["files"] == 1 and first["over"] == "content"
    (tmp_path / "a" / "x.png").write_bytes(b"1235")
    assert dataset_fingerprint(tmp_path)["sha256"] != first["sha256"]
    assert dataset_fingerprint(tmp_path / "missing")["status"] == "missing"


def test_provenance_manifest_lists_weights_data_and_config(tmp_path):
    head = tmp_path / "head.pt"
    head.write_bytes(b"weights")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f.txt").write_text("x")
    out = tmp_path / "provenance.json"
    config = {"method_defaults": {"frtm": {"backbone": "efficientnet_lite0"}},
              "trainings": {"t": {"method": "frtm", "settings": {"backbone": "efficientnet_lite0"}}},
              "rows": {"r": {"method": "frtm", "variant": "ours", "training": "t"},
                       "copy": {"method": "first_frame_copy"}}}
    assert reports_main(["provenance", "--preset", "t", "--config", json.dumps(config), "--heads", str(head),
                         "--datasets", json.dumps({"d": str(tmp_path / "data")}), "--out", str(out)]) == 0
    manifest = json.loads(out.read_text())
    assert manifest["trained_weights"][str(head)] == hashlib.sha256(b"weights").hexdigest()
    backbones = manifest["pretrained_backbones"]
    assert backbones["rows.r"]["weights"] == backbones["trainings.t"]["weights"] == "PACKAGE"
    assert backbones["rows.r"]["sha256"] == sha256_of(backbones["rows.r"]["file"])
    assert backbones["rows.copy"] == {"note": "no pretrained backbone"}
    assert manifest["datasets"]["d"]["files"] == 1
    assert manifest["packages"]["torch"] != "not installed" and manifest["config"] == config


def test_aggregate_reads_davis_youtube_vos_and_server_rows(tmp_path):
    from reporting.aggregate import collect

    timing = json.dumps({"mean_fps_over_sequences": 12.5, "device": "cpu"})
    local = tmp_path / "jj" / "lwl"
    (local / "scores").mkdir(parents=True)
    (local / "timing.json").write_text(timing)
    pd.DataFrame([{"G": 0.7, "J": 0.68, "F": 0.72, "J_seen": None, "J_unseen": None, "F_seen": None,
                   "F_unseen": None, "n_objects": 5, "n_videos": 2, "split": False, "G_definition": "x"}]) \
        .to_csv(local / "scores" / "global_results-jj.csv", index=False)
    server = tmp_path / "valid" / "lwl"
    server.mkdir(parents=True)
    (server / "timing.json").write_text(timing)
    rows = {"lwl": {"method": "lwl", "label": "LWL", "evaluate_on": ["jj", "valid"]}}
    protocols = {"jj": "youtube_vos", "valid": "server"}
    summary = collect("paper", rows, tmp_path, protocols, tmp_path / "no-such-file.yaml").set_index("evaluation")
    assert summary.loc["jj", "J&F-Mean"] == pytest.approx(0.70) and summary.loc["jj", "objects"] == 5
    assert summary.loc["valid", "status"].startswith("awaiting server scores")
    returned = tmp_path / "server-results.yaml"
    returned.write_text(yaml.safe_dump({"paper": {"valid": {"lwl": {"G": 81.5, "J-seen": 80.4, "J-unseen": 76.4,
                                                                   "F-seen": 84.9, "F-unseen": 84.4}}}}))
    summary = collect("paper", rows, tmp_path, protocols, returned).set_index("evaluation")
    assert summary.loc["valid", "G"] == pytest.approx(0.815) and summary.loc["valid", "status"] == "official server"
    assert summary.loc["valid", "J-Mean"] == pytest.approx((0.804 + 0.764) / 2)
    published = load_published()
    text = "\n".join(render_paper_table(published.tables["lwl-table2"], published, summary.reset_index(),
                                        {"valid": {"benchmark": "ytvos2018-valid"}}))
    assert "| LWL (row `lwl`) | 81.5 / 81.5 (+0.0) |" in text
    pending = collect("paper", rows, tmp_path, protocols, None)
    text = "\n".join(render_paper_table(published.tables["lwl-table2"], published, pending,
                                        {"valid": {"benchmark": "ytvos2018-valid"}}))
    assert "| LWL (row `lwl`) | 81.5 / awaiting server scores |" in text and "*Awaiting server:*" in text


def test_a_mistyped_server_results_file_names_the_entry(tmp_path):
    from reporting.aggregate import read_server_results

    path = tmp_path / "server-results.yaml"
    path.write_text(yaml.safe_dump({"paper": {"valid": {"lwl": {"J_seen": 80.4}}}}))
    with pytest.raises(ValueError, match=r"paper.valid.lwl: unknown keys \['J_seen'\]"):
        read_server_results(path, "paper")
    path.write_text(yaml.safe_dump({"paper": {"valid": {"lwl": {"G": "81,5"}}}}))
    with pytest.raises(ValueError, match=r"paper.valid.lwl.G: '81,5' is not a number"):
        read_server_results(path, "paper")


def test_rows_under_the_first_frame_copy_plus_ten_are_named_with_their_trainings_measurements(tmp_path):
    """A row under the lower bound + 10 J&F reads as such, with its training's length and held-out J (from
    head.json via the aggregate), in the table of every row and at the top of the papers' tables; rows above it
    are not listed."""
    from reporting.aggregate import collect

    rows = {"first-frame-copy": {"method": "first_frame_copy", "evaluate_on": ["d16"]},
            "frtm-ours": {"method": "frtm", "training": "frtm-refiner", "evaluate_on": ["d16"]},
            "frtm-d-only": {"method": "frtm", "training": "frtm-d-only", "evaluate_on": ["d16"]}}
    for row, jf in (("first-frame-copy", 0.272), ("frtm-ours", 0.05), ("frtm-d-only", 0.417)):
        folder = tmp_path / "d16" / row
        (folder / "scores").mkdir(parents=True)
        (folder / "timing.json").write_text(json.dumps({"mean_fps_over_sequences": 2.0, "device": "cpu", "threads": 1}))
        figures = {"J&F-Mean": jf, "J-Mean": jf, "J-Recall": 0.1, "J-Decay": 0.0, "F-Mean": jf, "F-Recall": 0.1,
                   "F-Decay": 0.0}
        (folder / "scores" / "protocol-d16.json").write_text(json.dumps({"global": figures}))
        pd.DataFrame([{"J-Mean": jf}]).to_csv(folder / "scores" / "per-object_results-d16.csv", index=False)
    for training, heldout in (("frtm-refiner", 0.031), ("frtm-d-only", 0.55)):
        history = [{"epoch": e, "loss": 0.1, "samples": 15, "validation": {"J": heldout, "loss": 0.1}} for e in range(3)]
        (tmp_path / "training" / training).mkdir(parents=True)
        (tmp_path / "training" / training / "head.json").write_text(json.dumps({"history": history}))
    summary = collect("embedded", rows, tmp_path)
    ours = summary.set_index("row").loc["frtm-ours"]
    assert (ours["training"], ours["training_epochs"], ours["training_samples"]) == ("frtm-refiner", 3, 45)
    assert ours["heldout_J"] == pytest.approx(0.031)
    report = render(summary, "embedded", "t", {}, {"d16": {"benchmark": "davis2016-val"}}, load_published(),
                    PUBLISHED_FILE.parent.parent)
    every_row = report[report.index("## Every reproduced row"):report.index("## The papers' tables")]
    assert "- `frtm-ours`: J&F 5.0, -22.2 against the copy; its training `frtm-refiner` saw 45 samples in 3 " \
           "epochs, held-out J 3.1 at its last measure." in every_row
    assert "`frtm-d-only`:" not in every_row and "| 2.00 | +14.5 | CPU, 1 thread |" in every_row
    assert "**Read with care:** `frtm-ours` score under the first-frame copy + 10" in report
    # the cells say so too: the paper tables' values and the every-row table's gap to the copy
    assert "| Ours (row `frtm-ours`) | 73.4 / n.m. | 71.3 / n.m. | 75.5 / n.m. | 84.8 / 5.0 (−79.8) (under aim) |" \
        in report
    assert "**(under aim)** = the row scores under the first-frame copy + 10 J&F" in report
    assert "| 5.0 | 5.0 | 5.0 | 2.00 | -22.2 (under aim) | CPU, 1 thread |" in every_row  # frtm-ours; D-only: +14.5


def copy_and_ours(evaluation: str, copy_fps: float = 13541.8) -> pd.DataFrame:
    """A first-frame copy (its own method, thousands of FPS) and an FRTM row on one evaluation."""
    summary = summary_frame(first_frame_copy=(evaluation, 0.212, copy_fps), frtm_ours=(evaluation, 0.418, 2.84))
    summary.loc[0, "method"] = "first_frame_copy"
    return summary


def test_the_every_row_table_comes_first_under_a_short_header_that_links_the_rest():
    """A reader meets, under a header of at most 60 words, every row's J&F, J, F, FPS, gap to the copy and
    device; the preset's (long) description, the machines and every DAVIS measure are in Details at the end."""
    description = " ".join(["word"] * 170)  # as long as the embedded preset's
    report = render(copy_and_ours("d16"), "embedded", description, {"d": {"kind": "synthetic"}},
                    {"d16": {"stands_in_for": ["davis2016-val"]}}, load_published(), PUBLISHED_FILE.parent.parent,
                    provenance="embedded/provenance.json", machine="CPU only: x86_64, 2 cores")
    header = report[:report.index("\n## ")]
    assert len(header.split()) <= 60, header
    assert "[Details](#details)" in header and "[provenance.json](embedded/provenance.json)" in header
    assert description not in header
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[:2] == ["## Every reproduced row", "## The papers' tables"] and sections[-1] == "## Details"
    every_row = report[report.index("## Every reproduced row"):report.index("## The papers' tables")]
    assert "| Method | J&F | J | F | FPS | J&F vs copy | Device |" in every_row
    assert "| frtm_ours (`frtm-ours`) | 41.8 | 42.8 | 40.8 | 2.84 | +20.6 | CPU |" in every_row
    details = report[report.index("## Details"):]
    assert f"- **Preset:** {description}" in details and "- **Hardware:** CPU only: x86_64, 2 cores" in details
    assert "| frtm_ours (`frtm-ours`) | 41.8 | 42.8 | 50.0 | 10.0 | 40.8 | 50.0 | 10.0 | 2.84 | CPU | 3 |" in details


def test_the_first_frame_copys_fps_shows_its_order_not_a_speed():
    """The copy computes nothing: its thousands of FPS read "> 1000", explained, in the every-row table and in a
    paper table; a method's FPS is its number whatever it is, and a copy under 1000 FPS keeps its number."""
    report = render(copy_and_ours("d16"), "t", "t", {}, {"d16": {"stands_in_for": ["davis2016-val"]}},
                    load_published(), PUBLISHED_FILE.parent.parent)
    assert "13541.8" not in report
    assert "| first_frame_copy (`first-frame-copy`) | 21.2 | 22.2 | 20.2 | > 1000 |  | CPU |" in report
    assert "n.p. / [stand-in > 1000 (CPU)] |" in report
    details = report[report.index("## Details"):]
    assert "| 21.2 | 22.2 | 50.0 | 10.0 | 20.2 | 50.0 | 10.0 | > 1000 | CPU | 3 |" in details
    assert report.count(MARKS["no computation"]) == 3  # under the every-row table, FRTM Table 3 and All measures
    fast = copy_and_ours("d16").assign(FPS=[500.0, 1500.0])
    report = render(fast, "t", "t", {}, {"d16": {"benchmark": "davis2016-val"}}, load_published(),
                    PUBLISHED_FILE.parent.parent)
    assert "| 500.0 |  | CPU |" in report and "| 1500.0 | +20.6 | CPU |" in report
    assert MARKS["no computation"] not in report


def test_a_paper_table_this_preset_measured_nothing_of_is_one_line():
    """LWL Table 2 on a DAVIS-protocol stand-in (no G, no seen/unseen): one line that says so and why, not a
    table of n.m.; a table with one measured cell (FRTM Table 2's FPS) stays a table."""
    published = load_published()
    summary = summary_frame(lwl=("synthetic", 0.04, 7.0), frtm_ours=("synthetic", 0.418, 2.84))
    lines = render_paper_table(published.tables["lwl-table2"], published, summary, EMBEDDED_LIKE)
    assert not [line for line in lines if line.startswith("|")]
    assert [line for line in lines if line] == [
        "### LWL Table 2: YouTube-VOS 2018 validation, official server (transposed: methods as rows)",
        "Not measured by this preset (n.m. in every reproduced cell): `synthetic` stands in for ytvos2018-valid but "
        "gives no G, J seen, J unseen, F seen, F unseen for these rows; its rows `lwl` are in *Every reproduced "
        "row*; not run: `lwl-ytvos-only`. The published figures are in reporting/published.yaml."]
    lines = render_paper_table(published.tables["frtm-table2"], published, summary, EMBEDDED_LIKE)
    assert table_row(lines, "| Ours (row `frtm-ours`) |").endswith("| 14.6 / [stand-in 2.84 (CPU)] |")
    # a preset that ran none of a table's rows: one line as well
    lines = render_paper_table(published.tables["lwl-table1"], published, summary, EMBEDDED_LIKE)
    assert [line for line in lines if line][1].endswith("none of its rows ran. The published figures are in "
                                                        "reporting/published.yaml.")


def test_a_quoting_source_is_cited_in_full_once_per_report():
    published = load_published()
    # FRTM's and LWL's Tables 3 both quote FRTM's CVPR 2020 figures
    report = render(summary_frame(frtm_ours=("d17", 0.5, 3.0), lwl=("d17", 0.8, 9.0)), "t", "t", {},
                    DAVIS_EVALUATIONS, published, PUBLISHED_FILE.parent.parent)
    quoted = published.sources["frtm-cvpr2020"]
    assert report.count(quoted["citation"]) == 1
    assert f"Rows marked [{quoted['short']}]: the source cited in full under the first table" in report


def test_the_qualitative_strips_share_one_caption(tmp_path):
    """One strip per row: what a strip shows is said once, each strip is named by its row's label."""
    summary = summary_frame(frtm_ours=("e", 0.5, 1.0), lwl=("e", 0.4, 2.0))
    paths = [tmp_path / "decay-e.png", tmp_path / "qualitative-e" / "frtm-ours.png", tmp_path / "qualitative-e" / "lwl.png"]
    figures = [(f"figures/{path.relative_to(tmp_path)}", caption(path, summary)) for path in paths]
    report = render(summary, "t", "t", {}, {"e": {"benchmark": "davis2016-val"}}, load_published(),
                    PUBLISHED_FILE.parent.parent, figures)
    shown = caption(paths[1], summary).partition(": ")[2]
    assert report.count(shown) == 1 and f"Qualitative strips on e, one per row: {shown}" in report
    assert "![frtm_ours](figures/qualitative-e/frtm-ours.png)\n\n*frtm_ours*" in report
    assert "![lwl](figures/qualitative-e/lwl.png)\n\n*lwl*" in report
    assert f"![{figures[0][1]}](figures/decay-e.png)" in report  # the other figures keep their captions


def test_the_machine_lines_come_from_where_the_methods_ran(tmp_path):
    """The tables' hardware line is the provenance manifest's (written where torch sees the GPUs), and the speed
    plot names the devices the rows' FPS were measured on: the report steps may run without torch or elsewhere."""
    from reporting.render import measured_on

    summary = summary_frame(frtm_ours=("e", 0.5, 2.0), frtm_fast=("e", 0.4, 9.0))
    assert measured_on(summary) == "CPU"
    summary.loc[0, "device"] = "cuda:0"
    assert measured_on(summary) == "CPU and CUDA GPU"
    summary.to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "provenance.json").write_text(json.dumps({"device": {"hardware": "GPU NVIDIA H200; CPU x86_64"}}))
    assert reports_main(["render", "--summary", str(tmp_path / "summary.csv"), "--preset", "t",
                         "--provenance", str(tmp_path / "provenance.json"), "--out", str(tmp_path / "t.md")]) == 0
    assert "- **Hardware:** GPU NVIDIA H200; CPU x86_64" in (tmp_path / "t.md").read_text()


def test_the_fps_device_comes_from_the_infer_jobs_timing(tmp_path):
    """timing.json is written on the node that ran the method: the summary, the tables and the provenance
    manifest (which a CPU node may write) name the device model it recorded, not their own machine's."""
    from reporting.aggregate import collect
    from reporting.render import fps_machines

    rows = {"frtm-ours": {"method": "frtm", "evaluate_on": ["d16"]}}
    folder = tmp_path / "d16" / "frtm-ours"
    (folder / "scores").mkdir(parents=True)
    timing = {"mean_fps_over_sequences": 21.9, "device": "cuda:0", "device_model": "NVIDIA H100 80GB HBM3",
              "threads": 16, "fps_protocol": "authors", "warm_up_frames": 2}
    (folder / "timing.json").write_text(json.dumps(timing))
    figures = {"J&F-Mean": 0.8, "J-Mean": 0.8, "J-Recall": 0.9, "J-Decay": 0.0, "F-Mean": 0.8, "F-Recall": 0.9,
               "F-Decay": 0.0}
    (folder / "scores" / "protocol-d16.json").write_text(json.dumps({"global": figures}))
    pd.DataFrame([{"J-Mean": 0.8}]).to_csv(folder / "scores" / "per-object_results-d16.csv", index=False)
    summary = collect("paper", rows, tmp_path)
    assert summary.loc[0, "device_model"] == "NVIDIA H100 80GB HBM3" and summary.loc[0, "fps_protocol"] == "authors"
    assert fps_machines(summary) == "NVIDIA H100 80GB HBM3 (protocol authors), every row"
    report = render(summary, "paper", "t", {}, {"d16": {"benchmark": "davis2016-val"}}, load_published(),
                    PUBLISHED_FILE.parent.parent)
    assert "- **FPS measured on:** NVIDIA H100 80GB HBM3 (protocol authors), every row" in report
    assert "| GPU (NVIDIA H100 80GB HBM3) |" in report
    out = tmp_path / "provenance.json"
    assert reports_main(["provenance", "--preset", "t", "--config", json.dumps({"rows": {}}), "--datasets", "{}",
                         "--timings", str(folder / "timing.json"), "--out", str(out)]) == 0
    inference = json.loads(out.read_text())["inference"]
    assert inference == {str(folder / "timing.json"): {key: timing[key] for key in (
        "device", "device_model", "threads", "fps_protocol", "warm_up_frames")}}
