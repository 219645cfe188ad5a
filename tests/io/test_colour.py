"""Colour description, HDR, pixel aspect and chroma: what the input says about its colours and
shape comes out unchanged. Every file is built here with PyAV."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.media import first_decoded, noise, write_video
from vsrt_cli.errors import OutputError
from vsrt_cli.io.colour import BT709, HLG, PQ, SMPTE170M, Mastering, guess_matrix, light_level, read_colour
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.io.writer import EncodeSettings, VideoWriter
from vsrt_cli.model import VSRTConfig, build_model
from vsrt_cli.engine.pipeline import Schedule, UpscaleJob, upscale

TINY = VSRTConfig(num_feat=4, num_frame=5, depth=1, heads=1, patch_size=8, extract_blocks=0,
                  reconstruct_blocks=0, ff_blocks=0, norm="channel", use_flow=False)
MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
HDR10 = (9, PQ, 9, 1)  # BT.2020 primaries, PQ, BT.2020 non-constant matrix, limited range


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(TINY).eval()


def upscale_file(model, source: Path, output: Path, **encode) -> list:
    job = UpscaleJob(source=source, output=output, schedule=Schedule(tile=64, overlap=8, window=3, stride=3, batch=8),
                     device=torch.device("cpu"), precision="fp32", encode=EncodeSettings(**encode))
    return list(upscale(model, job))


def copy_through_writer(source: Path, output: Path, colour=None, **encode) -> Path:
    """Every frame of ``source`` through the reader and the writer (no model): values must survive."""
    info = probe(source)
    with VideoWriter(output, width=info.width, height=info.height, time_base=info.time_base, rate=info.rate,
                     bit_depth=info.bit_depth, settings=EncodeSettings(**encode), source=source, colour=colour) as writer, \
            VideoReader(info) as frames:
        for frame in frames:
            writer.write(frame.image, frame.pts)
    return output


def tags(path: Path) -> tuple[int, int, int, int]:
    frame = first_decoded(path)
    return frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range


# One x265 thread and no B-frames: on a 2-core CI machine x265's flush of a 2-3 frame clip gave
# packets the muxer refused (EINVAL in .mkv, ENOSYS in .mp4), with one thread too (seen at the
# av==17 floor): B-frames put the first decode time before zero. Without them DTS = PTS.
X265_STEADY = "log-level=error:pools=1:frame-threads=1:bframes=0"


def hdr10_clip(path: Path, frames: int = 3) -> Path:
    images = [noise(48, 64, i, deep=True) // 4 + 16000 for i in range(frames)]  # mid-grey PQ codes
    return write_video(path, images, codec="libx265", pix_fmt="yuv420p10le", tags=HDR10, options={
        "preset": "ultrafast", "x265-params": f"{X265_STEADY}:master-display={MASTER}:max-cll=1000,400"})


# --- the matrix of untagged input -------------------------------------------------------------------


@pytest.mark.parametrize("size,matrix", [((1280, 536), BT709), ((1920, 800), BT709), ((1024, 600), BT709),
                                         ((720, 576), SMPTE170M), ((720, 480), SMPTE170M), ((640, 360), SMPTE170M)])
def test_untagged_matrix_is_guessed_as_players_do(size, matrix):
    assert guess_matrix(2, *size) == matrix  # 1280x536 (scope HD) was BT.601 by height alone
    assert guess_matrix(5, *size) == 5  # a tag always wins


def test_untagged_wide_hd_decodes_with_bt709(tmp_path):
    colour = np.array([200, 40, 90], np.uint8)
    image = np.broadcast_to(colour, (528, 1280, 3)).copy()
    source = write_video(tmp_path / "scope.mkv", [image], codec="ffv1", pix_fmt="yuv444p", tags=(2, 2, 2, 1))
    assert first_decoded(source).colorspace == 2  # untagged, though made with BT.709
    with VideoReader(probe(source)) as frames:
        back = next(iter(frames)).image
    assert np.abs(back[8:-8, 8:-8].astype(int) - colour).max() <= 2  # BT.601 would be off by ~10


# --- SDR colour description -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".mkv", "ffv1")])
def test_colour_tags_and_range_are_carried_to_the_output(tmp_path, suffix, codec):
    sd = (SMPTE170M, SMPTE170M, SMPTE170M, 2)  # NTSC primaries and matrix, full range
    images = [np.broadcast_to(np.array(c, np.uint8), (48, 64, 3)).copy() for c in ([16, 128, 230], [250, 5, 60])]
    source = write_video(tmp_path / f"sd{suffix}", images, codec=codec, tags=sd)
    out = copy_through_writer(source, tmp_path / f"out{suffix}", codec=codec, crf=0 if codec == "libx264" else 16)
    assert tags(out) == tags(source) == sd  # was BT.709, limited range, whatever came in
    with VideoReader(probe(out)) as frames, VideoReader(probe(source)) as before:
        pairs = list(zip(frames, before))
    assert len(pairs) == 2
    for got, want in pairs:  # full-range codes survive (a squeeze to 16..235 moves 230 by ~17)
        assert np.abs(got.image.astype(int) - want.image).max() <= 3


def test_image_folders_and_untagged_writes_stay_bt709(tmp_path):
    out = tmp_path / "plain.mkv"
    with VideoWriter(out, width=32, height=16, time_base=Fraction(1, 25), rate=Fraction(25), bit_depth=8,
                     settings=EncodeSettings(codec="ffv1")) as writer:
        writer.write(np.zeros((16, 32, 3), np.uint8), 0)
    assert tags(out) == (BT709, BT709, BT709, 1)


# --- HDR --------------------------------------------------------------------------------------------


def test_hdr10_comes_out_hdr10_with_its_metadata(model, tmp_path):
    source = hdr10_clip(tmp_path / "hdr10.mkv")
    info = probe(source)
    assert info.colour.hdr and info.colour.mastering is not None and info.colour.light == (1000, 400)
    out = tmp_path / "up.mkv"
    upscale_file(model, source, out)  # the default codec for HDR: libx265
    frame = first_decoded(out)
    assert frame.format.name == "yuv420p10le" and (frame.width, frame.height) == (256, 192)
    assert tags(out) == HDR10
    kept = read_colour(frame)
    assert kept.mastering == info.colour.mastering and kept.light == (1000, 400)
    assert kept.mastering.x265() == MASTER


def test_hdr_code_values_are_unchanged_through_reader_and_writer(tmp_path):
    source = hdr10_clip(tmp_path / "hdr10.mkv", frames=2)
    plain = replace(probe(source).colour, mastering=None, light=None)  # FFV1 holds no HDR10 metadata
    out = copy_through_writer(source, tmp_path / "copy.mkv", colour=plain, codec="ffv1")  # lossless: codes must match
    with av.open(str(source)) as a, av.open(str(out)) as b:
        for fa, fb in zip(a.decode(video=0), b.decode(video=0)):
            ya = fa.to_ndarray(format="yuv444p16le")[0].astype(int)
            yb = fb.to_ndarray(format="yuv444p16le")[0].astype(int)
            assert np.abs(ya - yb).max() <= 64 * 2  # 2 steps of 10 bits: no tone mapping, no range change
    assert tags(out)[:3] == HDR10[:3]


def test_hlg_keeps_its_transfer_at_10_bits_even_in_h264(tmp_path):
    hlg = (9, HLG, 9, 1)
    source = write_video(tmp_path / "hlg.mp4", [noise(48, 64, i) for i in range(2)], codec="libx265",
                         pix_fmt="yuv420p10le", tags=hlg, options={"preset": "ultrafast", "x265-params": X265_STEADY})
    assert probe(source).colour.hdr and not probe(source).colour.has_static_metadata
    out = copy_through_writer(source, tmp_path / "out.mp4", codec="libx264")
    assert tags(out) == hlg and first_decoded(out).format.name == "yuv420p10le"


@pytest.mark.parametrize("encode,reason", [
    ({"codec": "libx264"}, "mastering-display/content-light metadata, which libx264 cannot carry; use --codec libx265"),
    ({"pix_fmt": "yuv420p"}, "--pix-fmt yuv420p has 8 bits and would wash it out"),
    ({"codec": "libvpx-vp9"}, "is HDR \\(PQ, BT.2020\\)"),
])
def test_hdr_that_cannot_be_kept_is_refused_before_any_work(model, tmp_path, encode, reason):
    source = hdr10_clip(tmp_path / "hdr10.mkv", frames=1)
    suffix = ".webm" if encode.get("codec") == "libvpx-vp9" else ".mkv"
    with pytest.raises(OutputError, match=reason) as caught:
        upscale_file(model, source, tmp_path / f"out{suffix}", **encode)
    assert "\n" not in str(caught.value) and "hdr10.mkv" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hdr10.mkv"]


def test_hdr10_into_webm_defaults_to_svt_av1_with_its_metadata(tmp_path):
    source = hdr10_clip(tmp_path / "hdr10.mkv", frames=2)
    out = copy_through_writer(source, tmp_path / "out.webm", preset="ultrafast")
    frame = first_decoded(out)
    assert frame.format.name == "yuv420p10le" and tags(out)[:3] == HDR10[:3]
    kept, want = read_colour(frame), probe(source).colour
    assert kept.light == (1000, 400)
    assert abs(float(kept.mastering.red[0] - want.mastering.red[0])) < 1e-3
    assert abs(float(kept.mastering.max_luminance - want.mastering.max_luminance)) < 1


def test_side_data_parsers_read_ffmpeg_structs():
    import struct

    raw = struct.pack("<20i2i", 34000, 50000, 16000, 50000, 13250, 50000, 34500, 50000, 7500, 50000, 3000, 50000,
                      15635, 50000, 16450, 50000, 50, 10000, 10000000, 10000, 1, 1)
    assert Mastering.from_side_data(raw).x265() == MASTER
    assert Mastering.from_side_data(raw[:-8] + struct.pack("<2i", 0, 0)) is None  # flags off
    assert light_level(struct.pack("<2I", 1000, 400)) == (1000, 400)


# --- pixel aspect -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".mkv", "libx264"), (".mp4", "libsvtav1"),
                                          (".mkv", "libx265")])
def test_anamorphic_pixels_keep_their_shape(tmp_path, suffix, codec):
    source = write_video(tmp_path / "dvd.mkv", [noise(48, 64, 0)], sar=Fraction(32, 27))  # 4:3 NTSC DVD
    assert probe(source).sample_aspect == Fraction(32, 27)
    out = copy_through_writer(source, tmp_path / f"out{suffix}", codec=codec, preset="ultrafast")
    with av.open(str(out)) as c:
        assert c.streams.video[0].sample_aspect_ratio == Fraction(32, 27)


def test_a_pixel_shape_the_output_cannot_record_is_refused(tmp_path):
    source = write_video(tmp_path / "dvd.mkv", [noise(48, 64, 0)], sar=Fraction(32, 27))
    with pytest.raises(OutputError, match=r"dvd.mkv has non-square pixels \(aspect 32:27\).*\.mp4"):
        copy_through_writer(source, tmp_path / "out.webm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvd.mkv"]


def test_rotated_anamorphic_pixels_are_turned_too():
    from types import SimpleNamespace

    from vsrt_cli.io.probe import _sample_aspect  # the one rule, tested alone

    stream = SimpleNamespace(sample_aspect_ratio=Fraction(4, 3), codec_context=SimpleNamespace(sample_aspect_ratio=None))
    assert _sample_aspect(stream, 90) == Fraction(3, 4) and _sample_aspect(stream, 180) == Fraction(4, 3)


# --- chroma -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pix_fmt,dtype", [("yuv420p", np.uint8), ("yuv422p", np.uint8), ("yuv420p10le", np.uint16)])
def test_subsampled_chroma_is_interpolated_not_repeated(tmp_path, pix_fmt, dtype):
    h, w = 16, 64
    top = 1023 if dtype == np.uint16 else 255
    mid = (top + 1) // 2
    ch = h // 2 if pix_fmt.startswith("yuv420") else h
    stripes = np.zeros((ch, w // 2), dtype)
    stripes[:, ::4] = stripes[:, 1::4] = top * 0.65  # colour stripes two chroma samples wide
    stripes[:, 2::4] = stripes[:, 3::4] = top * 0.35
    planes = (np.full((h, w), mid, dtype), np.full((ch, w // 2), mid, dtype), stripes)
    source = write_video(tmp_path / "stripes.mkv", [planes], codec="ffv1", pix_fmt=pix_fmt, tags=(1, 1, 1, 1))
    with VideoReader(probe(source)) as frames:
        red = next(iter(frames)).image[h // 2, :, 0].astype(int)
    steps = np.abs(np.diff(red[4:-4]))
    # Repeated samples jump from one colour to the other in a single pixel, flat in between;
    # interpolated ones ramp over several pixels: no jump takes more than ~half the swing.
    assert steps.max() < 0.6 * (red.max() - red.min())
    assert red.max() - red.min() > 0.3 * red.max()  # the stripes are still there
