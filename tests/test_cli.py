"""vos-infer (methods/cli.py): variants and preset rows by name on a folder of frames or a DAVIS folder, and its
one-line refusals; the settings it merges as the workflow does (methods/rows.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from methods.cli import main
from methods.rows import load_preset, load_variants, resolve_row, resolve_variant
from vos_datasets.frames_folder import folder_sequence
from vos_datasets.masks import read_label_png, write_label_png

REPO = Path(__file__).resolve().parent.parent
SMALL_FRTM = ["--set", "target_channels=8", "--set", "augmented_samples=3", "--set", "init_cg_iterations=[3,3]",
              "--set", "update_cg_iterations=3", "--set", "update_interval=2", "--set", "memory_capacity=6",
              "--device", "cpu"]


@pytest.fixture
def video(small_embedded, tmp_path) -> tuple[Path, Path]:
    """One video as a user has it: a folder of frames, and the first frame's mask elsewhere."""
    frames = tmp_path / "my video"
    shutil.copytree(small_embedded / "JPEGImages/480p/synth-val-00", frames)
    mask = tmp_path / "first.png"
    shutil.copy(small_embedded / "Annotations/480p/synth-val-00/00000.png", mask)
    return frames, mask


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err.strip()


def test_first_frame_copy_on_a_folder_of_frames(video, tmp_path, capsys):
    frames, mask = video
    code, err = run_cli(["--variant", "first_frame_copy", "--frames", frames, "--first-mask", mask,
                         "--out", tmp_path / "out", "--quiet", "--timing", tmp_path / "timing.json"], capsys)
    assert code == 0, err
    written = sorted((tmp_path / "out" / "my video").iterdir())
    assert [p.stem for p in written] == sorted(p.stem for p in frames.iterdir())
    given = read_label_png(mask)
    objects = set(np.unique(given)) - {0}
    for png in written:  # objects entering later are not given: every frame is the first mask
        assert objects <= set(np.unique(read_label_png(png)))
        np.testing.assert_array_equal(read_label_png(png), given)
    assert (tmp_path / "timing.json").is_file()


def test_one_video_replaces_only_its_own_folder(video, tmp_path, capsys):
    frames, mask = video
    out = tmp_path / "out"
    write_label_png(out / "earlier-video" / "00000.png", np.zeros((4, 4), np.uint8))
    for _ in range(2):  # the second run replaces the first's clip/
        assert run_cli(["--variant", "first_frame_copy", "--frames", frames, "--first-mask", mask, "--out", out,
                        "--name", "clip", "--quiet"], capsys)[0] == 0
        assert sorted(p.name for p in out.iterdir()) == ["clip", "earlier-video"]


def test_frames_are_taken_in_natural_order_and_the_mask_by_its_name(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in (1, 2, 10):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(frames / f"frame{index}.png")
    ids = np.zeros((8, 8), np.uint8)
    ids[2:5, 2:5] = 1
    write_label_png(tmp_path / "masks" / "frame2.png", ids)
    sequence = folder_sequence(frames, tmp_path / "masks" / "frame2.png")
    assert sequence.frames == ("frame1", "frame2", "frame10")
    assert sequence.object_first_frames() == {1: "frame2"}
    write_label_png(tmp_path / "other-name.png", ids)
    assert folder_sequence(frames, tmp_path / "other-name.png").object_first_frames() == {1: "frame1"}


def test_frtm_variant_with_a_head_on_a_folder_and_on_a_davis_folder(small_embedded, video, tmp_path, capsys):
    import torch

    from methods.core.backbones import build_backbone
    from methods.frtm.networks import build_head, save_head

    torch.manual_seed(0)
    head = tmp_path / "head.pt"
    save_head(head, build_head("refiner", build_backbone("efficientnet_lite0", pretrained=False).channels),
              "refiner", "efficientnet_lite0")
    frames, mask = video
    # no backbone named: the head's own (efficientnet_lite0), not the default ResNet-101 it would refuse
    code, err = run_cli(["--variant", "frtm/ours", "--checkpoint", head, *SMALL_FRTM, "--frames", frames,
                         "--first-mask", mask, "--out", tmp_path / "out", "--quiet"], capsys)
    assert code == 0, err
    assert len(list((tmp_path / "out" / "my video").glob("*.png"))) == len(list(frames.glob("*.jpg")))
    code, err = run_cli(["--variant", "frtm/no-update", "--checkpoint", head, *SMALL_FRTM,
                         "--davis", small_embedded, "--split", "val", "--out", tmp_path / "all", "--quiet"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["synth-val-00", "synth-val-01"]


@pytest.mark.parametrize("argv, names", [
    (["--variant", "frtm/ourz"], ["frtm/ourz", "frtm/ours", "--list"]),
    (["--variant", "frtm/ours"], ["--checkpoint"]),
    (["--variant", "frtm/ours", "--checkpoint", "missing.pt"], ["missing.pt", "--checkpoint"]),
    (["--preset", "ci", "--row", "frtm-no-updat"], ["frtm-no-updat", "frtm-no-update"]),
    (["--preset", "ci", "--row", "frtm-no-update"], ["--checkpoint", "results/ci/training/frtm-refiner/head.pt"]),
    (["--preset", "nope", "--row", "x"], ["nope", "ci"]),
    (["--variant", "first_frame_copy", "--set", "device=cpu"], ["first_frame_copy", "device"]),
    (["--variant", "first_frame_copy", "--set", "device"], ["--set device", "KEY=VALUE"]),
    (["--variant", "first_frame_copy", "--name", "../up"], ["--name '../up'", "plain folder name"]),
])
def test_bad_choices_are_one_line_naming_them(video, tmp_path, capsys, argv, names):
    frames, mask = video
    code, err = run_cli([*argv, "--frames", frames, "--first-mask", mask, "--out", tmp_path / "out"], capsys)
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    for name in names:
        assert name in err
    assert not (tmp_path / "out").exists()


def test_bad_input_is_one_line_naming_the_file_and_the_fix(small_embedded, video, tmp_path, capsys):
    frames, mask = video
    small = tmp_path / "small.png"
    Image.open(mask).resize((40, 20)).save(small)
    rgb = tmp_path / "rgb.png"
    Image.open(mask).convert("RGB").save(rgb)
    empty = tmp_path / "empty.png"
    write_label_png(empty, np.zeros(read_label_png(mask).shape, np.uint8))
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    cases = [
        (["--frames", tmp_path / "nowhere", "--first-mask", mask], ["nowhere", "frames folder not found"]),
        (["--frames", frames, "--first-mask", tmp_path / "none.png"], ["none.png", "not found"]),
        (["--frames", frames, "--first-mask", small], ["small.png", "40x20", "160x96", "size of their frames"]),
        (["--frames", frames, "--first-mask", rgb], ["rgb.png", "indexed"]),
        (["--frames", frames, "--first-mask", empty], ["empty.png", "no object"]),
        (["--frames", frames], ["--first-mask"]),
        (["--davis", tmp_path / "nodavis"], ["nodavis", "not a DAVIS folder"]),
    ]
    for argv, names in cases:
        code, err = run_cli(["--variant", "first_frame_copy", *argv, "--out", tmp_path / "out"], capsys)
        assert code == 2 and err.startswith("error: ") and "\n" not in err, (argv, err)
        for name in names:
            assert name in err, (argv, err)
    # --out that would swallow the frames, or that holds other files (replaced as a whole for a DAVIS folder)
    code, err = run_cli(["--variant", "first_frame_copy", "--frames", frames, "--first-mask", mask,
                         "--out", frames.parent], capsys)
    assert code == 2 and "would replace the input" in err and frames.is_dir()
    code, err = run_cli(["--variant", "first_frame_copy", "--davis", small_embedded,
                         "--out", stray], capsys)
    assert code == 2 and "notes.txt" in err and (stray / "notes.txt").read_text() == "mine"
    pictures = tmp_path / "pictures"  # PNGs, but not a result's layout (<video>/<frame>.png)
    write_label_png(pictures / "holiday.png", np.zeros((4, 4), np.uint8))
    code, err = run_cli(["--variant", "first_frame_copy", "--davis", small_embedded, "--out", pictures], capsys)
    assert code == 2 and "holiday.png" in err and (pictures / "holiday.png").is_file()


def test_a_row_merges_variant_preset_defaults_and_its_own_settings_as_the_workflow(tmp_path):
    preset = {"method_defaults": {"frtm": {"backbone": "resnet18", "update_interval": 4}},
              "rows": {"r": {"method": "frtm", "variant": "fast", "settings": {"update_interval": 2},
                             "checkpoint": "w.pt"}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(preset))
    row = resolve_row(str(tmp_path / "p.yaml"), "r")
    fast = load_variants()["frtm"]["fast"]["settings"]
    assert row.settings == {**fast, "backbone": "resnet18", "update_interval": 2}
    assert row.weights == "w.pt" and row.label == "FRTM Ours (fast)"
    lwl = resolve_variant("lwl/box-init")
    assert lwl.settings["box_init"] is True and lwl.settings["network"]["box_encoder"] is True


def test_every_preset_row_resolves_and_every_variant_is_listed(capsys):
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    for method, entries in load_variants().items():
        for name in entries:
            assert f"{method}/{name}" in listed
    for preset in sorted((REPO / "config/presets").glob("*.yaml")):
        for row in load_preset(preset.stem)[1]["rows"]:  # the released preset's: the paper preset's (subset_of)
            assert resolve_row(preset.stem, row).method in ("first_frame_copy", "frtm", "lwl")
    released = resolve_row("released", "frtm-fast-released")
    assert released.settings["backbone"] == "resnet18" and released.settings["device"] == "cuda"


def test_help_shows_an_example_and_imports_no_torch():
    code = ("import sys; from methods.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported by --help'")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert "vos-infer --variant frtm/ours --checkpoint" in done.stdout
    assert "OUT/<video>/<frame>.png" in done.stdout
