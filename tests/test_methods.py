from __future__ import annotations

import json

import numpy as np
import pytest

from methods.__main__ import main as cli
from methods.runner import build_method, run
from vos_datasets import synthetic
from vos_datasets.build import build_dataset
from vos_datasets.masks import read_label_png, write_label_png


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("emb") / "d", seed=1, n_train=1, n_val=2, n_frames=8)


def test_first_frame_copy_repeats_the_given_masks(embedded, tmp_path):
    dataset = build_dataset({"kind": "davis", "root": str(embedded), "split": "val"})
    record = run(build_method("first_frame_copy"), dataset, tmp_path / "out", tmp_path / "t.json", progress=False)
    assert record["frames"] == 16 and json.loads((tmp_path / "t.json").read_text())["method"] == "first_frame_copy"
    for seq in dataset:
        firsts = seq.object_first_frames()
        last = read_label_png(tmp_path / "out" / seq.name / f"{seq.frames[-1]}.png")
        for oid, frame in firsts.items():
            np.testing.assert_array_equal(last == oid, seq.read_mask(frame) == oid)
        before = [f for f in seq.frames if all(f < first for first in firsts.values())]
        for frame in before:  # nothing is predicted before any object is given
            assert not read_label_png(tmp_path / "out" / seq.name / f"{frame}.png").any()


def test_empty_first_mask_is_refused_and_nothing_is_left(embedded, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(embedded, copy)
    write_label_png(copy / "Annotations/480p/synth-val-00/00000.png", np.zeros((240, 432), np.uint8))
    meta = json.loads((copy / "meta.json").read_text())
    meta["videos"]["synth-val-00"]["objects"]["1"]["frames"][0] = "00000"
    (copy / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    code = cli(["infer", "--method", "first_frame_copy", "--dataset",
                json.dumps({"kind": "davis", "root": str(copy), "split": "val"}), "--out", str(out), "--quiet"])
    assert code == 1
    assert "00000.png: object 1 is empty" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_unknown_method_and_settings():
    with pytest.raises(ValueError, match="unknown method"):
        build_method("nope")
    with pytest.raises(ValueError, match="takes no settings"):
        build_method("first_frame_copy", {"c": 96})


# --- the FPS protocols (methods.runner) -------------------------------------------------------------------
class RecordingMethod:
    """Copies the first mask and records how the runner drives it: the frames of each call, whether it was
    handed the preloaded sequence, and (a stand-in for device work) sleeps on the frames of a warm-up call."""

    name = "recording"

    def __init__(self, device: str = "cpu", warm_up_sleep: float = 0.0) -> None:
        self.device, self.warm_up_sleep = device, warm_up_sleep
        self.calls: list[tuple[str, tuple[str, ...], str]] = []
        self.preloads: list[str | None] = []

    def preload(self, sequence) -> None:
        self.preloads.append(None if sequence is None else sequence.name)

    def run_sequence(self, sequence):
        import time

        warm_up = not any(name == sequence.name for name, _, _ in self.calls)
        self.calls.append((sequence.name, tuple(sequence.frames), type(sequence).__name__))
        first = min(sequence.object_first_frames().values())
        labels = sequence.read_mask(first)
        for frame in sequence.frames:
            sequence.read_image(frame)
            if warm_up:
                time.sleep(self.warm_up_sleep)
            yield frame, labels.copy()


def test_warm_up_frames_run_before_each_sequence_and_are_not_timed(embedded, tmp_path):
    dataset = build_dataset({"kind": "davis", "root": str(embedded), "split": "val"})
    method = RecordingMethod(warm_up_sleep=0.05)
    record = run(method, dataset, tmp_path / "out", progress=False, warm_up_frames=3)
    for sequence in dataset:
        calls = [(frames, kind) for name, frames, kind in method.calls if name == sequence.name]
        # the warm-up on the first 3 frames, then the timed pass over every frame, both on the preloaded frames
        assert calls == [(sequence.frames[:3], "PreloadedSequence"), (sequence.frames, "PreloadedSequence")]
        timed = record["sequences"][sequence.name]
        assert timed["frames"] == len(sequence.frames) and timed["seconds"] < 0.05  # the warm-up's sleeps: 0.15 s
        assert sorted(p.stem for p in (tmp_path / "out" / sequence.name).iterdir()) == list(sequence.frames)
    assert method.preloads == [x for s in dataset for x in (s.name, None)]  # a method's own preload, then freed
    streamed = RecordingMethod()
    record = run(streamed, dataset, tmp_path / "streamed", progress=False, fps_protocol="streaming")
    assert [kind for _, _, kind in streamed.calls] == ["Sequence"] * len(list(dataset))  # read as it comes
    assert record["fps_protocol"] == "streaming" and record["warm_up_frames"] == 0
    with pytest.raises(ValueError, match="fps_protocol='fast': choose one of \\['authors', 'streaming'\\]"):
        run(method, dataset, tmp_path / "x", progress=False, fps_protocol="fast")


def test_the_timing_record_names_the_device_its_model_and_the_threads(embedded, tmp_path):
    """As the machine that ran the method saw it: the job writes timing.json there."""
    from methods.runner import cpu_model

    dataset = build_dataset({"kind": "davis", "root": str(embedded), "split": "val"})
    run(build_method("first_frame_copy"), dataset, tmp_path / "out", tmp_path / "t.json", progress=False)
    record = json.loads((tmp_path / "t.json").read_text())
    assert record["device"] == "cpu" and record["device_model"] == cpu_model() and "cores" in cpu_model()
    assert "threads" in record


def test_a_cuda_method_is_synchronised_once_per_sequence_and_named_by_its_gpu(embedded, tmp_path, monkeypatch):
    import torch

    synchronised = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synchronised.append(str(device)))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA Test GPU")
    dataset = build_dataset({"kind": "davis", "root": str(embedded), "split": "val"})
    record = run(RecordingMethod(device="cuda:0"), dataset, tmp_path / "out", progress=False, warm_up_frames=2)
    assert record["device"] == "cuda:0" and record["device_model"] == "NVIDIA Test GPU"
    sequences = len(list(dataset))
    assert synchronised == ["cuda:0"] * (2 * sequences)  # after each warm-up and at each sequence's end
    synchronised.clear()
    run(RecordingMethod(device="cuda:0"), dataset, tmp_path / "streamed", progress=False, fps_protocol="streaming")
    assert len(synchronised) == sum(len(s.frames) for s in dataset)  # streaming: once per frame


def test_on_the_cpu_the_synchronise_is_a_no_op(monkeypatch):
    import torch

    from methods.runner import synchronise

    def refuse(device=None):
        raise AssertionError("synchronised a CPU run")

    monkeypatch.setattr(torch.cuda, "synchronize", refuse)
    synchronise("cpu")
    with pytest.raises(AssertionError):
        synchronise("cuda:0")
