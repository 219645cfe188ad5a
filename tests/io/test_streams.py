"""Timestamps and stream oddities: raw elementary streams, captures cut mid-GOP, a size change
part-way, Matroska cut off without its index, and encoders other than x264. Every file is built
here with PyAV (or the ffmpeg binary, for an audio track)."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest

from tests.media import noise, truncate, write_video
from vsrt_cli.errors import ConfigError, DecodeError, OutputError
from vsrt_cli.io.encoders import encoder_choices, encoder_options
from vsrt_cli.io.colour import SDR_BT709
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.io.writer import EncodeSettings, VideoWriter


def read_all(path: Path, **kw) -> list:
    with VideoReader(probe(path), **kw) as frames:
        return list(frames)


def write_all(frames: list, info, out: Path, **encode) -> Path:
    with VideoWriter(out, width=info.width, height=info.height, time_base=info.time_base, rate=info.rate,
                     bit_depth=info.bit_depth, settings=EncodeSettings(**encode)) as writer:
        for frame in frames:
            writer.write(frame.image, frame.pts)
    return out


def seconds(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [round(float(f.pts * f.time_base), 4) for f in c.decode(video=0)]


# --- timestamps -------------------------------------------------------------------------------------


def test_raw_h264_gets_timestamps_from_its_frame_rate(tmp_path):
    source = write_video(tmp_path / "raw.h264", [noise(32, 48, i) for i in range(6)], rate=24, fmt="h264")
    info = probe(source)
    assert not info.timestamps and info.rate == 24  # not the raw demuxer's default 25
    frames = read_all(source)
    assert [round(f.time, 4) for f in frames] == [round(i / 24, 4) for i in range(6)]
    out = write_all(frames, info, tmp_path / "out.mp4")
    assert seconds(out) == [round(i / 24, 4) for i in range(6)]  # was i / 1200000 s


def test_frames_without_a_timestamp_follow_the_previous_one(tmp_path):
    out = tmp_path / "out.mkv"
    with VideoWriter(out, width=32, height=16, time_base=Fraction(1, 1000), rate=Fraction(25), bit_depth=8,
                     settings=EncodeSettings(codec="ffv1")) as writer:
        for i in range(3):
            writer.write(np.zeros((16, 32, 3), np.uint8), None)
    assert seconds(out) == [0.0, 0.04, 0.08]


# --- a capture that starts mid-GOP ------------------------------------------------------------------


def mid_gop_ts(tmp_path: Path) -> tuple[Path, Path]:
    whole = write_video(tmp_path / "whole.ts", [noise(32, 48, i) for i in range(30)], options={"g": "12", "bf": "2"})
    with av.open(str(whole)) as c:
        packets = [(p.pos, p.is_keyframe) for p in c.demux(video=0) if p.size]
    assert packets[0][1] and not packets[3][1]
    data = whole.read_bytes()
    start = packets[3][0] // 188 * 188  # a TS packet boundary inside the first GOP
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[start:])
    return whole, cut


def test_a_stream_cut_mid_gop_starts_at_its_first_decodable_frame(tmp_path):
    whole, cut = mid_gop_ts(tmp_path)
    frames = read_all(cut)  # was: "frame 0 could not be decoded"
    with av.open(str(cut)) as c:  # what ffmpeg makes of it
        theirs = [f.pts for f in c.decode(video=0)]
    assert [f.pts for f in frames] == theirs and 12 <= len(frames) < 30
    assert frames[0].pts == [f.pts for f in read_all(whole)][12]  # the second GOP's keyframe


def test_losses_after_a_mid_gop_start_are_still_flagged(tmp_path):
    _, cut = mid_gop_ts(tmp_path)
    with av.open(str(cut)) as c:
        keys = [(p.pos, p.size) for p in c.demux(video=0) if p.size and p.is_keyframe]
    data = bytearray(cut.read_bytes())
    pos, size = keys[1]  # the keyframe after the first decodable one
    junk = np.random.default_rng(1).integers(0, 256, 184 * 64, dtype=np.uint8).tobytes()
    for k, at in enumerate(range(pos + 4, min(pos + size, len(data)) - 184, 188)):  # keep the TS headers
        data[at + 8 : at + 184] = junk[k * 184 + 8 : (k + 1) * 184]
    broken = tmp_path / "broken.ts"
    broken.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match=r"broken\.ts: .*frame \d+"):
        read_all(broken)


# --- a resolution change ----------------------------------------------------------------------------


def test_a_size_change_mid_stream_is_scaled_to_the_first_size(tmp_path):
    first = write_video(tmp_path / "a.h264", [np.full((32, 48, 3), 200, np.uint8)] * 4, fmt="h264")
    second = write_video(tmp_path / "b.h264", [np.full((64, 80, 3), 60, np.uint8)] * 4, fmt="h264")
    joined = tmp_path / "joined.h264"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    frames = read_all(joined)  # was an internal error when the pipeline stacked the frames
    assert len(frames) == 8 and {f.image.shape for f in frames} == {(32, 48, 3)}
    assert abs(int(frames[-1].image.mean()) - 60) <= 3  # the new picture, at the first size
    assert [f.pts for f in frames] == sorted({f.pts for f in frames})  # still increasing


# --- Matroska cut off without its index ---------------------------------------------------------------


@pytest.fixture(scope="module")
def mkv(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mkv")
    return write_video(folder / "long.mkv", [noise(24, 32, i) for i in range(72)], rate=24)  # 3 s


def test_a_truncated_matroska_reports_the_shortfall(tmp_path, mkv):
    cut = truncate(mkv, tmp_path / "cut.mkv", 0.4)
    info = probe(cut)
    assert info.frames is None and abs(info.duration - 3) < 0.1  # announced in the header
    with pytest.raises(DecodeError, match=r"cut\.mkv: the video stops at \d\.\d+ s of the 3\.000 s its container announces"):
        read_all(cut)
    with VideoReader(info, skip_bad_frames=True) as reader:
        frames = list(reader)
    assert reader.repaired > 24 and len(frames) == 72  # filled to the announced length
    assert frames[-1].time == pytest.approx(71 / 24, abs=0.002)


def test_video_shorter_than_its_audio_is_not_a_truncation(tmp_path):
    path = tmp_path / "longer_audio.mkv"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=s=32x24:d=1:r=24",
                    "-f", "lavfi", "-i", "sine=d=3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le",
                    str(path)], check=True, capture_output=True)
    info = probe(path)
    assert abs(info.duration - 1) < 0.1  # the video track's own length, not the container's 3 s
    assert len(read_all(path)) == 24


# --- encoders ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec,suffix", [("libsvtav1", ".mp4"), ("av1", ".mkv"), ("libvpx-vp9", ".webm"), ("vp9", ".mkv")])
def test_av1_and_vp9_work_with_the_default_flags(tmp_path, codec, suffix):
    if codec not in {"av1", "vp9"} and codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV")
    frames = [noise(32, 48, i) for i in range(3)]
    source = write_video(tmp_path / "in.mkv", frames)
    info = probe(source)
    out = write_all(read_all(source), info, tmp_path / f"out{suffix}", codec=codec)  # --preset medium, --crf 16
    assert len(seconds(out)) == 3


def test_presets_are_translated_to_each_encoders_scale():
    opts = {codec: encoder_options(codec, crf=20, preset="veryslow", colour=SDR_BT709)
            for codec in ("libx264", "libsvtav1", "libvpx-vp9")}
    assert opts["libx264"]["preset"] == "veryslow"
    assert opts["libsvtav1"]["preset"] == "2" and opts["libvpx-vp9"]["cpu-used"] == "0"
    assert encoder_options("libsvtav1", crf=20, preset="6", colour=SDR_BT709)["preset"] == "6"
    with pytest.raises(ConfigError, match="--preset turbo: libsvtav1 takes ultrafast.*or a number"):
        encoder_options("libsvtav1", crf=20, preset="turbo", colour=SDR_BT709)


def test_a_refused_option_names_the_real_cause(tmp_path):
    with pytest.raises(OutputError, match=r"cannot write libx264 video into out\.mp4 \(.*turbo"):
        with VideoWriter(tmp_path / "out.mp4", width=32, height=16, time_base=Fraction(1, 25), rate=Fraction(25),
                         bit_depth=8, settings=EncodeSettings(preset="turbo")):
            pass
    assert list(tmp_path.iterdir()) == []


def test_only_installed_encoders_are_offered():
    choices = encoder_choices()
    assert "libx264" in choices and all(c in av.codecs_available for c in choices)
    with pytest.raises(OutputError, match="no encoder 'nope' here; try --codec libx264"):
        VideoWriter(Path("x.mp4"), width=32, height=16, time_base=Fraction(1, 25), rate=None, bit_depth=8,
                    settings=EncodeSettings(codec="nope"))


def test_raw_h264_with_a_size_change_through_the_whole_pipeline(tmp_path):
    import torch

    from vsrt_cli.model import VSRTConfig, build_model
    from vsrt_cli.engine.pipeline import Schedule, UpscaleJob, upscale

    first = write_video(tmp_path / "a.h264", [noise(32, 48, i) for i in range(3)], rate=24, fmt="h264")
    second = write_video(tmp_path / "b.h264", [noise(40, 56, i) for i in range(3)], rate=24, fmt="h264")
    joined = tmp_path / "joined.h264"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    torch.manual_seed(0)
    model = build_model(VSRTConfig(num_feat=4, num_frame=5, depth=1, heads=1, patch_size=8, extract_blocks=0,
                                   reconstruct_blocks=0, ff_blocks=0, norm="channel", use_flow=False)).eval()
    job = UpscaleJob(source=joined, output=tmp_path / "out.mp4", schedule=Schedule(tile=0, overlap=0, window=3, stride=3),
                     device=torch.device("cpu"), precision="fp32")
    list(upscale(model, job))
    assert seconds(tmp_path / "out.mp4") == [round(i / 24, 4) for i in range(6)]
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert {(f.width, f.height) for f in c.decode(video=0)} == {(192, 128)}
