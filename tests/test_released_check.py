"""The released-weights check (methods.core.released_check) and the `released` preset that runs only the rows of
the authors' released weights (docs/reproducing.md, "Released weights: the check"): what a reviewer sees with the right
files, with a missing one, a 5-byte fake and a swapped one, all before any job runs, and the record of each
file (sha256) that the provenance and the tables cite.

The released files are unreachable here: tests/released_files.py builds all seven in the released formats from
the official fixtures."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from methods.core.released_check import MIN_BYTES, Expected, check, describe
from tests.released_files import ALL_FILES, write_released_file, write_released_folder
from tests.test_workflow import REPO, job_blocks, planned_jobs, snakemake, workflow_copy, youtube_vos_paths

WHAT = {"rn18_ytvos.pth": ("frtm", "resnet18", "refiner"), "rn18_all.pth": ("frtm", "resnet18", "refiner"),
        "rn101_ytvos.pth": ("frtm", "resnet101", "refiner"), "rn101_all.pth": ("frtm", "resnet101", "refiner"),
        "rn101_dv.pth": ("frtm", "resnet101", "refiner"), "lwl_stage2.pth": ("lwl", "resnet50_mrcnn", "stage2"),
        "lwl_boxinit.pth": ("lwl", "resnet50_mrcnn", "box-init")}


@pytest.fixture(scope="module")
def released_folder(tmp_path_factory) -> Path:
    """The seven files as a reviewer downloads them (built once: ~320 MB, a few seconds)."""
    return write_released_folder(tmp_path_factory.mktemp("released") / "weights")


def variant_folder(tmp_path: Path, released: Path, replace: dict[str, Path | bytes | None]) -> Path:
    """A folder linking to the seven files, with some replaced by another file, by bytes, or removed (None)."""
    folder = tmp_path / "variant"
    folder.mkdir()
    for name in ALL_FILES:
        target = replace.get(name, released / name)
        if isinstance(target, bytes):
            (folder / name).write_bytes(target)
        elif target is not None:
            (folder / name).symlink_to(target)
    return folder


# ---- the file check, without torch ----

@pytest.mark.parametrize("name", ALL_FILES)
def test_every_released_file_is_told_apart_without_reading_its_weights(released_folder, name):
    facts = describe(released_folder / name)
    assert (facts["method"], facts["backbone"], facts["model"]) == WHAT[name]
    assert facts["size"] == (released_folder / name).stat().st_size >= MIN_BYTES[facts["method"]]


@pytest.mark.parametrize("name", ["rn101_all.pth", "lwl_boxinit.pth"])
def test_the_legacy_format_is_read_too(tmp_path, name):
    """torch < 1.6 wrote the pickle first and the storages after it (the 2020 releases may be such files)."""
    path = write_released_file(tmp_path, name, zip_format=False)
    assert not path.read_bytes().startswith(b"PK")
    assert (describe(path)["backbone"], describe(path)["model"]) == WHAT[name][1:]


@pytest.mark.parametrize("name", ["rn18_all.pth", "lwl_stage2.pth"])
def test_the_torch_free_listing_agrees_with_the_torch_reader(released_folder, name):
    from methods.core.released import read_released_checkpoint

    released = read_released_checkpoint(released_folder / name)
    facts = describe(released_folder / name)
    assert (released.kind, released.backbone, facts["tensors"]) == (facts["method"], facts["backbone"],
                                                                    len(released.state_dict))
    assert facts["values"] == sum(tensor.numel() for tensor in released.state_dict.values())


@pytest.mark.parametrize("where", ["weights", "beside the weights"])
@pytest.mark.parametrize("call", ["os.system", "open", "exec"])
def test_a_hostile_pickle_is_refused_without_running(tmp_path, call, where):
    import os

    from tests.test_released_checkpoints import _hostile

    marker = tmp_path / "it-ran"
    reduce_to = {"os.system": (os.system, (f"touch {marker}",)), "open": (open, (str(marker), "w")),
                 "exec": (exec, (f"open({str(marker)!r}, 'w').close()",))}[call]
    path = _hostile(tmp_path, reduce_to, where)
    with pytest.raises(ValueError, match="refused: it pickles") as error:
        describe(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value) and not marker.exists()


def test_a_download_cut_short_is_refused(released_folder, tmp_path):
    whole = (released_folder / "rn18_all.pth").read_bytes()
    cut = tmp_path / "rn18_all.pth"
    cut.write_bytes(whole[: len(whole) - 1000])
    with pytest.raises(ValueError, match=f"released weights {re.escape(str(cut))}: .*put the authors' rn18_all.pth"):
        check(cut, Expected("frtm", backbone="resnet18"), "frtm-fast-released")


@pytest.mark.parametrize(("given", "expected", "holds"), [
    ("rn18_all.pth", Expected("frtm", backbone="resnet101"), "holds an FRTM ResNet-18 refiner"),
    ("rn101_all.pth", Expected("frtm", backbone="resnet18"), "holds an FRTM ResNet-101 refiner"),
    ("lwl_boxinit.pth", Expected("lwl", model="stage2"), "holds the LWL box-init network"),
    ("lwl_stage2.pth", Expected("lwl", model="box-init"), "holds the LWL stage-2 network"),
    ("lwl_stage2.pth", Expected("frtm", backbone="resnet101"), "holds the LWL stage-2 network"),
    ("rn101_dv.pth", Expected("lwl", model="stage2"), "where the LWL stage-2 network .* takes at least 146.9 MB"),
])
def test_a_swapped_file_is_refused_naming_what_it_holds(released_folder, given, expected, holds):
    with pytest.raises(ValueError, match=holds) as error:
        check(released_folder / given, expected, "the-row")
    assert "\n" not in str(error.value) and str(released_folder / given) in str(error.value)


# ---- the released preset's DAG: what a reviewer sees before any job runs ----

def dry_run(tmp_path: Path, folder: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    """`snakemake -n reports/released/tables.md --config preset=released` as a reviewer runs it, with Snakemake's
    own process unable to import torch (the check reads no weights)."""
    return snakemake(workflow_copy(tmp_path), "-n", "reports/released/tables.md", "--config", "preset=released",
                     f"released_weights={folder}", *extra, check=check, torch=False)


def job_counts(dry_run_output: str) -> dict[str, int]:
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_the_davis_only_form_plans_only_the_released_rows(tmp_path, released_folder):
    done = dry_run(tmp_path, released_folder)
    counts = job_counts(done.stdout)
    # fetch_weights: the ImageNet ResNet-101 and -18 (V1) FRTM's released refiners sit on (LWL's files carry theirs)
    assert counts == {"check_released": 5, "download_davis": 2, "fetch_weights": 2, "infer": 11, "provenance": 1,
                      "evaluate": 11, "aggregate": 1, "plot_evaluation": 2, "plot_speed_accuracy": 1,
                      "render_tables": 1, "total": 37}
    planned = planned_jobs(done.stdout)
    paper = yaml.safe_load((REPO / "config/presets/paper.yaml").read_text())["rows"]
    davis = {"davis2017-val", "davis2016-val"}
    expected = {f"evaluation={evaluation}, row={row}" for row, spec in paper.items()
                if row == "first-frame-copy" or "released" in spec for evaluation in davis & set(spec["evaluate_on"])}
    assert planned["infer"] == expected and len(expected) == 11
    assert "train" not in planned and "submission_zip" not in planned
    # every released row's inference waits on its file's check (a local job: no cluster queue before it)
    blocks = [block for block in job_blocks(done.stdout) if block.startswith("rule infer:")
              and "row=frtm-ours-released" in block]
    assert len(blocks) == 2 and all("results/released/released/rn101_all.pth.json" in block for block in blocks)
    assert "note:" not in done.stderr


def test_the_full_form_adds_youtube_vos_valid_and_the_submission_zips(tmp_path, released_folder):
    done = dry_run(tmp_path, released_folder,
                   "subset_of={evaluations: [davis2017-val, davis2016-val, ytvos2018-valid]}",
                   youtube_vos_paths(tmp_path))
    counts = job_counts(done.stdout)
    assert counts["check_released"] == 7 and counts["infer"] == 15 and counts["submission_zip"] == 4
    assert counts["total"] == 47 and counts["fetch_weights"] == 2 and "train" not in counts


def test_a_missing_file_leaves_its_row_out_in_one_line_and_the_others_run(tmp_path, released_folder):
    folder = variant_folder(tmp_path, released_folder, {"rn18_all.pth": None, "lwl_boxinit.pth": None})
    done = dry_run(tmp_path, folder)
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: row frtm-fast-released left out: {folder / 'rn18_all.pth'} not found; the authors publish "
        "rn18_all.pth in andr345/frtm-vos's README, 'Models': Google Drive links, or weights/download_weights.sh",
        f"note: row lwl-box-init-released left out: {folder / 'lwl_boxinit.pth'} not found; the authors publish "
        "lwl_boxinit.pth in visionml/pytracking's pytracking/MODEL_ZOO.md, VOS models, LWL"]
    rows = {re.search(r"row=(\S+)", job).group(1) for job in planned_jobs(done.stdout)["infer"]}
    assert rows == {"first-frame-copy", "frtm-ours-released", "frtm-dv17-released", "lwl-released"}


@pytest.mark.parametrize(("replace", "message"), [
    ({"rn101_all.pth": b"hello"},
     "released weights {folder}/rn101_all.pth: 5 bytes, where an FRTM ResNet-101 refiner (rn101_*.pth) takes at "
     "least 4.9 MB; put the authors' rn101_all.pth there (published in andr345/frtm-vos's README, 'Models': "
     "Google Drive links, or weights/download_weights.sh)"),
    ({"rn101_all.pth": "rn18_all.pth"},
     "released weights {folder}/rn101_all.pth: holds an FRTM ResNet-18 refiner (rn18_*.pth), but row "
     "frtm-ours-released needs an FRTM ResNet-101 refiner (rn101_*.pth); put the authors' rn101_all.pth there "
     "(published in andr345/frtm-vos's README, 'Models': Google Drive links, or weights/download_weights.sh)"),
    ({"lwl_stage2.pth": "lwl_boxinit.pth"},
     "released weights {folder}/lwl_stage2.pth: holds the LWL box-init network (lwl_boxinit.pth), but row "
     "lwl-released needs the LWL stage-2 network (lwl_stage2.pth); put the authors' lwl_stage2.pth there "
     "(published in visionml/pytracking's pytracking/MODEL_ZOO.md, VOS models, LWL)"),
], ids=["5-byte fake", "rn18 as rn101", "box-init as stage 2"])
def test_a_fake_or_swapped_file_stops_the_dag_in_one_line(tmp_path, released_folder, replace, message):
    replace = {name: value if isinstance(value, bytes) else released_folder / value
               for name, value in replace.items()}
    folder = variant_folder(tmp_path, released_folder, replace)
    done = dry_run(tmp_path, folder, check=False)
    assert done.returncode != 0
    assert message.format(folder=folder) in done.stdout + done.stderr
    assert "Job stats" not in done.stdout  # nothing planned, nothing queued


def test_the_paper_preset_checks_its_released_rows_the_same_way(tmp_path, released_folder):
    """Before: a missing file stopped the paper preset's whole DAG (MissingInputException), a fake one was
    queued. Now the row of a missing file leaves, the rest (trainings included) is planned; a fake stops it."""
    folder = variant_folder(tmp_path, released_folder, {"rn18_all.pth": None})
    work, paths = workflow_copy(tmp_path), youtube_vos_paths(tmp_path)
    done = snakemake(work, "-n", "reports/tables.md", "--config", "preset=paper", f"released_weights={folder}",
                     paths, torch=False)
    assert "note: row frtm-fast-released left out:" in done.stderr
    counts = job_counts(done.stdout)
    assert counts["train"] == 16 and counts["check_released"] == 6
    (folder / "rn18_ytvos.pth").unlink()
    (folder / "rn18_ytvos.pth").write_bytes(b"hello")
    done = snakemake(work, "-n", "reports/tables.md", "--config", "preset=paper", f"released_weights={folder}",
                     paths, check=False, torch=False)
    assert done.returncode != 0 and f"released weights {folder / 'rn18_ytvos.pth'}: 5 bytes" in done.stdout + done.stderr


def test_without_the_folder_only_the_first_frame_copy_is_planned(tmp_path):
    done = snakemake(workflow_copy(tmp_path), "-n", "reports/released/tables.md", "--config", "preset=released",
                     torch=False)
    assert "need the authors' released weights; left out" in done.stderr
    assert {re.search(r"row=(\S+)", job).group(1) for job in planned_jobs(done.stdout)["infer"]} == {
        "first-frame-copy"}


@pytest.mark.parametrize("released_rows", ["false", "maybe"])
def test_released_rows_given_on_the_command_line_is_read_as_a_boolean(tmp_path, released_folder, released_rows):
    """Snakemake hands a --config mapping's values over as strings: 'false' was truthy and kept every released
    row; now it is read as false, and a word that is no boolean is refused in one line."""
    subset = (f"subset_of={{preset: paper, rows: [first-frame-copy], released_rows: {released_rows}, "
              "evaluations: [davis2017-val, davis2016-val]}")
    done = dry_run(tmp_path, released_folder, subset, check=False)
    if released_rows == "false":
        assert done.returncode == 0, done.stderr[-2000:]
        assert {re.search(r"row=(\S+)", job).group(1) for job in planned_jobs(done.stdout)["infer"]} == {
            "first-frame-copy"}
    else:
        assert done.returncode != 0 and "Job stats" not in done.stdout
        assert ("released.yaml subset_of.released_rows: 'maybe' is not a boolean; write true or false"
                in done.stdout + done.stderr)


# ---- the record: sha256 for the provenance and the tables ----

def test_the_check_job_writes_the_record_or_refuses(tmp_path, released_folder):
    path = released_folder / "lwl_stage2.pth"
    out = tmp_path / "lwl_stage2.pth.json"
    command = [sys.executable, "-m", "methods.core.released_check", str(path), "--method=lwl", "--model=stage2",
               "--row=lwl-released", "--out", str(out)]
    subprocess.run(command, check=True, cwd=REPO)
    record = json.loads(out.read_text())
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (record["name"], record["method"], record["backbone"], record["model"]) == (
        "lwl_stage2.pth", "lwl", "resnet50_mrcnn", "stage2")
    out.unlink()
    refused = subprocess.run([*command[:4], "--method=lwl", "--model=box-init", "--row=lwl-box-init-released",
                              "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert refused.returncode != 0 and "holds the LWL stage-2 network" in refused.stderr and not out.exists()


def test_the_tables_show_the_files_sha256_beside_the_row(tmp_path):
    import pandas as pd

    from reporting.aggregate import SUMMARY_COLUMNS, released_sha256
    from reporting.published import load_published
    from reporting.render import render

    (tmp_path / "released").mkdir()
    (tmp_path / "released/rn101_all.pth.json").write_text(json.dumps({"sha256": "0123456789abcdef" * 4}))
    sha = released_sha256({"released": "rn101_all.pth"}, tmp_path)
    assert released_sha256({"training": "x"}, tmp_path) is None
    summary = pd.DataFrame.from_records([{
        "preset": "released", "row": "frtm-ours-released", "label": "FRTM Ours (released weights)",
        "method": "frtm", "evaluation": "davis2016-val", "J&F-Mean": 0.8, "J-Mean": 0.8, "F-Mean": 0.8, "FPS": 20.0,
        "device": "cuda", "objects": 20, "released_sha256": sha}], columns=SUMMARY_COLUMNS)
    evaluations = {"davis2016-val": {"dataset": "davis2016", "split": "val", "benchmark": "davis2016-val"}}
    tables = render(summary, "released", "test", {}, evaluations, load_published(), REPO)
    assert "| FRTM Ours (released weights) (`frtm-ours-released`) † (sha256 `0123456789ab`) |" in tables


# ---- the CPU path: the DAVIS-only released check end to end ----

# one sequence per dataset: DAVIS 2016's is the figures' qualitative sequence, DAVIS 2017's has two objects
TINY_SEQUENCES = {"2016": "blackswan", "2017": "horsejump-high"}
TINY_FRAMES = 3  # the first frame and two tracked ones (DAVIS 2017 scores all but the first and the last)
TINY_SIZE = (96, 160)  # (H, W): the frames shrunk from 480x854, the objects kept


def tiny_davis(shared: Path, out: Path, year: str) -> Path:
    """A DAVIS folder of TINY_SEQUENCES[year]'s first frames from ../shared, shrunk to TINY_SIZE (images bilinear,
    masks nearest, their palette kept): 2016 with its ground truth; 2017 with the DAVIS 2016 frames and the
    shared OSVOS DAVIS 2017 val masks as stand-in ground truth (several objects)."""
    import shutil

    import numpy as np
    from PIL import Image

    source, sequence = shared / "data/davis2016", TINY_SEQUENCES[year]
    masks = source / "Annotations/480p" if year == "2016" else shared / "data/davis2017-val-osvos"
    for index in range(TINY_FRAMES):
        for folder, origin, suffix, resample in (("JPEGImages", source / "JPEGImages/480p", "jpg", Image.BILINEAR),
                                                 ("Annotations", masks, "png", Image.NEAREST)):
            target = out / folder / "480p" / sequence / f"{index:05d}.{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(origin / sequence / f"{index:05d}.{suffix}") as image:
                small = image.resize(TINY_SIZE[::-1], resample)
                if suffix == "png":
                    assert set(np.unique(small)) == set(np.unique(image)), f"{target}: an object vanished"
                small.save(target, quality=95) if suffix == "jpg" else small.save(target)
    split = out / "ImageSets" / ("480p" if year == "2016" else "2017") / "val.txt"
    split.parent.mkdir(parents=True)
    split.write_text(f"/JPEGImages/480p/{sequence}/00000.jpg /Annotations/480p/{sequence}/00000.png\n"
                     if year == "2016" else f"{sequence}\n")
    shutil.copy(source / "db_info.yml", out / "db_info.yml")
    return out


@pytest.mark.slow
def test_the_released_check_runs_end_to_end_on_the_cpu(tmp_path, released_folder, shared):
    """The DAVIS-only form of the released preset from its files to the tables, on the CPU: the seven files built
    from the official fixtures, tiny DAVIS 2016 / 2017 folders from ../shared standing in for the downloads (one
    sequence each, 3 frames of 96x160), the rows' devices set to the CPU, their optimisation cut to one step of
    each kind. The FRTM backbones are random ResNet-18/101 state dicts given as `backbone_weights_file` (torchvision's
    ImageNet weights cannot be downloaded here), LWL's the random Mask R-CNN ResNet-50 the built files carry: every
    row's label says so, as the tables then do."""
    import torch
    import torchvision

    backbones = {}
    for name in ("resnet18", "resnet101"):
        torch.manual_seed(0)
        backbones[name] = tmp_path / f"random-{name}.pth"
        torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), backbones[name])
    work = workflow_copy(tmp_path)
    paper = yaml.safe_load((REPO / "config/presets/paper.yaml").read_text())
    davis = ["davis2017-val", "davis2016-val"]
    rows = {}
    for name, spec in paper["rows"].items():
        if name != "first-frame-copy" and "released" not in spec or not set(davis) & set(spec["evaluate_on"]):
            continue
        spec = {**spec, "evaluate_on": [e for e in spec["evaluate_on"] if e in davis]}
        if spec["method"] == "frtm":
            backbone = spec.get("settings", {}).get("backbone", "resnet101")
            spec["settings"] = {**spec.get("settings", {}), "backbone_weights_file": str(backbones[backbone])}
            spec["label"] += f" [CPU path: random {backbone} backbone, fixture refiner]"
        elif spec["method"] == "lwl":
            spec["label"] += " [CPU path: random Mask R-CNN ResNet-50, fixture network]"
        rows[name] = spec
    preset = work / "config/presets/released.yaml"
    data = yaml.safe_load(preset.read_text())
    data.update(
        datasets={f"davis{year}": {"kind": "davis", "year": year,
                                   "root": str(tiny_davis(shared, tmp_path / f"davis{year}", year))}
                  for year in ("2016", "2017")},
        # CPU-length: the tiny frames at their size, one augmented copy, one optimiser step of each kind
        method_defaults={"frtm": {"device": "cpu", "augmented_samples": 2, "init_cg_iterations": [1],
                                  "update_cg_iterations": 1},
                         "lwl": {"device": "cpu", "crop_size": list(TINY_SIZE), "init_iterations": 1,
                                 "update_iterations": 1}},
        rows=rows)
    preset.write_text(yaml.safe_dump(data))
    # one thread a job, two jobs at a time: on two cores the small convolutions gain little from a second thread,
    # and each job's start (torch's import, the backbone's build) is single-threaded
    snakemake(work, "reports/released/tables.md", "--set-threads", "infer=1", "evaluate=1", "--config",
              "preset=released", f"released_weights={released_folder}", timeout=900)
    tables = (work / "reports/released/tables.md").read_text()
    summary = __import__("pandas").read_csv(work / "results/released/summary.csv")
    assert set(rows) == {"first-frame-copy", "frtm-ours-released", "frtm-fast-released", "frtm-dv17-released",
                         "lwl-released", "lwl-box-init-released"}  # every kind: rn101, rn18, DV17, LWL x2, copy
    assert set(summary["row"]) == set(rows) and len(summary) == 11
    records = {path.name: json.loads(path.read_text()) for path in (work / "results/released/released").glob("*.json")}
    assert set(records) == {f"{spec['released']}.json" for spec in rows.values() if "released" in spec}
    manifest = json.loads((work / "reports/released/provenance.json").read_text())
    for record in records.values():
        assert record["sha256"] == hashlib.sha256((released_folder / record["name"]).read_bytes()).hexdigest()
        assert manifest["released_weights"][record["name"]]["sha256"] == record["sha256"]
        assert f"(sha256 `{record['sha256'][:12]}`)" in tables
    assert "[CPU path: random resnet101 backbone, fixture refiner]" in tables
    assert not manifest["trained_weights"]  # nothing trained
    assert summary["J&F-Mean"].notna().all()
    # the papers' tables: each released row's DAVIS cells read published / released (released - published), but
    # lwl_stage2's beside LWL Table 3's DAVIS-fine-tuned figures, which are of another model, [other model x], and
    # the ResNet-18 files' beside FRTM fast ResNet-18 rows, of which no cited source gives a figure: not found
    published_released = r"\d+\.\d / -?\d+\.\d \([−+]\d+\.\d\)"
    cells = {"lwl-released": r"\d+\.\d / \[other model -?\d+\.\d\]", "frtm-fast-released": r"not found / -?\d+\.\d"}
    for row in set(rows) - {"first-frame-copy"}:
        lines = [line for line in tables.splitlines() if f"released row `{row}`" in line]
        assert any(re.search(r"\| " + cells.get(row, published_released), line) for line in lines), row
