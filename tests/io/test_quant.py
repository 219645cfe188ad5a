"""A frame's quantiser, read from the decoder: what a compression-aware network is told about
its input, the same way for a user's video, a chunk of it and the training windows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.media import noise, write_video
from vsrt_cli.io.frames import encode_png, iter_folder
from vsrt_cli.io.probe import probe
from vsrt_cli.io.quant import mean_qp, mpeg_to_qp, x265_crf_to_qp, x265_qp
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.io.stitch import read_range, scan
from vsrt_cli.engine.pipeline import Schedule, UpscaleJob, upscale


def frames(n: int = 6) -> list[np.ndarray]:
    ys, xs = np.mgrid[0:64, 0:96]
    base = (128 + 60 * np.sin(xs * 0.3 + ys * 0.1))[..., None] * np.ones(3)
    return [np.clip(base + noise(64, 96, i).astype(float) * 0.1, 0, 255).astype(np.uint8) for i in range(n)]


def quants(path: Path) -> list[float | None]:
    with VideoReader(probe(path)) as reader:
        return [f.quant for f in reader]


def test_h264_frames_carry_their_qp_and_a_coarser_encode_says_so(tmp_path):
    fine = quants(write_video(tmp_path / "fine.mp4", frames(), options={"qp": "20"}))
    coarse = quants(write_video(tmp_path / "coarse.mp4", frames(), options={"qp": "38"}))
    assert len(fine) == len(coarse) == 6
    assert all(abs(q - 20) <= 3 for q in fine) and all(abs(q - 38) <= 3 for q in coarse)


X265 = {"x265-params": "log-level=none"}


@pytest.mark.parametrize("codec,options,expect", [
    ("ffv1", None, 0.0),
    ("libx265", {**X265, "crf": "20"}, x265_crf_to_qp(20)),  # x265 writes its CRF into the stream
    ("libx265", {**X265, "crf": "34"}, x265_crf_to_qp(34)),
    ("libx265", {**X265, "b": "300k"}, None),  # at a bitrate: unknown
])
def test_lossless_is_clean_and_x265s_crf_is_put_on_h264s_scale(tmp_path, codec, options, expect):
    got = quants(write_video(tmp_path / "v.mkv", frames(3), codec=codec, pix_fmt="yuv420p", options=options))
    assert got == [expect] * 3
    assert x265_crf_to_qp(18) == pytest.approx(18) and x265_crf_to_qp(60) == 51


def test_x265s_settings_are_read_only_from_a_constant_quality_x265_encode():
    head = b"\x00\x01junk x265 (build 216) - 4.2 - options: cpuid=1 rc=crf crf=23.5 qcomp=0.60 ipratio=1.40"
    assert x265_qp(head + b"\x00 crf=40.0") == pytest.approx(x265_crf_to_qp(23.5))  # the string ends at NUL
    assert x265_qp(head.replace(b"rc=crf", b"rc=abr")) is None
    assert x265_qp(b"x265 (build 216) options: rc=cqp qp=30") is None
    assert x265_qp(b"x264 - core 164 - options: rc=crf crf=23.0") is None and x265_qp(b"") is None


def test_mpeg2_qscale_is_put_on_h264s_scale(tmp_path):
    got = quants(write_video(tmp_path / "m.mpg", frames(4), codec="mpeg2video", options={"qmin": "8", "qmax": "8"}))
    known = [q for q in got if q is not None]
    assert known and all(q == pytest.approx(mpeg_to_qp(16)) for q in known)  # exported as 2 x qscale
    assert mpeg_to_qp(4) == pytest.approx(22) and mpeg_to_qp(16) == pytest.approx(34) and mpeg_to_qp(1e6) == 51


def test_vp9s_quantiser_index_is_put_on_h264s_scale_and_its_lossless_mode_is_clean(tmp_path):
    from vsrt_cli.io.quant import vp9_to_qp

    def vp9(name, options):
        return quants(write_video(tmp_path / name, frames(4), codec="libvpx-vp9", options={"b": "0", **options}))

    fine = vp9("fine.webm", {"min-q": "20", "max-q": "20", "crf": "20"})  # index 63
    coarse = vp9("coarse.webm", {"min-q": "50", "max-q": "50", "crf": "50"})  # index 185
    assert fine and coarse and None not in fine + coarse
    # per frame the encoder moves the index (key and hidden frames finer); the window's mean:
    assert 16 <= np.mean(fine) <= 22 and 30 <= np.mean(coarse) <= 37, (fine, coarse)
    assert vp9("lossless.webm", {"lossless": "1"}) == [0.0] * 4
    assert vp9_to_qp(0) == 0 and vp9_to_qp(255) == pytest.approx(42.9, abs=0.1)


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_a_chunk_reads_the_same_quantisers_as_the_whole_clip(tmp_path, codec):
    options = {"qp": "30", "g": "4"} if codec == "libx264" else {**X265, "crf": "30", "g": "4"}
    path = write_video(tmp_path / "v.mp4", frames(8), codec=codec, options=options)
    info = probe(path)
    whole = quants(path)
    assert None not in whole  # x265's settings: in the MP4 header, so a chunk starting later has them
    assert [f.quant for f in read_range(info, scan(info), 4, 8)] == whole[4:]


def test_png_frames_are_clean_and_jpeg_ones_unknown(tmp_path):
    for i, image in enumerate(frames(2)):
        (tmp_path / f"{i}.png").write_bytes(encode_png(image))
    import av

    jpg = tmp_path / "2.jpg"
    with av.open(str(jpg), "w", format="image2") as c:
        s = c.add_stream("mjpeg")
        s.width, s.height, s.pix_fmt = 96, 64, "yuvj420p"
        c.mux(s.encode(av.VideoFrame.from_ndarray(frames(1)[0], format="rgb24").reformat(format="yuvj420p")))
        c.mux(s.encode(None))
    from fractions import Fraction

    got = [f.quant for f in iter_folder(sorted(tmp_path.iterdir()), Fraction(25))]
    assert got == [0.0, 0.0, None]


def test_mean_qp_ignores_the_unknown():
    assert mean_qp([20.0, None, 30.0]) == 25.0
    assert math.isnan(mean_qp([None, float("nan")]))


class Recording(torch.nn.Module):
    """Bicubic-free stand-in: nearest x4, and notes the ``quant`` of every call."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.seen: list[float] = []

    def forward(self, x, flows=None, *, keep=None, quant=None):
        self.seen.append(float("nan") if quant is None else float(quant))
        out = x.repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)
        return out if keep is None else out[:, keep]


def test_every_window_is_told_the_mean_quantiser_of_its_frames(tmp_path):
    from tests.conftest import NO_FLOW

    source = write_video(tmp_path / "v.mp4", frames(6), options={"qp": "33"})
    model = Recording(NO_FLOW)
    job = UpscaleJob(source=source, output=tmp_path / "out.mp4", schedule=Schedule(tile=0, overlap=0, window=3, stride=3),
                     device=torch.device("cpu"), precision="fp32")
    list(upscale(model, job))
    per_frame = quants(source)
    assert len(model.seen) == 2
    assert model.seen[0] == pytest.approx(mean_qp(per_frame[:3])) and model.seen[1] == pytest.approx(mean_qp(per_frame[3:]))
    assert all(abs(q - 33) <= 3 for q in model.seen)


@pytest.mark.parametrize("codec,said,blend", [("libx264", "H.264 QP 3", False), ("libx265", "works blind", False),
                                              ("libx265crf", "H.264 QP 3", True),
                                              ("ffv1", "lossless", False), ("libx264", "H.264 QP 3", True)])
def test_the_user_is_told_what_the_network_was_told(tmp_path, codec, said, blend):
    import dataclasses

    from tests.conftest import NO_FLOW
    from vsrt_cli.model import build_model
    from vsrt_cli.engine.pipeline import Notice

    options = {"libx264": {"qp": "33"}, "libx265": {**X265, "b": "300k"}, "libx265crf": {**X265, "crf": "31"}, "ffv1": {}}[codec]
    source = write_video(tmp_path / "v.mkv", frames(4), codec=codec.removesuffix("crf"), options=options)
    net = build_model(dataclasses.replace(NO_FLOW, quant_film=True, quant_blend=blend)).eval()
    job = UpscaleJob(source=source, output=tmp_path / "out.mkv", schedule=Schedule(tile=0, overlap=0, window=3, stride=3),
                     device=torch.device("cpu"), precision="fp32")
    events = [e for e in upscale(net, job) if isinstance(e, Notice)]
    notices = [e.message for e in events]
    assert len([n for n in notices if "compressed" in n or "lossless" in n]) == 1 and said in " ".join(notices)
    assert all(e.note for e in events if said in e.message)  # information, not drawn as a warning
    plain = Recording(NO_FLOW)  # a network that is told nothing says nothing about it
    job = dataclasses.replace(job, output=tmp_path / "plain.mkv")
    assert not [e for e in upscale(plain, job) if isinstance(e, Notice) and "compress" in e.message]
