"""The reviewers' pre-flight (benchmarks/preflight.py, docs/reproducing.md "The pre-flight: run it first"): the CUDA build
against the GPU, the weights files, a failing training reported in one line while the others run, and the reduced
CPU form end to end on tiny inputs (what CI runs instead of the GPU form)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import preflight  # noqa: E402
from methods.core.backbone_names import PretrainedWeights  # noqa: E402

# torch.cuda.get_arch_list() of real builds: 2.x CUDA 12.6 (Maxwell to Hopper), CUDA 13 (Turing to Blackwell)
CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]


@pytest.mark.parametrize(("arch_list", "capability", "runs"), [
    (CU126, (7, 0), True),  # V100 on a CUDA 12 build
    (CU130, (7, 0), False),  # V100 on a CUDA 13 build: no sm_70 kernels, no PTX old enough
    (CU130, (8, 9), True),  # L40 (8.9): the sm_86 cubin runs on 8.x from 8.6 up
    (CU126, (10, 0), False),  # B200 on a CUDA 12.6 build: no sm_100 cubin, no PTX
    (["sm_90a"], (9, 0), True),  # a feature-specific cubin runs on its own capability only
    (["sm_80a"], (8, 6), False),
    (["compute_80"], (9, 0), True),  # PTX is compiled by the driver for any later GPU
    ([], (8, 0), False),
])
def test_a_build_runs_on_a_gpu_when_it_has_a_cubin_of_its_major_version_or_older_ptx(arch_list, capability, runs):
    assert preflight.arch_runs_on(arch_list, capability) is runs


def test_a_build_without_kernels_for_the_gpu_is_refused_in_one_line_naming_the_build_to_install():
    problem = preflight.environment_problem("13.0", CU130, (7, 0), "Tesla V100-SXM2-32GB")
    assert "\n" not in problem
    assert "not for this Tesla V100-SXM2-32GB (sm_70)" in problem and "sm_75, sm_80" in problem
    assert "CUDA 12 build (cu126) of envs/torch.yaml" in problem
    assert "cu128" in preflight.environment_problem("12.6", CU126, (12, 0), "RTX 5090")
    assert preflight.environment_problem("12.6", CU126, (9, 0), "H100") == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_the_gpu_form_without_a_gpu_stops_after_the_environment_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    out = tmp_path / "RESULTS-gpu.md"
    assert preflight.main(["--out", str(out)]) == 1
    text = out.read_text()
    assert "| environment | torch build | FAILED | " in text and "no CUDA device visible" in text
    assert "| weights |" not in text and "| training |" not in text  # nothing else runs on a build that cannot


def _torchvision_file(folder: Path, content: bytes, named_after: bytes) -> tuple[PretrainedWeights, Path]:
    name = f"resnet18-{hashlib.sha256(named_after).hexdigest()[:8]}.pth"
    (folder / name).write_bytes(content)
    return PretrainedWeights("resnet18", "IMAGENET1K_V1", name, "torchvision", "https://example.org/" + name), folder / name


def test_a_weights_file_whose_sha256_differs_from_its_name_is_refused_naming_it(tmp_path):
    weights, path = _torchvision_file(tmp_path, b"the whole file", b"the whole file")
    assert preflight.weights_file_problem(weights, path) == ""
    weights, path = _torchvision_file(tmp_path, b"the whole f", b"the whole file")  # a download cut short
    problem = preflight.weights_file_problem(weights, path)
    assert str(path) in problem and "does not start with" in problem and weights.url in problem


def test_a_mask_rcnn_file_that_is_not_one_is_refused_naming_it(tmp_path):
    from methods.core.backbone_names import pretrained_weights

    weights = pretrained_weights("resnet50_mrcnn")
    path = tmp_path / weights.file_name
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    problem = preflight.weights_file_problem(weights, path)
    assert str(path) in problem and "not a Mask R-CNN ResNet-50 state" in problem and weights.url in problem


def test_a_file_fetched_by_the_workflow_is_found_in_resources_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(preflight, "WORKFLOW_WEIGHTS", tmp_path / "resources" / "weights")
    weights, _ = _torchvision_file(tmp_path, b"weights", b"weights")
    assert preflight.find_weights_file(weights, [tmp_path / "empty"]) is None
    preflight.WORKFLOW_WEIGHTS.mkdir(parents=True)
    (preflight.WORKFLOW_WEIGHTS / weights.file_name).write_bytes(b"weights")
    assert preflight.find_weights_file(weights, [tmp_path / "empty"]) == preflight.WORKFLOW_WEIGHTS / weights.file_name


def test_every_backbone_file_of_the_paper_preset_is_listed_missing_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(preflight, "WORKFLOW_WEIGHTS", tmp_path / "resources" / "weights")
    checks = preflight.weights_checks(preflight.Plan(), [tmp_path / "empty"])
    files = {check.item.rsplit("(", 1)[1].rstrip(")") for check in checks}
    # FRTM's ResNet-101 and -18 (V1, as frtm-vos loads), LWL's Mask R-CNN file and ImageNet ResNet-50
    assert files == {"resnet101-63fe2227.pth", "resnet18-f37072fd.pth", "e2e_mask_rcnn_R_50_FPN_1x_converted.pkl",
                     "resnet50-0676ba61.pth"}
    assert all(check.status == preflight.FAILED and "not found in" in check.detail and "\n" not in check.detail
               for check in checks)
    assert preflight.missing_files(checks) == files
    reduced = preflight.weights_checks(preflight.Plan.cpu(), [])
    assert all(check.status == preflight.SKIPPED and "random backbones" in check.detail for check in reduced)


def test_trainings_run_after_the_training_they_start_from():
    trainings = {"b2": {"init_from": "b1"}, "a": {}, "b1": {}, "c": {"init_from": "b2"}}
    order = preflight.training_order(trainings)
    assert sorted(order) == sorted(trainings)
    assert order.index("b1") < order.index("b2") < order.index("c")


def test_a_failing_training_is_reported_in_one_line_and_the_others_run(tmp_path, monkeypatch):
    """The training's own first-step check stops it with one line (methods/core/trainer.py): here its entry
    point raises as that check does; the training that starts from it is not run, the next one is."""
    import methods.frtm.training as frtm_training
    import methods.lwl.training as lwl_training

    trainings = {
        "frtm-refiner": {"method": "frtm", "gpus": 1, "settings": {"head": "refiner", "backbone": "resnet101"}},
        "lwl-stage1": {"method": "lwl", "gpus": 4, "settings": {"network": {"backbone": "resnet50_mrcnn"}}},
        "lwl-stage2": {"method": "lwl", "gpus": 4, "init_from": "lwl-stage1",
                       "settings": {"network": {"backbone": "resnet50_mrcnn"}, "stage": 2}},
        "frtm-d-only": {"method": "frtm", "gpus": 1, "settings": {"head": "scale_offset"}}}
    monkeypatch.setattr(preflight, "preset_config", lambda name: {"trainings": trainings})
    ran = []

    def frtm_train(config, out, progress=True):
        ran.append((out.parent.name, config.batch_size, config.epochs, config.sources[0]["pairs"]))
        return {"history": [{"loss": 0.5}]}

    def lwl_train(config, out, progress=True):
        ran.append((out.parent.name, config.batch_size, config.epochs, config.iterations_per_epoch))
        raise ValueError("pre-flight: the decoder's output is saturated (99.6 % of pixels |logit| > 20)\nmore")

    monkeypatch.setattr(frtm_training, "train", frtm_train)
    monkeypatch.setattr(lwl_training, "train", lwl_train)
    plan = preflight.Plan(device="cpu", synthetic_size=(96, 160))
    checks = preflight.training_checks(plan, None, tmp_path, set(), lambda: False)
    status = {check.item: (check.status, check.detail) for check in checks}
    assert status["lwl-stage1"] == (preflight.FAILED, "ValueError: pre-flight: the decoder's output is saturated "
                                                      "(99.6 % of pixels |logit| > 20)")
    assert status["lwl-stage2"] == (preflight.SKIPPED, "starts from lwl-stage1, which did not train here")
    assert status["frtm-refiner"][0] == status["frtm-d-only"][0] == preflight.OK
    # the paper's settings, one GPU's share of the batch, one epoch of 2 iterations
    assert ran == [("frtm-refiner", 16, 1, 32), ("lwl-stage1", 5, 1, 2), ("frtm-d-only", 16, 1, 32)]
    assert status["data"][1].startswith("every training reads 2 synthetic 160x96 videos")


def test_a_training_whose_weights_are_missing_is_not_started(tmp_path, monkeypatch):
    import methods.frtm.training as frtm_training

    trainings = {"frtm-refiner": {"method": "frtm", "settings": {"backbone": "resnet101"}}}
    monkeypatch.setattr(preflight, "preset_config", lambda name: {"trainings": trainings})
    monkeypatch.setattr(frtm_training, "train", lambda *a, **k: pytest.fail("started without its weights"))
    checks = preflight.training_checks(preflight.Plan(device="cpu", synthetic_size=(64, 64)), None, tmp_path,
                                       {"resnet101-63fe2227.pth"}, lambda: False)
    assert (checks[-1].status, checks[-1].detail) == (preflight.SKIPPED, "not run: resnet101-63fe2227.pth is "
                                                                         "missing (weights above)")


def tiny_davis2016(shared: Path, out: Path, sequences: tuple[str, ...], frames: int = 3,
                   size: tuple[int, int] = (96, 160)) -> Path:
    """A DAVIS 2016 folder of `sequences`' first frames from ../shared, shrunk (images bilinear, masks nearest)."""
    import shutil

    from PIL import Image

    source = shared / "data/davis2016"
    for sequence in sequences:
        for index in range(frames):
            for folder, suffix, resample in (("JPEGImages", "jpg", Image.BILINEAR), ("Annotations", "png", Image.NEAREST)):
                target = out / folder / "480p" / sequence / f"{index:05d}.{suffix}"
                target.parent.mkdir(parents=True, exist_ok=True)
                with Image.open(source / folder / "480p" / sequence / f"{index:05d}.{suffix}") as image:
                    image.resize(size[::-1], resample).save(target)
    (out / "ImageSets/480p").mkdir(parents=True)
    (out / "ImageSets/480p/val.txt").write_text("".join(
        f"/JPEGImages/480p/{s}/00000.jpg /Annotations/480p/{s}/00000.png\n" for s in sequences))
    shutil.copy(source / "db_info.yml", out / "db_info.yml")
    return out


def test_the_reduced_form_runs_every_part_end_to_end_on_the_cpu(tmp_path, monkeypatch, shared):
    """What CI runs instead of the GPU pre-flight: the released FRTM ResNet-101 file built from the official
    fixtures (tests/released_files.py), two DAVIS 2016 val sequences shrunk to 3 frames of 96x160, random backbones,
    every training of the paper preset for one iteration, the speed rows; the report also under $OUT."""
    from tests.released_files import write_released_file

    released = tmp_path / "released"
    write_released_file(released, "rn101_all.pth")
    davis = tiny_davis2016(shared, tmp_path / "davis2016", preflight.RELEASED_SEQUENCES)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no pretrained files: reported, not needed
    monkeypatch.setenv("OUT", str(tmp_path / "device-out"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # its scratch folder (2.4 GB here) goes when done
    out = tmp_path / "preflight.md"
    # the interactive part on a stand-in of one sequence (2 interactions), where the optional extra is installed
    interactive = importlib.util.find_spec("davisinteractive") is not None
    standin = tmp_path / "standin"
    if interactive:
        from interactive.__main__ import main as interactive_main

        assert interactive_main(["standin", "--quiet", "--shared", str(shared), "--kind", "single", "--sequences",
                                 "blackswan", "--max-frames", "3", "--scale", "0.25", "--out", str(standin)]) == 0
    status = preflight.main(["--reduced", "--released-weights", str(released), "--davis", str(davis),
                             "--train-data", str(tmp_path / "none"), "--out", str(out),
                             "--interactive-root", str(standin), "--interactive-sequence", "blackswan"])
    text = out.read_text()
    assert status == 0, text
    assert list((tmp_path / "tmp").glob("preflight-*")) == []
    assert text == (tmp_path / "device-out/RESULTS-gpu.md").read_text()
    assert "REDUCED CPU FORM" in text and "No check failed" in text and "Command: `python benchmarks/preflight.py" in text
    assert "| environment | torch build | skipped |" in text
    assert "| released weights | rn101_all.pth | ok | frtm resnet101 refiner" in text
    assert "| released weights | lwl_stage2.pth | skipped |" in text  # not in the folder: its row would be left out
    assert f"| released row | {preflight.RELEASED_ROW} | ok | rn101_all.pth on blackswan and car-shadow (6 frames): J&F" in text
    if interactive:  # the paper preset's released FRTM session, its settings as its workflow job gets them
        assert "| interactive | frtm-interactive-released | ok | blackswan scribble 1: J&F" in text
        assert "| interactive | lwl-interactive-released | skipped |" in text and "lwl_stage2.pth not found" in text
    else:
        assert "| interactive | all | skipped |" in text
    for training in preflight.preset_config("paper")["trainings"]:
        assert f"| training | {training} | ok | 1 iteration(s) of batch 1" in text, training
    for row in ("FRTM backbone only", "FRTM Ours (ResNet-101)", "FRTM Ours fast", "LWL backbone only", "LWL ("):
        assert row in text
