"""`vsrt compare`: frames matched by timestamp (a VFR clock), common size, labels, modes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import timestamps
from vsrt_cli.cli import main
from vsrt_cli.compare import compose, fit, frames_of, synchronised
from vsrt_cli.io.frames import read_image


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
