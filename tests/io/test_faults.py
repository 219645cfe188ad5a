"""Broken inputs, full disks, read-only folders, signals and out-of-memory: a clear one-line
error (or a correct output), a non-zero exit, nothing half-written, inputs untouched."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
import torch

from tests.media import corrupt_packet, digest, make_clip, timestamps, truncate
from vsrt_cli.errors import DecodeError, InputError, OutputError, ResourceError
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.engine.pipeline import Finished, Notice, Schedule, TileRunner, UpscaleJob, upscale
from vsrt_cli.engine.schedule import plan_tiles, smaller_tile

REPO = Path(__file__).resolve().parents[2]
SMALL = Schedule(tile=32, overlap=8, window=5, stride=5, batch=4)


def run_job(model, source: Path, output: Path, schedule: Schedule = SMALL, **kw) -> list:
    job = UpscaleJob(source=source, output=output, schedule=schedule, device=torch.device("cpu"), precision="fp32", **kw)
    return list(upscale(model, job))


def vsrt(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vsrt_cli", *args], capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """24 frames, index at the front (so a truncated copy still opens)."""
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=24, faststart=True)


# --- broken files --------------------------------------------------------------------------------


def test_a_corrupt_frame_names_the_file_frame_and_time(tmp_path, clip):
    bad = corrupt_packet(clip, tmp_path / "bad.mp4", 9)
    with pytest.raises(DecodeError, match=r"bad\.mp4: frame 9 \(at 0\.375 s\) could not be decoded.*--skip-bad-frames"):
        with VideoReader(probe(bad)) as frames:
            list(frames)


def test_skip_bad_frames_repeats_the_last_good_one_and_keeps_timing(tmp_path, clip):
    bad = corrupt_packet(clip, tmp_path / "bad.mp4", 9)
    with VideoReader(probe(bad), skip_bad_frames=True) as reader:
        frames = list(reader)
    assert reader.repaired == 1
    assert [f.pts for f in frames] == [f.pts for f in decode_all(clip)]
    assert (frames[9].image == frames[8].image).all()
    assert not (frames[10].image == frames[9].image).all()


def decode_all(path: Path) -> list:
    with VideoReader(probe(path)) as reader:
        return list(reader)


def test_truncated_file_is_an_error_or_padded_to_its_length(tiny_model, tmp_path, clip):
    cut = truncate(clip, tmp_path / "cut.mp4", 0.6)
    before = digest(cut)
    with pytest.raises(DecodeError, match=r"cut\.mp4: .*of 24 frames|cut\.mp4: frame \d+ \(at"):
        run_job(tiny_model, cut, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".*partial*"))
    events = run_job(tiny_model, cut, tmp_path / "out.mp4", skip_bad_frames=True)
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.frames == 24 and finished.repaired > 0
    assert any(isinstance(e, Notice) and f"{finished.repaired} frame(s)" in e.message for e in events)
    assert timestamps(tmp_path / "out.mp4") == timestamps(clip)  # timing intact
    assert digest(cut) == before


def test_truncated_file_without_its_index_cannot_be_opened(tiny_model, tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", frames=24)  # index written at the end
    cut = truncate(whole, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(InputError, match="cut.mp4 cannot be opened as a video"):
        run_job(tiny_model, cut, tmp_path / "out.mp4")


def test_cli_reports_a_decode_error_in_one_line(tiny_weights, tmp_path, clip):
    bad = corrupt_packet(clip, tmp_path / "bad.mp4", 9)
    result = vsrt("upscale", str(bad), "-o", str(tmp_path / "out.mp4"), "--weights", str(tiny_weights), "--tile", "32")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "frame 9" in lines[0] and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]
    ok = vsrt("upscale", str(bad), "-o", str(tmp_path / "out.mp4"), "--weights", str(tiny_weights),
              "--tile", "32", "--skip-bad-frames")
    assert ok.returncode == 0, ok.stderr
    assert "1 frame(s)" in ok.stderr
    assert len(timestamps(tmp_path / "out.mp4")) == 24


# --- odd but valid inputs --------------------------------------------------------------------------


@pytest.mark.parametrize("size,codec,pix_fmt", [((1, 1), "ffv1", "yuv444p"), ((20, 12), "libx264", "yuv420p")])
def test_frames_smaller_than_a_tile_are_upscaled(tiny_model, tmp_path, size, codec, pix_fmt):
    source = make_clip(tmp_path / "small.mkv", frames=6, size=size, codec=codec, pix_fmt=pix_fmt)
    run_job(tiny_model, source, tmp_path / "out.mp4", Schedule(tile=64, overlap=16, window=5, stride=3))
    with av.open(str(tmp_path / "out.mp4")) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (4 * size[0], 4 * size[1])
    assert len(timestamps(tmp_path / "out.mp4")) == 6


def test_a_folder_where_a_file_is_expected(tiny_model, tmp_path, clip):
    (tmp_path / "out.mp4").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        run_job(tiny_model, clip, tmp_path / "out.mp4", overwrite=True)
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(clip, videos / "a.mp4")
    with pytest.raises(InputError, match="holds no PNG or JPEG frames"):
        run_job(tiny_model, videos, tmp_path / "o.mp4")


# --- disk full, permissions --------------------------------------------------------------------------


def _limit_file_size() -> None:  # runs in the child: writes past 200 kB fail with EFBIG
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_a_full_disk_is_one_line_and_leaves_nothing(tiny_weights, tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=24, size=(64, 48))
    before = digest(source)
    result = subprocess.run(
        [sys.executable, "-m", "vsrt_cli", "upscale", str(source), "-o", str(tmp_path / "out.mkv"),
         "--weights", str(tiny_weights), "--tile", "32", "--codec", "ffv1"],
        capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size,
    )
    assert result.returncode == 1, result.stderr
    assert "disk is full" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert digest(source) == before


def test_an_unwritable_output_folder_is_one_line(tiny_weights, tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=6)
    before = digest(source)
    if os.geteuid() == 0:  # root writes anywhere a mode allows; sysfs refuses new files to anyone
        locked = Path("/sys")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
    listing = sorted(locked.iterdir())
    result = vsrt("upscale", str(source), "-o", str(locked / "vsrt-out.mp4"), "--weights", str(tiny_weights), "--tile", "32")
    assert result.returncode == 1, result.stderr
    assert "cannot write" in result.stderr and "writable" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert sorted(locked.iterdir()) == listing
    assert digest(source) == before


# --- signals -------------------------------------------------------------------------------------------


def test_sigterm_stops_upscale_and_removes_the_partial_output(tiny_weights, tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=400, size=(96, 64))
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsrt_cli", "upscale", str(source), "-o", str(out), "--weights", str(tiny_weights),
         "--window", "3", "--window-stride", "1", "--tile", "32", "--batch", "1", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.vsrt-partial-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert time.monotonic() - sent < 5
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# --- out of memory -------------------------------------------------------------------------------------


def test_smaller_tile_halves_to_a_multiple_and_stops():
    assert smaller_tile(128, 180, 320, multiple=8) == 64
    assert smaller_tile(0, 180, 320, multiple=8) == 160  # whole frame: half the longer side
    assert smaller_tile(24, 180, 320, multiple=8) == 8
    assert smaller_tile(8, 180, 320, multiple=8) is None
    assert smaller_tile(64, 180, 320, multiple=8, fixed=True) is None


class OutOfMemoryAbove:
    """Wraps a model: raises CUDA's out-of-memory error when a call holds more LR pixels."""

    def __init__(self, model, limit: int) -> None:
        self.model, self.limit, self.config, self.spynet = model, limit, model.config, model.spynet
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, tiles, flows=None):
        self.calls.append(tuple(tiles.shape))
        if tiles.shape[0] * tiles.shape[-1] * tiles.shape[-2] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.model(tiles, flows)


def test_out_of_memory_lowers_batch_then_tile_and_drops_no_frame(tiny_model):
    frames = torch.rand(5, 3, 40, 72)
    reference = TileRunner(tiny_model, plan_tiles(40, 72, tile=32, overlap=8, multiple=8), batch=4,
                           device=torch.device("cpu"), precision="fp32")(frames, [0, 1, 2, 3, 4])
    # batch 4 is over the limit, 2 is not: only the batch changes, same output
    th, tw = plan_tiles(40, 72, tile=32, overlap=8, multiple=8).tile
    flaky = OutOfMemoryAbove(tiny_model, limit=3 * th * tw)
    runner = TileRunner(flaky, plan_tiles(40, 72, tile=32, overlap=8, multiple=8), batch=4,
                        device=torch.device("cpu"), precision="fp32")
    out = runner(frames, [0, 1, 2, 3, 4])
    assert runner.batch == 2 and runner.notices == ["out of memory: retrying with 2 tile(s) per call (was 4)"]
    torch.testing.assert_close(out, reference)
    # even one 64x64 tile is too much: first one tile per call, then 32x32 tiles (the floor),
    # and every frame still comes out. (Flows and the accumulator shrink before the tiles: this
    # model has no flow pass and runs on the CPU, see tests/test_oom.py for those steps.)
    frames = torch.rand(5, 3, 64, 96)
    reference = TileRunner(tiny_model, plan_tiles(64, 96, tile=64, overlap=8, multiple=8), batch=2,
                           device=torch.device("cpu"), precision="fp32")(frames, [0, 1, 2, 3, 4])
    tight = OutOfMemoryAbove(tiny_model, limit=32 * 32)
    runner = TileRunner(tight, plan_tiles(64, 96, tile=64, overlap=8, multiple=8), batch=2,
                        device=torch.device("cpu"), precision="fp32")
    out = runner(frames, [0, 1, 2, 3, 4])
    assert out.shape == (5, 3, 256, 384)  # every frame, whole
    assert runner.grid.tile == (32, 32) and runner.batch == 1
    assert runner.notices == [
        "out of memory: retrying with 1 tile(s) per call (was 2)",
        "out of memory: retrying with 32x32 tiles, overlap 8 (was 64x56)",
    ]
    assert (out - reference).abs().mean() < 0.05  # the same picture, cut differently
    # below one 32x32 tile per call nothing is tried: one clear error, no frame half-written
    hopeless = OutOfMemoryAbove(tiny_model, limit=16 * 16)
    runner = TileRunner(hopeless, plan_tiles(40, 72, tile=32, overlap=8, multiple=8), batch=1,
                        device=torch.device("cpu"), precision="fp32")
    with pytest.raises(ResourceError, match="out of CPU memory even with one 32x32 tile per call"):
        runner(frames[:, :, :40, :72], [0])
    assert {c[-2:] for c in hopeless.calls} == {(32, 32)}  # never below the floor
