"""Real-world media through the pipeline: bit depth, chroma, range, rotation, odd sizes, alpha,
variable frame rate, subtitles. Nasty files are built here with PyAV or the ffmpeg binary."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from tests.conftest import shared_path
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.io.writer import EncodeSettings, VideoWriter
from vsrt_cli.model import VSRTConfig, build_model
from vsrt_cli.engine.pipeline import Notice, Schedule, UpscaleJob, upscale

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
TINY = VSRTConfig(
    num_feat=4, num_frame=5, depth=1, heads=1, patch_size=8, extract_blocks=0,
    reconstruct_blocks=0, ff_blocks=0, norm="channel", use_flow=False,
)
SCHEDULE = Schedule(tile=64, overlap=8, window=3, stride=3, batch=8)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(TINY).eval()


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, capture_output=True)


def run(model, source: Path, output: Path, **encode) -> list:
    job = UpscaleJob(source=source, output=output, schedule=SCHEDULE, device=torch.device("cpu"),
                     precision="fp32", encode=EncodeSettings(**encode))
    return list(upscale(model, job))


def first_frame(path: Path) -> np.ndarray:
    with VideoReader(probe(path)) as frames:
        return next(iter(frames)).image


def video_stream(path: Path) -> tuple[int, int, str, list[Fraction]]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        times = [f.pts * f.time_base for f in c.decode(v)]
        return v.width, v.height, v.codec_context.pix_fmt, times


@pytest.mark.parametrize(
    "name,size,pix_fmt",
    [
        ("bbb_1s_320x180_h264_high10.mp4", (1280, 720), "yuv420p10le"),
        ("bbb_1s_320x180_hevc_main10.mp4", (1280, 720), "yuv420p10le"),
        ("bbb_1s_320x180_rot90.mp4", (720, 1280), "yuv420p"),
        ("bbb_1s_321x181_odd_yuv444.mp4", (1284, 724), "yuv420p"),
        ("bbb_1s_321x181_odd_ffv1_yuv420.mkv", (1284, 724), "yuv420p"),
    ],
)
def test_edge_files(model, tmp_path, name, size, pix_fmt):
    source = shared_path("data", "edge", "derived", name)
    out = tmp_path / f"out{source.suffix}"
    run(model, source, out)
    width, height, fmt, times = video_stream(out)
    assert (width, height) == size
    assert fmt == pix_fmt  # the input's bit depth is kept
    assert times == video_stream(source)[3]
    assert probe(out).rotation == 0  # rotation is applied to the pixels, not re-tagged


def test_rotation_matches_ffmpeg_display_orientation():
    source = shared_path("data", "edge", "derived", "bbb_1s_320x180_rot90.mp4")
    ours = first_frame(source)
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(source), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    theirs = np.frombuffer(raw, np.uint8).reshape(ours.shape)  # ffmpeg auto-rotates
    assert ours.shape == (320, 180, 3)
    # ffmpeg repeats chroma samples where vsrt interpolates them: equal up to colour edges
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 2


@pytest.mark.parametrize("pix_fmt,range_flag", [("yuvj420p", "pc"), ("yuv420p", "tv")])
def test_full_and_limited_range_decode_to_the_same_rgb(tmp_path, pix_fmt, range_flag):
    path = tmp_path / f"gray_{range_flag}.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=0x303030:s=64x48:d=0.2", "-pix_fmt", pix_fmt,
           "-color_range", range_flag, "-c:v", "libx264", "-qp", "0", str(path))
    image = first_frame(path)
    assert abs(int(image[..., 0].mean().round()) - 0x30) <= 1  # misread range would give ~0x25 or ~0x3B


def test_writer_colour_round_trip_is_bt709_tagged(tmp_path):
    colours = np.array([[235, 20, 20], [20, 200, 40], [30, 40, 220], [128, 128, 128]], np.uint8)
    image = np.repeat(np.repeat(colours[None], 16, axis=0), 16, axis=1)  # 16 x 64 blocks
    path = tmp_path / "colours.mkv"
    with VideoWriter(path, width=64, height=16, time_base=Fraction(1, 25), rate=Fraction(25), bit_depth=8,
                     settings=EncodeSettings(codec="ffv1", pix_fmt="yuv444p")) as writer:
        writer.write(image, 0)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.colorspace == 1  # BT.709
    back = first_frame(path)
    assert np.abs(back.astype(int) - image.astype(int)).max() <= 2


def test_variable_frame_rate_survives(model, tmp_path):
    path = tmp_path / "vfr.mp4"
    stamps = [0, 1, 2, 5, 6, 10, 11, 19]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.time_base = Fraction(1, 30)
        s.codec_context.time_base = Fraction(1, 30)
        for i, pts in enumerate(stamps):
            frame = av.VideoFrame.from_ndarray(np.full((32, 48, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = pts
            frame.time_base = Fraction(1, 30)
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    out = tmp_path / "vfr_up.mp4"
    run(model, path, out)
    assert video_stream(out)[3] == video_stream(path)[3] == [Fraction(p, 30) for p in stamps]


def test_alpha_is_dropped_with_a_notice(model, tmp_path):
    path = tmp_path / "alpha.mov"
    ffmpeg("-f", "lavfi", "-i", "color=c=red@0.5:s=32x24:d=0.2,format=rgba", "-c:v", "png", str(path))
    assert probe(path).has_alpha
    events = run(model, path, tmp_path / "alpha_up.mp4")
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("alpha" in n for n in notices)
    assert video_stream(tmp_path / "alpha_up.mp4")[:2] == (128, 96)


def test_subtitles_are_copied_packet_for_packet(model, tmp_path):
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,150\nhello\n\n2\n00:00:00,150 --> 00:00:00,300\nworld\n")
    path = tmp_path / "subs.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=32x24:d=0.32:r=25", "-i", str(srt), "-c:v", "libx264",
           "-c:s", "srt", str(path))
    out = tmp_path / "subs_up.mkv"
    run(model, path, out)

    def subtitle_packets(p: Path) -> list[bytes]:
        with av.open(str(p)) as c:
            return [bytes(k) for k in c.demux(c.streams.subtitles[0]) if k.size]

    assert subtitle_packets(out) == subtitle_packets(path) != []


@pytest.fixture(scope="module")
def aac_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("aac") / "tone.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=32x24:d=0.2:r=25", "-f", "lavfi", "-i", "sine=d=0.2",
           "-c:v", "libx264", "-c:a", "aac", "-shortest", str(path))
    return path


def test_streams_the_output_container_cannot_hold_are_reported(model, tmp_path, aac_clip):
    out = tmp_path / "out.webm"  # webm takes no AAC; the default codec there is VP9
    events = run(model, aac_clip, out)
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "aac" in notices[0]
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "vp9" and not c.streams.audio


def test_codec_the_container_cannot_hold_fails_before_any_work(model, tmp_path, aac_clip):
    from vsrt_cli.errors import OutputError

    with pytest.raises(OutputError, match="cannot write libx264 video into out.webm"):
        run(model, aac_clip, tmp_path / "out.webm", codec="libx264")
    with pytest.raises(OutputError, match="no encoder 'nope'"):
        run(model, aac_clip, tmp_path / "out.mp4", codec="nope")
    assert list(tmp_path.iterdir()) == []
