"""The output size a user asks for (vsrt_cli/engine/resize.py): the geometry alone, the resize on
the device, and end to end through the pipeline (SAR, HDR at 10 bits, the record)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.conftest import NO_FLOW
from tests.io.test_colour import HDR10, hdr10_clip, tags
from tests.media import first_decoded, noise, write_video
from vsrt_cli.errors import ConfigError
from vsrt_cli.engine.pipeline import Finished, Schedule, UpscaleJob, upscale
from vsrt_cli.engine.resize import FILTERS, OutputSize, resize, target
from vsrt_cli.jobs.provenance import ModelId, recording
from vsrt_cli.model import build_model

FAST = Schedule(tile=0, overlap=0, window=3, stride=3, batch=1)


def display_aspect(width: int, height: int, sar: Fraction | None) -> Fraction:
    return Fraction(width, height) * (sar or 1)


# --- geometry ---------------------------------------------------------------------------------------


def test_a_dvd_to_height_1080_is_1440x1080_in_square_pixels():
    made = target(OutputSize.parse(height=1080), 720, 480, Fraction(8, 9))
    assert (made.width, made.height, made.sample_aspect) == (1440, 1080, 1)
    assert display_aspect(made.width, made.height, made.sample_aspect) == display_aspect(720, 480, Fraction(8, 9))


@pytest.mark.parametrize("width,height,sar,ask,want", [
    (720, 480, Fraction(8, 9), {"width": 1440}, (1440, 1080)),
    (720, 576, Fraction(16, 15), {"height": 1080}, (1440, 1080)),  # PAL 4:3
    (1920, 1080, Fraction(1), {"height": 2160}, (3840, 2160)),
    (1920, 1080, Fraction(1), {"width": 1001 * 2}, (2002, 1126)),  # the other side rounded to even
    (321, 181, Fraction(1), {"size": "960x542"}, (960, 542)),  # within 1 %
])
def test_width_height_and_size_follow_the_display_aspect(width, height, sar, ask, want):
    made = target(OutputSize.parse(**ask), width, height, sar)
    assert (made.width, made.height) == want and made.sample_aspect == 1
    assert abs(float(display_aspect(*want, 1) / display_aspect(width, height, sar)) - 1) < 0.01


def test_scale_keeps_the_pixel_shape_and_rounds_to_even():
    made = target(OutputSize.parse(scale=2.5), 720, 480, Fraction(8, 9))
    assert (made.width, made.height, made.sample_aspect) == (1800, 1200, Fraction(8, 9))
    assert target(OutputSize.parse(scale=3), 33, 17).width % 2 == 0
    assert target(None, 33, 17, Fraction(4, 3)) == target(None, 33, 17, Fraction(4, 3))
    assert (target(None, 33, 17).width, target(None, 33, 17).height) == (132, 68)  # x4 as ever
    assert OutputSize.parse(scale=4) is None  # the default is no resize at all


@pytest.mark.parametrize("ask,says", [
    ({"scale": 4.5}, "at most 4"),
    ({"scale": 1.0}, "above 1"),
    ({"height": 2000}, "more than x4"),
    ({"width": 1441}, "even"),
    ({"size": "1920x1080"}, "changes the picture's shape by +33.3%"),
    ({"size": "1920by1080"}, "WIDTHxHEIGHT"),
    ({"scale": 2, "height": 1080}, "not --scale and --width/--height"),
    ({"width": 1440, "height": 1080}, "the other follows"),
    ({"stretch": True}, "--stretch goes with --size"),
    ({"filter": "lanczos"}, "--resize-filter lanczos: nothing is resized at x4"),
    ({"scale": 2, "filter": "sinc"}, "--resize-filter sinc: use one of bicubic, bilinear, area, lanczos"),
])
def test_what_cannot_be_made_is_refused_in_one_line(ask, says):
    with pytest.raises(ConfigError, match=None) as caught:
        target(OutputSize.parse(**ask), 720, 480, Fraction(8, 9))
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_stretch_lets_size_change_the_shape():
    made = target(OutputSize.parse(size="1920x1080", stretch=True), 720, 480, Fraction(8, 9))
    assert (made.width, made.height, made.sample_aspect) == (1920, 1080, 1)


def test_frame_folders_may_have_odd_sizes():
    assert target(OutputSize.parse(width=1441), 720, 480, even=False).width == 1441


# --- the resize ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("filter", FILTERS)
def test_resize_keeps_flat_colour_and_antialiases(filter):
    flat = torch.full((2, 3, 96, 128), 0.3)
    assert torch.allclose(resize(flat, 54, 72, filter), torch.full((2, 3, 54, 72), 0.3), atol=1e-5)
    stripes = torch.zeros(1, 3, 96, 128)
    stripes[..., ::2] = 1.0  # the finest detail there is: aliased away, it would beat into bands
    small = resize(stripes, 48, 43, filter)
    assert small.shape == (1, 3, 48, 43)
    assert abs(small.mean().item() - 0.5) < 0.02 and small.std().item() < 0.1
    assert small.min() >= 0 and small.max() <= 1


# --- end to end -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(NO_FLOW).eval()


def run(model, source: Path, output: Path, **fields) -> list:
    job = UpscaleJob(source=source, output=output, schedule=FAST, device=torch.device("cpu"), precision="fp32", **fields)
    return list(recording(upscale(model, job), job, ModelId("tiny", None)))


def test_a_720x480_sar_8_9_clip_to_height_1080_keeps_its_display_aspect(model, tmp_path):
    source = write_video(tmp_path / "dvd.mp4", [noise(480, 720, i) for i in range(2)], sar=Fraction(8, 9))
    out = tmp_path / "hd.mp4"
    events = run(model, source, out, size=OutputSize.parse(height=1080))
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        made = (stream.width, stream.height)
        sar = stream.sample_aspect_ratio or Fraction(1)
        frames = sum(1 for _ in container.decode(stream))
    assert made == (1440, 1080) and sar == 1 and frames == 2
    assert display_aspect(*made, sar) == display_aspect(720, 480, Fraction(8, 9)) == Fraction(4, 3)
    finished = events[-1]
    assert isinstance(finished, Finished) and (finished.width, finished.height) == (1440, 1080)
    record = json.loads((tmp_path / "hd.mp4.vsrt.json").read_text())
    assert record["size"] == {"asked": "--height 1080", "made": [1440, 1080], "filter": "bicubic"}


def test_scale_2_of_a_10_bit_hdr_clip_stays_hdr_at_10_bits(model, tmp_path):
    source = hdr10_clip(tmp_path / "hdr10.mkv", frames=2)
    out = tmp_path / "x2.mkv"
    run(model, source, out, size=OutputSize.parse(scale=2))
    frame = first_decoded(out)
    assert frame.format.name == "yuv420p10le" and (frame.width, frame.height) == (128, 96)
    assert tags(out) == HDR10


@pytest.mark.parametrize("filter", ["bicubic", "lanczos"])
def test_the_resize_is_the_x4_output_resized(model, tmp_path, filter):
    """--scale 2 writes exactly the x4 frames resized by the filter asked (PNG frames out)."""
    images = [noise(24, 32, i) for i in range(3)]
    source = write_video(tmp_path / "in.mkv", images)
    run(model, source, tmp_path / "x4", frames_out=True)
    run(model, source, tmp_path / "x2", frames_out=True, size=OutputSize.parse(scale=2, filter=filter))
    from vsrt_cli.io.frames import list_frames, read_image

    for big, half in zip(list_frames(tmp_path / "x4"), list_frames(tmp_path / "x2")):
        x4 = torch.from_numpy(read_image(big)[0].astype(np.float32) / 255).permute(2, 0, 1)[None]
        want = (resize(x4, 48, 64, filter)[0].permute(1, 2, 0).numpy() * 255).round()
        assert np.abs(read_image(half)[0].astype(np.float32) - want).max() <= 1  # the x4 PNG was rounded once
