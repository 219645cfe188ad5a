"""``--chunks``: a clip upscaled in chunks and stitched equals the unchunked output."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.media import timestamps
from vsrt_cli.jobs.chunked import upscale_chunks
from vsrt_cli.errors import ConfigError
from vsrt_cli.io.stitch import read_range, scan
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.io.writer import EncodeSettings
from vsrt_cli.engine.pipeline import Finished, Notice, Progress, Schedule, UpscaleJob, upscale

LOSSLESS = EncodeSettings(codec="libx264", crf=0, preset="ultrafast")  # qp 0: decoded frames compare exactly


def clip_with_audio(path: Path, frames: int = 14, gop: int = 4, size=(32, 24)) -> Path:
    """Moving noise at 24 fps, keyframes every ``gop`` frames, B-frames, and an AAC tone."""
    width, height = size
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"g": str(gop), "keyint_min": str(gop), "bf": "2", "preset": "ultrafast", "sc_threshold": "0"}
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        samples = 0
        for i in range(frames):
            image = np.random.default_rng(i).integers(0, 255, (height, width, 3), dtype=np.uint8)
            image[:, (2 * i) % width : (2 * i) % width + 3] = 255
            c.mux(v.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            while samples < (i + 1) * 2000:
                tone = (0.2 * np.sin(np.arange(samples, samples + 1024) * 0.05)).astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 48000, samples
                c.mux(a.encode(frame))
                samples += 1024
        c.mux(v.encode())
        c.mux(a.encode())
    return path


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv444p") for f in c.decode(video=0)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def job(source: Path, output: Path, window: int, stride: int, preset: str = "ultrafast") -> UpscaleJob:
    return UpscaleJob(source=source, output=output, schedule=Schedule(tile=0, overlap=0, window=window, stride=stride, batch=4),
                      device=torch.device("cpu"), precision="fp32", encode=replace(LOSSLESS, preset=preset))


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return clip_with_audio(tmp_path_factory.mktemp("chunks") / "in.mp4")


def test_read_range_gives_the_frames_of_a_full_decode(source):
    info = probe(source)
    frames = scan(info)
    assert frames.frames == 14 and sorted(frames.keyframes) == [frames.times[i] for i in (0, 4, 8, 12)]
    with VideoReader(info) as reader:
        full = list(reader)
    part = list(read_range(info, frames, 5, 11))  # starts and ends off keyframes
    assert [f.index for f in part] == list(range(5, 11))
    for f in part:
        assert f.pts == full[f.index].pts and np.array_equal(f.image, full[f.index].image)


@pytest.mark.parametrize("window,stride,preset", [(3, 1, "ultrafast"), (5, 3, "ultrafast"), (5, 3, "medium")])
def test_chunks_stitch_into_the_unchunked_output(tiny_model, source, tmp_path, window, stride, preset):
    """Boundaries at frames 5 and 10, keyframes at 0, 4, 8, 12; "medium" encodes B-frames."""
    whole, parts = tmp_path / "whole.mp4", tmp_path / "parts.mp4"
    list(upscale(tiny_model, job(source, whole, window, stride, preset)))
    events = list(upscale_chunks(tiny_model, job(source, parts, window, stride, preset), 3))
    frames = decoded(parts)
    assert len(frames) == 14 and all(np.array_equal(a, b) for a, b in zip(frames, decoded(whole)))
    assert timestamps(parts) == timestamps(whole) == timestamps(source)
    assert audio_packets(parts) == audio_packets(source)
    assert [e.done for e in events if isinstance(e, Progress)] == list(range(1, 15))
    assert isinstance(events[-1], Finished) and events[-1].frames == 14
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts.mp4", "whole.mp4"]  # chunk files gone


def test_lossy_chunks_keep_the_source_timestamps(tiny_model, source, tmp_path):
    """The default encoder settings (crf 16, preset medium): the first chunk's B-frames make its
    first decode time negative, and NUT moves that whole chunk later; the stitch puts it back."""
    lossy = EncodeSettings(codec="libx264", crf=16, preset="medium")
    whole, parts = tmp_path / "whole.mp4", tmp_path / "parts.mp4"
    list(upscale(tiny_model, replace(job(source, whole, 5, 3), encode=lossy)))
    list(upscale_chunks(tiny_model, replace(job(source, parts, 5, 3), encode=lossy), 3))
    assert timestamps(parts) == timestamps(whole) == timestamps(source)
    assert audio_packets(parts) == audio_packets(source)
    frames, reference = decoded(parts), decoded(whole)
    assert len(frames) == 14  # each chunk starts a new GOP: the same pictures up to encoding
    assert all(np.abs(a.astype(int) - b).mean() < 2 for a, b in zip(frames, reference))


def test_a_rerun_redoes_only_the_missing_chunks(tiny_model, source, tmp_path, monkeypatch):
    import vsrt_cli.jobs.chunked as chunked

    out = tmp_path / "out.mp4"
    real = chunked.run_chunk
    calls = []

    def crash_on_third(runner, job_, info, frames, chunk, path):
        calls.append(chunk.number)
        if chunk.number == 2:
            raise RuntimeError("worker died")
        yield from real(runner, job_, info, frames, chunk, path)

    monkeypatch.setattr(chunked, "run_chunk", crash_on_third)
    with pytest.raises(RuntimeError):
        list(upscale_chunks(tiny_model, job(source, out, 5, 3), 3))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(n.startswith(".out.mp4.vsrt-chunk-") for n in left)  # two finished chunks, no partial
    calls.clear()
    monkeypatch.setattr(chunked, "run_chunk", real)
    counted = []
    monkeypatch.setattr(chunked, "run_chunk", lambda *a: (counted.append(a[4].number), (yield from real(*a)))[1])
    list(upscale_chunks(tiny_model, job(source, out, 5, 3), 3))
    assert counted == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    assert len(decoded(out)) == 14 and audio_packets(out) == audio_packets(source)


def test_frames_out_is_refused(tiny_model, source, tmp_path):
    with pytest.raises(ConfigError, match="--chunks"):
        list(upscale_chunks(tiny_model, job(source, tmp_path / "frames", 5, 3), 3))


def test_cli_chunks(tiny_weights, source, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out.mp4"
    run = subprocess.run(
        [sys.executable, "-m", "vsrt_cli", "upscale", str(source), "-o", str(out), "--weights", str(tiny_weights),
         "--device", "cpu", "--precision", "fp32", "--tile", "0", "--chunks", "3", "--crf", "0", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert len(decoded(out)) == 14 and audio_packets(out) == audio_packets(source)
    with av.open(str(out)) as c:
        assert "vsrt" in c.metadata.get("comment", "")  # the provenance tag reaches the stitched file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "out.mp4.vsrt.json"]
    import json

    record = json.loads((tmp_path / "out.mp4.vsrt.json").read_text())
    assert len(record["chunk_starts"]) == 2 and 0 < record["chunk_starts"][0] < record["chunk_starts"][1] < 14


def test_cli_chunks_of_a_span(tiny_weights, source, tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "out.mkv"
    run = subprocess.run(
        [sys.executable, "-m", "vsrt_cli", "upscale", str(source), "-o", str(out), "--weights", str(tiny_weights),
         "--device", "cpu", "--precision", "fp32", "--tile", "0", "--chunks", "2", "--crf", "0", "--quiet",
         "--start", "0.1", "--end", "0.4"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert len(decoded(out)) == 7  # frames 3 to 9 of 24 fps: 0.125 s to 0.375 s
    assert timestamps(out)[0] == 0
    record = json.loads((tmp_path / "out.mkv.vsrt.json").read_text())
    assert record["chunk_starts"] == [4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv", "out.mkv.vsrt.json"]


# a run killed after the stitch put the output in place, before it removed the chunk files
KILL_AFTER_STITCH = """
import os, pathlib, sys
real = pathlib.Path.unlink
def unlink(self, *args, **kwargs):
    if ".vsrt-chunk-" in self.name and "vsrt-partial" not in self.name:
        os._exit(137)  # a kill: nothing after this line runs, no cleanup
    return real(self, *args, **kwargs)
pathlib.Path.unlink = unlink
sys.argv[0] = "vsrt"
from vsrt_cli.cli.app import main
main()
"""


def test_a_rerun_removes_the_chunks_a_run_killed_after_the_stitch_left(tiny_weights, source, tmp_path):
    import subprocess
    import sys

    def cli(*prefix: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *prefix, "upscale", str(source), "-o", str(out), "--weights", str(tiny_weights), "--device", "cpu",
             "--precision", "fp32", "--tile", "0", "--chunks", "3", "--crf", "0", "--preset", "ultrafast", "--quiet"],
            capture_output=True, text=True, timeout=300,
        )

    out = tmp_path / "out.mp4"
    mine = [tmp_path / ".out.mp4.notes", tmp_path / ".out.vsrt-chunk-0123456789ab-001of003.nut"]  # the user's (or an old vsrt's)
    for path in mine:
        path.write_text("mine")
    killed = cli("-c", KILL_AFTER_STITCH)
    assert killed.returncode == 137, killed.stderr
    spent = sorted(p.name for p in tmp_path.glob(".out.mp4.vsrt-chunk-*"))
    assert len(spent) == 3 and out.is_file() and not (tmp_path / "out.mp4.vsrt.json").exists()
    made = out.read_bytes()
    again = cli("-m", "vsrt_cli")
    assert again.returncode == 0, again.stderr
    assert out.read_bytes() == made  # not redone, not touched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.mp4", *(p.name for p in mine)])
    assert all(p.read_text() == "mine" for p in mine)


def test_chunks_are_removed_only_when_proven_spent(tiny_model, source, tmp_path, monkeypatch):
    """Killed after the stitch, in-process: a rerun of the same job removes its chunks; one with
    other settings, or chunks newer than the output (a live --overwrite run), keeps them."""
    import os
    import pathlib

    import vsrt_cli.jobs.chunked as chunked
    from vsrt_cli.errors import OutputError

    out = tmp_path / "out.mp4"
    the_job = replace(job(source, out, 5, 3), metadata={"comment": "vsrt made by this job"})
    real = pathlib.Path.unlink

    def killed(self, *args, **kwargs):
        if ".vsrt-chunk-" in self.name:
            raise KeyboardInterrupt  # the kill, right after the rename
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "unlink", killed)
    with pytest.raises(KeyboardInterrupt):
        list(upscale_chunks(tiny_model, the_job, 3))
    monkeypatch.setattr(pathlib.Path, "unlink", real)
    spent = sorted(tmp_path.glob(".out.mp4.vsrt-chunk-*"))
    made = out.read_bytes()
    assert len(spent) == 3

    other = replace(the_job, metadata={"comment": "vsrt made with other options"})  # not this job's output
    with pytest.raises(OutputError, match="already exists"):
        list(upscale_chunks(tiny_model, other, 3))
    key = chunked.job_key(tiny_model, the_job)
    strided = replace(the_job, schedule=replace(the_job.schedule, stride=2))  # other chunks' key
    assert chunked.spent_chunks(strided, chunked.job_key(tiny_model, strided)) == []
    later = out.stat().st_mtime_ns + 10**9
    os.utime(spent[0], ns=(later, later))  # as if a live run wrote it after the output
    assert chunked.spent_chunks(the_job, key) == spent[1:]

    events = list(upscale_chunks(tiny_model, the_job, 3))
    assert [type(e) for e in events] == [Notice] and "removed 2 chunk file(s)" in events[0].message
    assert sorted(tmp_path.iterdir()) == [spent[0], out] and out.read_bytes() == made
