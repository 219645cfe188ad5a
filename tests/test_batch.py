"""`vsrt batch`: discovery, mirroring, per-clip failures, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.media import digest, make_clip, timestamps
from vsrt_cli.jobs.batch import REPORT, BatchFinished, ClipFinished, batch, find_clips
from vsrt_cli.errors import InputError, OutputError
from vsrt_cli.io.frames import encode_png
from vsrt_cli.io.outputs import host
from vsrt_cli.engine.pipeline import Schedule, UpscaleJob

SMALL = Schedule(tile=32, overlap=8, window=5, stride=5, batch=4)


def template(tmp_path: Path, **kw) -> UpscaleJob:
    return UpscaleJob(source=tmp_path, output=tmp_path, schedule=SMALL, device=torch.device("cpu"), precision="fp32", **kw)


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def frame_folder(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        image = np.random.default_rng(i).integers(0, 255, (16, 24, 3), dtype=np.uint8)
        (folder / f"f{i + 1}.png").write_bytes(encode_png(image))
    return folder


def test_find_clips_mirrors_the_tree_in_natural_order(tmp_path):
    src, out = tmp_path / "in", tmp_path / "in" / "upscaled"
    for name in ["b/clip10.mp4", "b/clip2.MKV", "a.mov", "notes.txt", ".hidden.mp4", ".cache/x.mp4", "upscaled/old.mp4"]:
        touch(src / name)
    frame_folder(src / "shots" / "s1")
    clips = find_clips(src, out)
    assert [c.name for c in clips] == ["a.mov", "b/clip2.MKV", "b/clip10.mp4"]  # output folder and hidden skipped
    assert [c.output for c in clips] == [out / "a.mov", out / "b" / "clip2.MKV", out / "b" / "clip10.mp4"]
    with_frames = find_clips(src, out, frame_folders=True)
    assert [c.name for c in with_frames] == ["a.mov", "b/clip2.MKV", "b/clip10.mp4", "shots/s1"]
    assert with_frames[-1].output == out / "shots" / "s1"
    assert [c.name for c in find_clips(src, out, pattern="b/*")] == ["b/clip2.MKV", "b/clip10.mp4"]
    assert [c.name for c in find_clips(src, out, pattern="*.txt")] == ["notes.txt"]
    with pytest.raises(OutputError, match="is the input"):
        find_clips(src, src)
    with pytest.raises(InputError, match="not a folder"):
        find_clips(src / "a.mov", out)


def test_batch_runs_every_clip_keeps_going_after_a_failure_and_resumes(tiny_model, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_clip(touch(src / "one.mp4"), frames=6)
    make_clip(touch(src / "deep" / "two.mkv"), frames=7, size=(40, 24))
    touch(src / "deep" / "broken.mp4", b"not a video at all")
    frame_folder(src / "take.01")  # a dot in a folder name is not a container
    inputs = {p: digest(p) for p in src.rglob("*") if p.is_file()}

    events = list(batch(tiny_model, src, out, template(tmp_path), frame_folders=True))
    results = {r.clip.name: r for r in (e.result for e in events if isinstance(e, ClipFinished))}
    assert {k: r.status for k, r in results.items()} == {
        "deep/broken.mp4": "failed", "deep/two.mkv": "done", "one.mp4": "done", "take.01": "done"}
    assert "cannot be opened as a video" in results["deep/broken.mp4"].reason
    assert len(timestamps(out / "one.mp4")) == 6 and len(timestamps(out / "deep" / "two.mkv")) == 7
    with av.open(str(out / "deep" / "two.mkv")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (160, 96)
    assert sorted(p.name for p in (out / "take.01").iterdir()) == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    assert isinstance(events[-1], BatchFinished) and events[-1].failed == 1
    report = json.loads((out / REPORT).read_text())
    assert (report["done"], report["failed"], report["skipped"]) == (3, 1, 0)
    assert not list(out.rglob(".*"))  # no temporary files left anywhere

    done = {p: p.stat().st_mtime_ns for p in [out / "one.mp4", out / "deep" / "two.mkv"]}
    again = [e.result for e in batch(tiny_model, src, out, template(tmp_path), frame_folders=True) if isinstance(e, ClipFinished)]
    assert [r.status for r in again] == ["failed", "skipped", "skipped", "skipped"]  # natural path order
    assert {p: p.stat().st_mtime_ns for p in done} == done  # untouched
    redo = [e.result for e in batch(tiny_model, src, out, template(tmp_path, overwrite=True), pattern="one.mp4") if isinstance(e, ClipFinished)]
    assert [r.status for r in redo] == ["done"] and (out / "one.mp4").stat().st_mtime_ns != done[out / "one.mp4"]
    assert {p: digest(p) for p in inputs} == inputs


def test_an_empty_folder_is_one_clear_error(tiny_model, tmp_path):
    (tmp_path / "in").mkdir()
    touch(tmp_path / "in" / "readme.txt")
    with pytest.raises(InputError, match="holds no clips.*--glob"):
        list(batch(tiny_model, tmp_path / "in", tmp_path / "out", template(tmp_path)))


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_only_this_hosts_partials_of_dead_runs_are_cleaned_up(tiny_model, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_clip(touch(src / "a.mp4"), frames=5)
    frame_folder(src / "take.01")
    dead, here = dead_pid(), host()
    stale = [touch(out / f".a.vsrt-partial-{here}-{dead}.mp4", b"half"),  # a killed run on this host
             touch(out / f".take.01.vsrt-partial-{here}-{dead}" / "frame_000001.png", b"half").parent]
    kept = [
        touch(out / f".a.vsrt-partial-{here}-{os.getppid()}.mp4", b"live"),  # a run still going here
        touch(out / f".a.vsrt-partial-not-{here}-{dead}.mp4", b"other"),  # that PID means nothing there
        touch(out / f".a.vsrt-partial-{dead}.mp4", b"old name"),  # no host: cannot be judged
    ]
    list(batch(tiny_model, src, out, template(tmp_path), frame_folders=True))
    assert not any(p.exists() for p in stale)
    assert [p.read_bytes() for p in kept] == [b"live", b"other", b"old name"]
    assert (out / "a.mp4").exists() and (out / "take.01" / "frame_000001.png").exists()


def test_an_output_folder_that_is_or_holds_the_input_folder_is_refused(tiny_model, tmp_path):
    src = tmp_path / "clips"
    make_clip(touch(src / "clips" / "a.mp4"), frames=5)  # -o tmp_path would write clips/a.mp4 over it
    make_clip(touch(src / "a.mp4"), frames=5)
    before = {p: digest(p) for p in src.rglob("*") if p.is_file()}
    with pytest.raises(OutputError, match="is the input"):
        list(batch(tiny_model, src, src, template(tmp_path, overwrite=True)))
    with pytest.raises(OutputError, match=f"the output folder {tmp_path} holds the input {src}"):
        list(batch(tiny_model, src, tmp_path, template(tmp_path, overwrite=True)))
    assert {p: digest(p) for p in src.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips"]


def test_a_frame_folder_output_holding_other_files_fails_that_clip_only(tiny_model, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    frame_folder(src / "s1")
    frame_folder(src / "s2")
    touch(out / "s1" / "frame_000001.png", b"an older run")
    touch(out / "s2" / "keep.txt", b"mine")
    events = list(batch(tiny_model, src, out, template(tmp_path, overwrite=True), frame_folders=True))
    results = {r.clip.name: r for r in (e.result for e in events if isinstance(e, ClipFinished))}
    assert results["s1"].status == "done" and len(list((out / "s1").iterdir())) == 3
    assert results["s2"].status == "failed" and "holds files vsrt did not write (keep.txt)" in results["s2"].reason
    assert sorted(p.name for p in (out / "s2").iterdir()) == ["keep.txt"]


def run_batch(src: Path, out: Path, weights: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vsrt_cli", "batch", str(src), "-o", str(out), "--weights", str(weights),
         "--tile", "32", "--batch", "1", "--window", "3", "--window-stride", "1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_sigint_mid_batch_then_rerun_completes_every_output(tiny_weights, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    names = ["a.mp4", "b.mp4", "sub/c.mp4", "sub/d.mp4"]
    for i, name in enumerate(names):
        make_clip(touch(src / name), frames=30 + i, size=(48, 32))
    proc = run_batch(src, out, tiny_weights)
    deadline = time.monotonic() + 180
    # wait until the first clip is finished and the second is being written
    while not ((out / "a.mp4").exists() and list(out.glob(".b.vsrt-partial-*"))) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 5
    assert "interrupted" in err and "Traceback" not in err
    finished = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "a.mp4" in finished and "b.mp4" not in finished
    assert not [name for name in finished if name.split("/")[-1].startswith(".")]  # no temporary file left
    assert len(timestamps(out / "a.mp4")) == 30  # the finished output is complete
    a_before = digest(out / "a.mp4")

    proc = run_batch(src, out, tiny_weights)
    stdout, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "skipped" in stdout and "done" in stdout
    for i, name in enumerate(names):
        assert len(timestamps(out / name)) == 30 + i, name
    assert digest(out / "a.mp4") == a_before
    report = json.loads((out / REPORT).read_text())
    assert {row["clip"]: row["status"] for row in report["clips"]} == {
        "a.mp4": "skipped", "b.mp4": "done", "sub/c.mp4": "done", "sub/d.mp4": "done"}
    records = [n + ".vsrt.json" for n in names]  # each output's record of how it was made
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(names + records + [REPORT])


def test_cli_batch_exit_code_and_table_when_a_clip_fails(tiny_weights, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_clip(touch(src / "good.mp4"), frames=5)
    touch(src / "zero.mp4")
    proc = run_batch(src, out, tiny_weights)
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert "failed: zero.mp4" in err and "Traceback" not in err
    assert "good.mp4" in stdout and "done" in stdout and "failed" in stdout
    assert (out / "good.mp4").exists() and not (out / "zero.mp4").exists()
