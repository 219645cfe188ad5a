"""Interlaced MPEG-2 (top field first, issue #29): the quantiser reads without an internal
error, the interlacing is found, and the fields are deinterlaced with bwdif as ``ffmpeg -vf
bwdif`` does (one frame per frame, or one per field), said in one line; ``off`` upscales the
fields as they are, with a warning. The clip is made here with the ffmpeg binary."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from vsrt_cli.errors import ConfigError
from vsrt_cli.io.interlace import plan
from vsrt_cli.io.probe import probe
from vsrt_cli.io.quant import quant_reader
from vsrt_cli.io.reader import VideoReader

W, H = 64, 48


def ffmpeg(*args: str | Path) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def interlaced(tmp_path_factory) -> Path:
    """10 frames of 25i, each woven from two instants of a moving picture (so its fields differ)."""
    path = tmp_path_factory.mktemp("interlaced") / "tff.mpg"
    ffmpeg("-f", "lavfi", "-i", f"testsrc=s={W}x{H}:r=50:d=0.4", "-vf", "tinterlace=mode=interleave_top,setfield=tff",
           "-c:v", "mpeg2video", "-q:v", "2", "-flags", "+ilme+ildct", "-pix_fmt", "yuv420p", path)
    return path


def ffmpeg_bwdif(source: Path, out: Path, mode: str) -> np.ndarray:
    """ffmpeg's own deinterlaced Y planes: ``[N, H, W]``."""
    ffmpeg("-i", source, "-vf", f"bwdif=mode={mode}:parity=auto:deint=all", "-f", "rawvideo", "-pix_fmt", "yuv420p", out)
    return np.fromfile(out, np.uint8).reshape(-1, H * W * 3 // 2)[:, : H * W].reshape(-1, H, W)


def progressive(tmp_path: Path) -> np.ndarray:
    """The 50p pictures the clip was woven from: Y planes ``[20, H, W]``."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=s={W}x{H}:r=50:d=0.4", "-f", "rawvideo", "-pix_fmt", "yuv420p", tmp_path / "p.yuv")
    return np.fromfile(tmp_path / "p.yuv", np.uint8).reshape(-1, H * W * 3 // 2)[:, : H * W].reshape(-1, H, W).astype(int)


def test_the_quantiser_of_an_interlaced_picture_is_read_not_a_crash(interlaced):
    with av.open(str(interlaced)) as c:
        stream = c.streams.video[0]
        quant = quant_reader(stream)
        values = [quant(frame) for frame in c.decode(stream)]  # was RuntimeError from VideoEncParams.qp_map
    assert len(values) == 10 and all(v is None or 10 <= v <= 51 for v in values)


def test_interlacing_is_found_and_said(interlaced):
    info = probe(interlaced)
    assert info.interlaced == "top field first"
    same, said = plan(info, "frame")
    assert said == ("tff.mpg is interlaced (top field first): deinterlaced with bwdif, one frame per frame "
                    "(--deinterlace double: one per field; off: none)")
    assert (same.time_base, same.rate) == (info.time_base, info.rate)
    double, said = plan(info, "double")
    assert double.time_base == info.time_base / 2 and double.rate == 2 * info.rate and "one frame per field" in said
    assert "--deinterlace off" in plan(info, "off")[1]
    with pytest.raises(ConfigError, match="--deinterlace weave: use one of frame, double, off"):
        plan(info, "weave")


@pytest.mark.parametrize("mode,filter_mode,count", [("frame", "send_frame", 10), ("double", "send_field", 20)])
def test_fields_are_deinterlaced_as_ffmpeg_does(interlaced, tmp_path, mode, filter_mode, count):
    info, _ = plan(probe(interlaced), mode)
    with VideoReader(info, yuv=True) as reader:
        frames = list(reader)
    theirs = ffmpeg_bwdif(interlaced, tmp_path / "ff.yuv", filter_mode)
    assert len(frames) == len(theirs) == count
    ours = np.stack([f.image.y for f in frames]).astype(int)
    # the same pictures as ffmpeg's (the first and last, where bwdif lacks a neighbour, differ in a few pixels)
    assert np.array_equal(ours[1:-1], theirs[1:-1])
    assert np.abs(ours[0] - theirs[0]).mean() < 1 and np.abs(ours[-1] - theirs[-1]).mean() < 1
    with av.open(str(interlaced)) as c:
        start = [f.pts * f.time_base for f in c.decode(video=0)]
    times = [f.pts * f.time_base for f in frames]
    step = Fraction(1, 25 * (2 if mode == "double" else 1))
    assert times == [start[0] + k * step for k in range(count)]  # frame or field times, from the stream's start
    truth = progressive(tmp_path)[:: 1 if mode == "double" else 2]  # the picture at each output time
    with VideoReader(probe(interlaced), yuv=True) as reader:  # as progressive: two instants woven
        woven = [f.image for f in reader]
    woven_y = [w.y.astype(int) if hasattr(w, "y") else w.astype(int) @ np.array([66, 129, 25]) / 256 + 16 for w in woven]
    error = np.abs(ours - truth).mean()
    assert error < 0.75 * np.mean([np.abs(y - t).mean() for y, t in zip(woven_y, truth[:: 2 if mode == "double" else 1])])


def run(tiny_model, source: Path, out: Path, deinterlace: str) -> list:
    from vsrt_cli.engine.pipeline import Schedule, UpscaleJob, upscale

    job = UpscaleJob(source=source, output=out, schedule=Schedule(tile=0, overlap=0, window=5, stride=5),
                     device=torch.device("cpu"), precision="fp32", deinterlace=deinterlace)
    return list(upscale(tiny_model, job))


@pytest.mark.parametrize("mode,frames,rate", [("frame", 10, 25), ("double", 20, 50), ("off", 10, 25)])
def test_an_interlaced_clip_upscales_with_one_line_said(tiny_model, interlaced, tmp_path, mode, frames, rate):
    from vsrt_cli.engine.pipeline import Finished, Notice

    events = run(tiny_model, interlaced, tmp_path / "out.mkv", mode)  # was: internal error from qp_map
    said = [e for e in events if isinstance(e, Notice) and "interlaced (top field first)" in e.message]
    assert len(said) == 1 and said[0].note == (mode != "off")
    assert events[-1].frames == frames and isinstance(events[-1], Finished)
    with av.open(str(tmp_path / "out.mkv")) as c:
        decoded = list(c.decode(video=0))
        assert len(decoded) == frames and (decoded[0].width, decoded[0].height) == (4 * W, 4 * H)
        gaps = {round(float((b.pts - a.pts) * b.time_base), 4) for a, b in zip(decoded, decoded[1:])}
        assert gaps == {round(1 / rate, 4)}


def test_chunks_refuse_an_interlaced_clip_in_one_line(tiny_model, interlaced, tmp_path):
    from vsrt_cli.engine.pipeline import Schedule, UpscaleJob
    from vsrt_cli.jobs.chunked import plan_clip

    job = UpscaleJob(source=interlaced, output=tmp_path / "out.mkv", schedule=Schedule(tile=0, overlap=0, window=5, stride=5),
                     device=torch.device("cpu"), precision="fp32")
    with pytest.raises(ConfigError, match=r"tff\.mpg is interlaced \(top field first\) and chunks are not deinterlaced"):
        plan_clip(tiny_model, job, chunks=2)
