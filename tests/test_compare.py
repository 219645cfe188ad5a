"""`vsrt compare`: frames matched by timestamp (a VFR clock), common size, labels, modes, crop."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import timestamps
from vsrt_cli.cli.app import main
from vsrt_cli.inspect.compare import Timed, compose, fit, frames_of, shown, synchronised
from vsrt_cli.errors import ConfigError
from vsrt_cli.io.excerpt import Crop
from vsrt_cli.io.frames import encode_png, read_image


def solid_clip(path: Path, stamps_ms: list[int], size: tuple[int, int] = (32, 24)) -> Path:
    """Frame k is flat grey ``20 k + 10`` at ``stamps_ms[k]`` milliseconds (time base 1/1000)."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"crf": "0", "preset": "ultrafast", "bf": "0"}
        for k, ms in enumerate(stamps_ms):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 20 * k + 10, np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def level(image: np.ndarray) -> int:
    """Which frame ``k`` a flat grey image is (its centre pixel ~ 20 k + 10)."""
    return int(round((float(image[image.shape[0] // 2, image.shape[1] // 2].mean()) - 10) / 20))


@pytest.fixture
def vfr_and_cfr(tmp_path):
    vfr = solid_clip(tmp_path / "vfr.mkv", [0, 40, 120, 160, 300])
    cfr = solid_clip(tmp_path / "cfr.mkv", [40 * j for j in range(10)], size=(128, 96))
    return vfr, cfr


def test_frames_are_matched_by_timestamp_not_index(vfr_and_cfr):
    vfr, cfr = vfr_and_cfr
    shown = [(level(a.image), level(b.image)) for a, b in synchronised([frames_of(vfr), frames_of(cfr)])]
    assert shown == [(0, 0), (1, 1), (2, 3), (3, 4), (4, 7)]  # the CFR frame on screen at each VFR time
    shown = [(level(b.image), level(a.image)) for b, a in synchronised([frames_of(cfr), frames_of(vfr)])]
    assert [a for _, a in shown] == [0, 1, 1, 2, 3, 3, 3, 3, 4, 4]  # the other way: frames are held


def test_side_by_side_png_has_the_common_size_and_labels(capsys, vfr_and_cfr, tmp_path):
    vfr, cfr = vfr_and_cfr
    out = tmp_path / "cmp.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(vfr), str(cfr), "-o", str(out), "--frame", "2", "--label", "LR", "--label", "HR"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    image, _, _ = read_image(out)
    assert image.shape == (96, 256, 3)  # the 32x24 input zoomed x4 beside the 128x96 one
    left, right = image[:, :128], image[:, 128:]
    assert level(left) == 2 and level(right) == 3
    for panel in (left, right):  # white text on a black box in the top-left corner, content elsewhere
        corner = panel[:12, :24]
        assert (corner == 255).all(axis=-1).any() and (corner == 0).all(axis=-1).any()
        assert not (panel[40:, 40:] == 255).all(axis=-1).any()


def test_the_video_keeps_the_clock_inputs_timestamps(capsys, vfr_and_cfr, tmp_path):
    vfr, cfr = vfr_and_cfr
    out = tmp_path / "cmp.mp4"
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(vfr), str(cfr), "-o", str(out), "--mode", "grid", "--quiet"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert timestamps(out) == timestamps(vfr)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (256, 96)  # 2 inputs: a 2x1 grid


def test_modes_compose_as_described():
    a = np.full((20, 30, 3), 100, np.uint8)
    b = a.copy()
    b[15:, 20:] = 140
    side = compose([a, b], ["a", "b"], "side")
    assert side.shape == (20, 60, 3)
    diff = compose([a, b], ["a", "b"], "diff")
    assert diff.shape == (20, 60, 3) and (diff[15:, 50:] == 160).all() and (diff[15:, 30:48] == 0).all()
    grid = compose([a, b, a], ["a", "b", "c"], "grid")
    assert grid.shape == (40, 60, 3) and (grid[20:, 30:] == 0).all()  # the empty fourth cell
    wipe = compose([a, b], ["a", "b"], "wipe")
    assert wipe.shape == (20, 30, 3) and (wipe[:, 15] == 255).all() and (wipe[16:, 22:] == 140).all()


def test_fit_zooms_with_nearest_neighbour_and_letterboxes():
    crop = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    zoomed = fit(crop, 8, 6)
    assert np.array_equal(zoomed, crop.repeat(2, axis=0).repeat(2, axis=1))  # pixels, not a blur
    boxed = fit(crop, 8, 12)
    assert boxed.shape == (8, 12, 3) and (boxed[:, :3] == 0).all() and np.array_equal(boxed[:, 3:9], zoomed)


# --- --crop: one region, in pixels of the compared size, cut from every input ------------------


def test_crop_is_taken_in_pixels_of_the_compared_size():
    small = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)  # zoomed x2 to 8x6
    big = np.arange(8 * 6 * 3, dtype=np.uint8).reshape(8, 6, 3) + 100
    group = [Timed(0.0, 0, Fraction(1, 25), img) for img in (small, big)]
    a, b = shown(group, 8, 6, Crop(width=3, height=2, x=1, y=5))
    assert a.shape == b.shape == (2, 3, 3)
    assert np.array_equal(b, big[5:7, 1:4])
    assert np.array_equal(a, small.repeat(2, axis=0).repeat(2, axis=1)[5:7, 1:4])  # the zoomed pixels
    assert shown(group, 8, 6, None)[0].shape == (8, 6, 3)


def gradient_folder(folder: Path, size: tuple[int, int], frames: int = 3) -> Path:
    """Frame k: red rises along x, green along y, blue is ``40 k``; ``size`` is (width, height)."""
    width, height = size
    folder.mkdir()
    for k in range(frames):
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0] = np.arange(width)[None, :] * 255 // max(1, width - 1)
        image[..., 1] = np.arange(height)[:, None] * 255 // max(1, height - 1)
        image[..., 2] = 40 * k
        (folder / f"{k:03d}.png").write_bytes(encode_png(image))
    return folder


def test_crop_png_of_a_frame_shows_the_region_of_every_input(capsys, tmp_path):
    lr = gradient_folder(tmp_path / "lr", (16, 12))
    hr = gradient_folder(tmp_path / "hr", (64, 48))
    out = tmp_path / "crop.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(lr), str(hr), "-o", str(out), "--frame", "1", "--crop", "40x30+20+16", "--quiet"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    image, _, _ = read_image(out)
    assert image.shape == (30, 80, 3)  # two 40x30 panels side by side
    right = image[:, 40:]
    truth, _, _ = read_image(hr / "001.png")
    # away from the label in the top-left corner, the right panel is the HR frame's region
    assert np.array_equal(right[20:, 20:], truth[16 + 20 : 16 + 30, 20 + 20 : 20 + 40])
    assert (image[20:, :, 2] == 40).all()  # frame 1 of both
    left = image[20:, :40]  # the LR input zoomed x4 with nearest neighbour: 4x4 blocks
    assert np.array_equal(left[:, ::4].repeat(4, axis=1), left)


def test_crop_video_in_every_mode_has_the_crop_size(capsys, vfr_and_cfr, tmp_path):
    vfr, cfr = vfr_and_cfr
    for mode, size in (("side", (82, 32)), ("grid", (82, 32)), ("wipe", (42, 32)), ("diff", (82, 32))):
        out = tmp_path / f"{mode}.mp4"
        with pytest.raises(SystemExit) as exit_info:
            main(["compare", str(vfr), str(cfr), "-o", str(out), "--mode", mode, "--crop", "41x31+80+60", "--quiet"])
        assert exit_info.value.code == 0, capsys.readouterr().err
        with av.open(str(out)) as container:
            stream = container.streams.video[0]
            assert (stream.width, stream.height) == size, mode  # odd sizes padded to even for 4:2:0
        assert timestamps(out) == timestamps(vfr)


@pytest.mark.parametrize("spec, says", [
    ("100x10+40+0", "reaches outside the 128x96 compared frame"),
    ("10x10+0+90", "reaches outside the 128x96 compared frame"),
    ("0x10+0+0", "the size must be positive"),
    ("10x10-3", "give WIDTHxHEIGHT+X+Y"),
    ("10x10+0", "give WIDTHxHEIGHT+X+Y"),
])
def test_bad_crop_is_one_line_naming_the_frame_size(capsys, vfr_and_cfr, tmp_path, spec, says):
    vfr, cfr = vfr_and_cfr
    out = tmp_path / "bad.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(vfr), str(cfr), "-o", str(out), "--frame", "0", "--crop", spec])
    assert exit_info.value.code == ConfigError.exit_code
    message = capsys.readouterr().err.strip()
    assert says in message and f"--crop {spec}" in message and "\n" not in message
    assert not out.exists()
