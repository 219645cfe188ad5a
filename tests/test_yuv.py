"""YUV <-> RGB on the model's device (vsrt_cli/engine/yuv.py): the same pictures as swscale's host
conversion, planes in and out of the reader, writer and pipeline, and CUDA parity."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.test_chunked import clip_with_audio, decoded, job
from vsrt_cli.jobs.chunked import upscale_chunks
from vsrt_cli.io.colour import Colour
from vsrt_cli.io.probe import probe
from vsrt_cli.io.convert import to_planes, to_rgb
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.io.writer import EncodeSettings, VideoWriter
from vsrt_cli.engine.pipeline import upscale
from vsrt_cli.engine.runtime import Download, upload_frame
from vsrt_cli.io.planes import Planes

CPU = torch.device("cpu")
MPEG, JPEG = 1, 2


def scene(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A camera-like RGB picture: smooth colour gradients, soft shapes and mild noise (chroma
    that changes every pixel, as pure noise does, is not what 4:2:0 carries)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rng = np.random.default_rng(seed)
    channels = [0.5 + 0.4 * np.sin(6 * x + 3 * y + phase) for phase in (0.0, 2.0, 4.0)]
    disc = ((x - 0.4) ** 2 + (y - 0.3) ** 2 < 0.05).astype(float)
    image = np.stack(channels, -1) * (1 - 0.5 * disc[..., None]) + rng.normal(0, 0.01, (height, width, 3))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def yuv_frame(rgb: np.ndarray, matrix: int, colour_range: int) -> av.VideoFrame:
    """``rgb`` through swscale into a tagged yuv420p frame, as a decoder would give it."""
    levels = "JPEG" if colour_range == JPEG else "MPEG"
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", src_colorspace=matrix, dst_colorspace=matrix, dst_color_range=levels)
    frame.colorspace, frame.color_range = matrix, colour_range
    return frame


def as_rgb8(tensor: torch.Tensor) -> np.ndarray:
    return (tensor.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@pytest.mark.parametrize("matrix", [1, 6, 9])
@pytest.mark.parametrize("colour_range", [MPEG, JPEG])
def test_planes_convert_to_the_picture_swscale_gives(matrix, colour_range):
    original = scene()
    frame = yuv_frame(original, matrix, colour_range)
    planes = to_planes(frame, 0, (64, 48), left=False)  # a frame swscale made: chroma location unset, centred
    assert planes is not None and planes.full_range == (colour_range == JPEG) and planes.matrix == matrix
    ours = as_rgb8(upload_frame(planes, CPU)).astype(int)
    host = to_rgb(frame, 8, 0).astype(int)
    difference = np.abs(ours - host)
    assert difference.mean() < 0.5 and difference.max() <= 2, (difference.mean(), difference.max())
    # swscale rounds in fixed point; the float maths is no further from the picture encoded
    assert np.abs(ours - original).mean() <= np.abs(host - original).mean() + 0.01
    # the wrong matrix is visibly wrong: the test can tell them apart
    other = as_rgb8(upload_frame(replace(planes, matrix=6 if matrix == 1 else 1), CPU)).astype(int)
    assert np.abs(other - host).mean() > 2 * difference.mean() + 0.5


@pytest.mark.parametrize("matrix,full", [(1, False), (6, True)])
def test_device_planes_out_match_swscales_rgb_to_yuv420p(matrix, full):
    rgb = scene(seed=3)
    hr = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    (planes,) = Download(hr, deep=False, yuv=(matrix, full, False)).images()
    reference = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", src_colorspace=matrix, dst_colorspace=matrix, dst_color_range="JPEG" if full else "MPEG")
    for ours, index in ((planes.y, 0), (planes.u, 1), (planes.v, 2)):
        plane = reference.planes[index]
        theirs = np.frombuffer(plane, np.uint8).reshape(ours.shape[0], plane.line_size)[:, :ours.shape[1]]
        difference = np.abs(ours.astype(int) - theirs)
        # swscale's full-range chroma comes out about half a code value low (offset ~127.5, not 128)
        assert ours.dtype == np.uint8 and difference.mean() < (0.05 if index == 0 else 0.75 if full else 0.4), (index, difference.mean())
    # both decode back to the picture equally well (swscale's chroma filter differs at steep edges)
    reference.colorspace, reference.color_range = matrix, JPEG if full else MPEG
    back = as_rgb8(upload_frame(planes, CPU)).astype(int) - rgb
    swscale_back = as_rgb8(upload_frame(to_planes(reference, 0, (64, 48), left=False), CPU)).astype(int) - rgb
    assert np.abs(back).mean() <= np.abs(swscale_back).mean() + 0.05


@pytest.mark.parametrize("codec,left", [("libx264", True), ("libx265", True), ("mpeg2video", True), ("libvpx-vp9", False)])
def test_chroma_sits_where_the_codec_puts_it(tmp_path, codec, left):
    """Decoded frames of real codecs, as the reader gives them: planes and RGB agree, and the
    other siting would not."""
    if codec not in av.codecs_available:
        pytest.skip(f"no {codec} here")
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"qp": "0"} if codec == "libx264" else {"lossless": "1"} if codec == "libvpx-vp9" else {}
        packets = stream.encode(av.VideoFrame.from_ndarray(scene(), format="rgb24").reformat(format="yuv420p"))
        for packet in packets + stream.encode():
            if packet.dts is None:  # libx265 leaves a one-frame clip's DTS unset (the writer's fix)
                packet.dts = packet.pts
            container.mux(packet)
    info = probe(path)
    with VideoReader(info, yuv=True) as frames:
        (planes,) = [f.image for f in frames]
    with VideoReader(info) as frames:
        (rgb,) = [f.image.astype(int) for f in frames]
    assert planes.left == left
    ours = np.abs(as_rgb8(upload_frame(planes, CPU)).astype(int) - rgb).mean()
    other = np.abs(as_rgb8(upload_frame(replace(planes, left=not left), CPU)).astype(int) - rgb).mean()
    assert ours < 0.5 and other > 1.0, (ours, other)


def test_left_sited_output_is_where_h264_players_read_it():
    """Planes made for an H.264/HEVC output carry their chroma on the even columns: read back
    there they give the picture as well as centred planes read centred; read centred they do not."""
    rgb = scene(seed=5)
    hr = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255

    def error(planes: Planes) -> float:
        return float(np.abs(as_rgb8(upload_frame(planes, CPU)).astype(int) - rgb).mean())

    (left,) = Download(hr, deep=False, yuv=(1, False, True)).images()
    (centred,) = Download(hr, deep=False, yuv=(1, False, False)).images()
    assert left.left and not centred.left and np.array_equal(left.y, centred.y)
    assert error(left) <= error(centred) + 0.1
    assert error(replace(left, left=False)) > error(left) + 0.3


@pytest.mark.parametrize("chromaloc,expected", [(None, (True, False)), (1, (False, False)), (2, (True, True)),
                                                (3, (False, True)), (4, None), (5, None)])
def test_a_streams_tagged_siting_is_found_from_its_first_telling_frame(tmp_path, chromaloc, expected):
    """H.264's chroma_sample_loc_type (0 left, 1 centre, 2 top-left, 3 top, 4 bottom-left,
    5 bottom): PyAV does not give it, swscale follows it. A flat first frame tells nothing and
    keeps the codec's default; the next one settles it, or sends a siting the device does not
    reproduce (bottom rows) to swscale."""
    path = tmp_path / "tagged.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"qp": "0", **({"x264-params": f"chromaloc={chromaloc}"} if chromaloc is not None else {})}
        for i in range(3):
            image = scene(seed=i) if i else np.full((48, 64, 3), 90, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")))
        container.mux(stream.encode())
    with VideoReader(probe(path), yuv=True) as frames:
        images = [f.image for f in frames]
    with VideoReader(probe(path)) as frames:
        rgb = [f.image.astype(int) for f in frames]
    assert isinstance(images[0], Planes) and (images[0].left, images[0].top) == (True, False)  # flat: the default
    for image, host in zip(images[1:], rgb[1:]):
        if expected is None:
            assert isinstance(image, np.ndarray) and np.array_equal(image, host)
        else:
            assert (image.left, image.top) == expected
            assert np.abs(as_rgb8(upload_frame(image, CPU)).astype(int) - host).mean() < 0.5


def test_rotation_is_applied_after_conversion():
    frame = yuv_frame(scene(), 1, MPEG)
    upright = upload_frame(to_planes(frame, 0, (64, 48), left=False), CPU)
    turned = upload_frame(to_planes(frame, 90, (64, 48), left=False), CPU)
    assert turned.shape == (3, 64, 48) and to_planes(frame, 90, (64, 48), left=False).shape == (64, 48)
    assert torch.equal(turned, torch.rot90(upright, 1, dims=(1, 2)))
    assert np.array_equal(as_rgb8(turned), np.rot90(as_rgb8(upright), 1))


def test_frames_the_device_does_not_convert_stay_rgb():
    rgb = scene()
    assert to_planes(yuv_frame(rgb, 1, MPEG), 0, (64, 48), False) is not None
    assert to_planes(yuv_frame(rgb, 1, MPEG), 0, (32, 24), False) is None  # a size change part-way: swscale scales
    assert to_planes(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p"), 0, (64, 48), False) is None
    assert to_planes(yuv_frame(scene(46, 62), 1, MPEG), 0, (62, 46), False) is not None
    odd = av.VideoFrame.from_ndarray(scene(47, 63), format="rgb24").reformat(format="yuv420p")
    assert to_planes(odd, 0, (63, 47), False) is None
    constant_luminance = yuv_frame(rgb, 1, MPEG)
    constant_luminance.colorspace = 10  # BT.2020 CL: not a matrix
    assert to_planes(constant_luminance, 0, (64, 48), False) is None


def test_the_writer_encodes_planes_as_they_are(tmp_path):
    frame = yuv_frame(scene(), 1, MPEG)
    planes = to_planes(frame, 0, (64, 48), left=False)
    out = tmp_path / "planes.mkv"
    settings = EncodeSettings(codec="ffv1", pix_fmt="yuv420p", copy_streams=False)
    writer = VideoWriter(out, width=64, height=48, time_base=Fraction(1, 24), rate=24, bit_depth=8,
                         settings=settings, colour=Colour())
    assert writer.takes_planes
    with writer:
        writer.write(planes, 0)
        with pytest.raises(ValueError, match="matrix 6"):
            writer.write(replace(planes, matrix=6), 1)  # would be tagged 709 and look wrong
    with av.open(str(out)) as container:
        (back,) = list(container.decode(video=0))
    assert np.array_equal(back.to_ndarray(), frame.to_ndarray())  # lossless: the same code values
    rgb_out = VideoWriter(tmp_path / "rgb.mkv", width=64, height=48, time_base=Fraction(1, 24), rate=24, bit_depth=8,
                          settings=replace(settings, pix_fmt="yuv444p"), colour=Colour())
    assert not rgb_out.takes_planes


def test_the_reader_gives_planes_only_when_asked(tmp_path):
    source = clip_with_audio(tmp_path / "in.mp4", frames=4, size=(32, 24))
    with VideoReader(probe(source)) as frames:
        rgb = [f.image for f in frames]
    with VideoReader(probe(source), yuv=True) as frames:
        planes = [f.image for f in frames]
    assert all(isinstance(i, np.ndarray) for i in rgb) and all(isinstance(p, Planes) for p in planes)
    for image, plane in zip(rgb, planes):
        assert np.abs(as_rgb8(upload_frame(plane, CPU)).astype(int) - image).mean() < 2  # noise: chroma differs most


def test_colour_on_the_device_gives_the_hosts_output(tiny_model, tmp_path, monkeypatch):
    """Whole pipeline and chunks, on the CPU with the device conversion forced: the frames the
    model saw and the video it wrote are those of the host conversion, to within rounding."""
    source = clip_with_audio(tmp_path / "in.mp4", frames=8, size=(32, 24))
    seen: list[type] = []
    real_upload = upload_frame
    monkeypatch.setattr("vsrt_cli.engine.pipeline.upload_frame", lambda image, device: seen.append(type(image)) or real_upload(image, device))
    host, device, parts = tmp_path / "host.mp4", tmp_path / "device.mp4", tmp_path / "parts.mp4"
    list(upscale(tiny_model, job(source, host, 3, 1)))
    assert set(seen) == {np.ndarray}
    seen.clear()
    list(upscale(tiny_model, replace(job(source, device, 3, 1), colour_on_device=True)))
    assert set(seen) == {Planes} and len(seen) == 8
    list(upscale_chunks(tiny_model, replace(job(source, parts, 3, 1), colour_on_device=True), 2))
    a, b, c = decoded(host), decoded(device), decoded(parts)
    assert len(a) == len(b) == len(c) == 8
    for x, y, z in zip(a, b, c):
        assert np.array_equal(y, z)  # chunks stitch into the unchunked output, as with RGB
        assert np.abs(x.astype(int) - y).mean() < 1.0


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.cuda
@needs_cuda
def test_cuda_converts_as_the_cpu_does():
    frame = yuv_frame(scene(), 1, MPEG)
    planes = to_planes(frame, 90, (64, 48), left=False)
    on_gpu = upload_frame(planes, torch.device("cuda"))
    torch.testing.assert_close(on_gpu.cpu(), upload_frame(planes, CPU), atol=1e-6, rtol=0)
    (gpu_out,) = Download(on_gpu[None], deep=False, yuv=(1, False, True)).images()
    (cpu_out,) = Download(on_gpu[None].cpu(), deep=False, yuv=(1, False, True)).images()
    for a, b in ((gpu_out.y, cpu_out.y), (gpu_out.u, cpu_out.u), (gpu_out.v, cpu_out.v)):
        assert np.abs(a.astype(int) - b).max() <= 1
