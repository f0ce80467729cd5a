"""The evaluator (python -m metrics) on bad or hostile input: a one-line error naming the file and the fix,
never a wrong figure, a hang, a traceback, or a write outside --out.

Each test targets one item of the evaluator's hardening; the item is named in its docstring.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import metrics.parallel
import metrics.tables
from metrics import EvaluationError, evaluate, gt_cache
from metrics.__main__ import main as cli
from tests.conftest import write_sequence

ROOT = Path(__file__).resolve().parents[1]


def square(shape=(20, 24), y=3, x=3, size=8, value=1):
    ids = np.zeros(shape, np.uint8)
    ids[y:y + size, x:x + size] = value
    return ids


def write_grey(folder: Path, frames: list[np.ndarray], compress_level: int = 6) -> Path:
    """DAVIS 2016 style: 8-bit grayscale PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame, mode="L").save(folder / f"{index:05d}.png", compress_level=compress_level)
    return folder


def run_cli(gt, pred, out, *extra, workers=("--workers", "1")):
    return cli([str(gt), str(pred), "--out", str(out), "--quiet", "--no-cache", *workers, *extra])


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for fragment in fragments:
        assert str(fragment) in err, err
    return err


def no_tables(out: Path) -> bool:
    return not out.exists() or not list(out.glob("*.csv"))


@pytest.fixture
def good(tmp_path):
    frames = [square()] * 4
    write_sequence(tmp_path / "gt", "seq", frames)
    write_sequence(tmp_path / "pred", "seq", frames)
    return tmp_path / "gt", tmp_path / "pred"


# --- 1: one mask convention per ground-truth sequence ----------------------------------------------------

@pytest.mark.parametrize("odd", [2, 0])
def test_stray_grey_pixel_in_davis2016_frame_is_an_error_naming_it(tmp_path, capsys, odd):
    """Item 1. Before: frame 2 read as DAVIS 2017 (255 = void), J = F = 0 there, exit 0; a stray value in
    frame 0 made 128 phantom objects."""
    frames = [square(value=255) for _ in range(5)]
    frames[odd][0, 0] = 128
    gt = write_grey(tmp_path / "gt" / "seq", frames).parent
    write_sequence(tmp_path / "pred", "seq", [square()] * 5)
    out = tmp_path / "out"
    assert run_cli(gt, tmp_path / "pred", out) == 1
    one_line_error(capsys, gt / "seq" / f"{odd:05d}.png", "DAVIS 2016", "--gt-format")
    assert no_tables(out)


def test_davis2016_sequence_with_empty_frames_still_reads_as_davis2016(tmp_path):
    """Item 1: an all-background frame agrees with either reading, and 255 stays the object elsewhere."""
    frames = [square(value=255), np.zeros((20, 24), np.uint8), square(value=255), square(value=255)]
    gt = write_grey(tmp_path / "gt" / "seq", frames).parent
    pred = [square(), np.zeros((20, 24), np.uint8), square(), square()]
    write_sequence(tmp_path / "pred", "seq", pred)
    result = evaluate(gt, tmp_path / "pred", workers=1, progress=False)
    assert result.sequences[0].object_ids == [1]
    assert result.global_statistics()["J-Mean"] == 1.0


def test_grey_ids_sequence_is_davis2017_throughout(tmp_path):
    """Item 1: grey PNGs holding ids (1, 2, void 255) are one DAVIS 2017 sequence, not a frame-by-frame guess."""
    frame = square(value=1)
    frame[14:18, 14:18] = 2
    frame[0, :] = 255
    gt = write_grey(tmp_path / "gt" / "seq", [frame] * 4).parent
    write_sequence(tmp_path / "pred", "seq", [np.where(frame == 255, 0, frame).astype(np.uint8)] * 4)
    result = evaluate(gt, tmp_path / "pred", workers=1, progress=False)
    assert result.sequences[0].object_ids == [1, 2]
    assert result.global_statistics()["J-Mean"] == 1.0


# --- 2: a sequence with no scorable frame -----------------------------------------------------------------

@pytest.mark.parametrize("n_frames", [1, 2])
def test_sequence_without_scored_frame_is_refused(tmp_path, capsys, good, n_frames):
    """Item 2. Before: the global figures were NaN (empty cells in the CSV), exit 0."""
    gt, pred = good
    write_sequence(gt, "short", [square()] * n_frames)
    write_sequence(pred, "short", [square()] * n_frames)
    out = tmp_path / "out"
    assert run_cli(gt, pred, out) == 1
    one_line_error(capsys, gt / "short", "--keep-first-last")
    assert no_tables(out)
    assert run_cli(gt, pred, out, "--keep-first-last") == 0  # every frame scored: fine


# --- 3: a sequence named twice ------------------------------------------------------------------------------

def test_sequence_named_twice_is_refused(tmp_path, capsys, good):
    """Item 3. Before: scored twice (2 objects in 2 sequences), exit 0."""
    gt, pred = good
    out = tmp_path / "out"
    assert run_cli(gt, pred, out, "--sequences", "seq", "seq") == 1
    one_line_error(capsys, "'seq'", "more than once")
    assert no_tables(out)


# --- 4, 5: the ground-truth cache ------------------------------------------------------------------------

def test_cache_sees_an_edit_that_keeps_size_and_mtime(tmp_path):
    """Item 4. Before: the cache key (name, size, mtime) matched and the stale frame was scored."""
    gt = tmp_path / "gt" / "seq"
    gt.mkdir(parents=True)
    for index in range(4):  # uncompressed PNGs: the size does not depend on the pixels
        Image.fromarray(square(), mode="P").save(gt / f"{index:05d}.png", compress_level=0)
    write_sequence(tmp_path / "pred", "seq", [square()] * 4)
    cache = tmp_path / "cache"
    first = evaluate(gt.parent, tmp_path / "pred", workers=1, progress=False, cache_dir=cache)
    assert first.global_statistics()["J-Mean"] == 1.0
    edited = gt / "00002.png"
    before = edited.stat()
    Image.fromarray(square(x=14), mode="P").save(edited, compress_level=0)
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert edited.stat().st_size == before.st_size and edited.stat().st_mtime_ns == before.st_mtime_ns
    fresh = evaluate(gt.parent, tmp_path / "pred", workers=1, progress=False).global_statistics()
    cached = evaluate(gt.parent, tmp_path / "pred", workers=1, progress=False, cache_dir=cache).global_statistics()
    assert fresh["J-Mean"] < 1.0
    assert cached == fresh


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_damaged_cache_entry_is_discarded_and_rewritten(tmp_path, capsys, good, damage):
    """Item 5. Before: EOFError / BadZipFile on this and every later run."""
    gt, pred = good
    cache = tmp_path / "cache"
    expected = evaluate(gt, pred, workers=1, progress=False, cache_dir=cache).global_statistics()
    (entry,) = cache.glob(f"*{gt_cache.SUFFIX}")
    data = entry.read_bytes()
    entry.write_bytes({"empty": b"", "truncated": data[:len(data) // 2], "garbage": b"x" * len(data)}[damage])
    capsys.readouterr()
    assert evaluate(gt, pred, workers=1, progress=False, cache_dir=cache).global_statistics() == expected
    err = capsys.readouterr().err
    assert "damaged ground-truth cache entry" in err and str(entry) in err and len(err.strip().splitlines()) == 1
    assert entry.read_bytes() == data  # decoded again and stored afresh
    assert evaluate(gt, pred, workers=1, progress=False, cache_dir=cache).global_statistics() == expected
    assert capsys.readouterr().err == ""


def test_cache_entries_are_written_durably(tmp_path, good, monkeypatch):
    """Item 5. Before: no fsync, so a crash could leave an empty entry under its final name."""
    gt, pred = good
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    evaluate(gt, pred, workers=1, progress=False, cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob(f"*{gt_cache.SUFFIX}")
    assert any(Path(name).parent == entry.parent and Path(name).name.startswith(f".{entry.name}.")
               for name in synced), synced  # the temporary file, before its rename


# --- 6: the output set -------------------------------------------------------------------------------------

def global_j(out: Path) -> float:
    return float(pd.read_csv(out / "global_results-val.csv")["J-Mean"][0])


def test_interrupted_write_never_leaves_a_mixed_set(tmp_path, good, monkeypatch):
    """Item 6. Before: a run killed after two files left its global and per-sequence tables beside the
    previous run's per-object, per-frame and protocol files."""
    gt, pred = good
    out = tmp_path / "out"
    assert run_cli(gt, pred, out) == 0  # run A: J = 1
    write_sequence(pred, "seq", [square(x=10)] * 4)  # run B scores lower
    real = metrics.tables.atomic_path
    calls = []

    def dies_at_third_file(path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(path)

    monkeypatch.setattr(metrics.tables, "atomic_path", dies_at_third_file)
    with pytest.raises(KeyboardInterrupt):
        run_cli(gt, pred, out)
    present = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert "protocol-val.json" not in present  # no completion marker: the set is known to be incomplete
    runs = set()
    if "global_results-val.csv" in present:
        runs.add(round(global_j(out), 3))
    for name in ("per-sequence_results-val.csv", "per-object_results-val.csv"):
        if name in present:
            runs.add(round(float(pd.read_csv(out / name)["J-Mean"].mean()), 3))
    assert len(runs) <= 1, (present, runs)  # every file present comes from the same run


def test_two_runs_on_one_folder_take_turns(tmp_path, good):
    """Item 6. Before: no lock, so two runs writing the same --out interleaved their files."""
    gt, pred = good
    out = tmp_path / "out"
    out.mkdir()
    result = evaluate(gt, pred, workers=1, progress=False)
    holder = os.open(out / ".metrics-output.lock", os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another run is writing its set
    writer = threading.Thread(target=metrics.tables.write_tables, args=(result, out))
    writer.start()
    writer.join(1.0)
    assert writer.is_alive() and not list(out.glob("*.csv"))  # waits for the other run's set
    os.close(holder)
    writer.join(30)
    assert not writer.is_alive() and len(list(out.glob("*.csv"))) == 4


def test_completion_marker_lists_every_table(tmp_path, good):
    """Item 6: protocol-<set>.json is written last with each CSV's SHA-256; a file of another run is caught."""
    from metrics.tables import check_output_set

    gt, pred = good
    out = tmp_path / "out"
    assert run_cli(gt, pred, out) == 0
    paths = check_output_set(out, "val")
    assert set(json.loads(paths["protocol"].read_text())["files"]) == {
        "global_results-val.csv", "per-sequence_results-val.csv", "per-object_results-val.csv",
        "per-frame_results-val.csv"}
    other = tmp_path / "other"
    write_sequence(pred, "seq", [square(x=10)] * 4)
    assert run_cli(gt, pred, other) == 0
    (out / "per-sequence_results-val.csv").write_bytes((other / "per-sequence_results-val.csv").read_bytes())
    with pytest.raises(EvaluationError, match="per-sequence_results-val.csv"):
        check_output_set(out, "val")


# --- 10: special files --------------------------------------------------------------------------------------

def run_cli_process(gt, pred, out, memory_limit=None, timeout=120):
    def limit():
        if memory_limit:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "metrics", str(gt), str(pred), "--out", str(out), "--quiet",
                           "--no-cache", "--workers", "1"], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env, preexec_fn=limit)


def test_fifo_prediction_is_refused_without_waiting(tmp_path, good):
    """Item 10. Before: the evaluator blocked forever opening the FIFO."""
    gt, pred = good
    fifo = pred / "seq" / "00001.png"
    fifo.unlink()
    os.mkfifo(fifo)
    try:
        done = run_cli_process(gt, pred, tmp_path / "out", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the evaluator blocked on a FIFO")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and str(fifo) in done.stderr
    assert "FIFO" in done.stderr


def test_link_to_dev_zero_is_refused(tmp_path, good):
    """Item 10. Before: read until memory ran out (MemoryError traceback under a 1.5 GB limit)."""
    gt, pred = good
    link = pred / "seq" / "00002.png"
    link.unlink()
    link.symlink_to("/dev/zero")
    done = run_cli_process(gt, pred, tmp_path / "out", memory_limit=1536 << 20)
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and str(link) in done.stderr and "device" in done.stderr


def test_oversized_mask_file_is_refused(tmp_path, capsys, good, monkeypatch):
    """Item 10: a regular file over the size cap is refused before it is read."""
    import metrics.reading

    gt, pred = good
    monkeypatch.setattr(metrics.reading, "MAX_MASK_BYTES", 64)
    out = tmp_path / "out"
    assert run_cli(gt, pred, out) == 1
    one_line_error(capsys, gt / "seq" / "00000.png", "over the")


# --- 11: --set ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["x/../../gt/seq/evil", "../evil", "a/b", "", ".hidden", "a\\b"])
def test_set_must_be_a_plain_name(tmp_path, capsys, good, name):
    """Item 11. Before: --set x/../../gt/seq/evil wrote evil.csv and evil.json into the ground-truth folder."""
    gt, pred = good
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert run_cli(gt, pred, tmp_path / "out", "--set", name) == 2
    one_line_error(capsys, "--set", "plain name")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written anywhere


# --- 14: one-line errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["out", "parent"])
def test_out_naming_a_file_is_refused_before_scoring(tmp_path, capsys, good, monkeypatch, where):
    """Item 14. Before: FileExistsError / NotADirectoryError traceback, after all the scoring."""
    gt, pred = good
    existing = tmp_path / "results.csv"
    existing.write_text("keep me")
    out = existing if where == "out" else existing / "scores"
    monkeypatch.setattr("metrics.__main__.evaluate", lambda *a, **k: pytest.fail("scored before checking --out"))
    assert run_cli(gt, pred, out) == 2
    one_line_error(capsys, existing, "--out")
    assert existing.read_text() == "keep me"


@pytest.mark.parametrize("side", ["pred", "gt"])
def test_folder_named_like_a_frame_is_a_one_line_error(tmp_path, capsys, good, side):
    """Item 14. Before: IsADirectoryError traceback."""
    gt, pred = good
    folder = (pred if side == "pred" else gt) / "seq" / "00001.png"
    folder.unlink()
    folder.mkdir()
    out = tmp_path / "out"
    assert run_cli(gt, pred, out) == 1
    one_line_error(capsys, folder, "a folder")
    assert no_tables(out)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny 1-bit grey PNG that declares width x height pixels (Pillow's path, not the fast one)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_decompression_bomb_is_a_one_line_error(tmp_path, capsys, good):
    """Item 14. Before: PIL.Image.DecompressionBombError traceback."""
    gt, pred = good
    bomb = pred / "seq" / "00001.png"
    bomb.write_bytes(png_declaring(20000, 20000))
    out = tmp_path / "out"
    assert run_cli(gt, pred, out) == 1
    one_line_error(capsys, bomb)
    assert no_tables(out)


def test_decompression_bomb_error_from_pillow_names_the_file(tmp_path, monkeypatch):
    """Item 14: whatever raises Pillow's DecompressionBombError, the evaluator's error names the file."""
    import metrics.reading

    def bomb(path, data, convention):
        raise Image.DecompressionBombError("Image size (400000000 pixels) exceeds limit")

    monkeypatch.setattr(metrics.reading, "decode_label_bytes", bomb)
    path = tmp_path / "00001.png"
    path.write_bytes(png_declaring(20000, 20000))
    with pytest.raises(EvaluationError, match=str(path)):
        metrics.reading.read_mask(path, "auto")


# --- 16: --workers -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", ["-1", "0"])
def test_workers_below_one_is_refused(tmp_path, capsys, good, workers):
    """Item 16. Before: --workers -1 silently ran one process, exit 0."""
    gt, pred = good
    assert run_cli(gt, pred, tmp_path / "out", workers=("--workers", workers)) == 2
    one_line_error(capsys, f"--workers {workers}")
    with pytest.raises(ValueError, match="workers"):
        evaluate(gt, pred, workers=int(workers), progress=False)


class RecordingPool:
    """Stands in for ProcessPoolExecutor: records the pool size, runs each job at once in this process."""

    sizes: list[int] = []

    def __init__(self, max_workers, **kwargs):
        RecordingPool.sizes.append(max_workers)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        future = Future()
        future.set_result(fn(*args))
        return future


def test_workers_are_capped_at_the_cores(tmp_path, capsys, monkeypatch):
    """Item 16. Before: --workers 1000 started one process per sequence (40 processes on 2 cores)."""
    cores = len(os.sched_getaffinity(0))
    for index in range(cores + 3):
        write_sequence(tmp_path / "gt", f"s{index}", [square()] * 3)
        write_sequence(tmp_path / "pred", f"s{index}", [square()] * 3)
    RecordingPool.sizes = []
    monkeypatch.setattr(metrics.parallel, "ProcessPoolExecutor", RecordingPool)
    assert run_cli(tmp_path / "gt", tmp_path / "pred", tmp_path / "out", workers=("--workers", "1000")) == 0
    assert all(size <= cores for size in RecordingPool.sizes), (RecordingPool.sizes, cores)
    err = capsys.readouterr().err
    assert f"--workers 1000 capped at {cores}" in err
