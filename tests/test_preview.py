"""`vsrt preview`: an excerpt, one run per candidate, estimates for the whole clip, a side-by-side."""

from __future__ import annotations

import av
import pytest

from tests.media import make_clip
from vsrt_cli.cli.app import main
from vsrt_cli.errors import ConfigError
from vsrt_cli.io.frames import read_image
from vsrt_cli.inspect.preview import parse_try


def test_parse_try():
    assert parse_try("model=m, window-stride=3,tile_overlap=8") == {"model": "m", "window-stride": "3", "tile-overlap": "8"}
    with pytest.raises(ConfigError, match="window-stride"):
        parse_try("stride=3")


def test_preview_measures_each_candidate_and_draws_them_side_by_side(capsys, tiny_weights, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=24, size=(32, 24), rate=24)
    out = tmp_path / "preview.mp4"
    a = f"weights={tiny_weights},tile=32,window=3,window-stride=3"
    b = f"weights={tiny_weights},tile=32,window=3,window-stride=1,precision=fp32"
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", str(clip), "-o", str(out), "--seconds", "0.25", "--try", a, "--try", b])
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    text = captured.out
    assert "excerpt: 6 frames from 0.38 s" in text and "whole clip: 24 frames" in text  # centred: frames 9-14
    assert "window-stride=3" in text and "window-stride=1" in text and "ETA" in text and "flicker" in text
    assert text.count("(") >= 3  # the flicker of each candidate, with bicubic's beside it
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (3 * 128, 96)  # bicubic and two candidates at x4
        assert sum(1 for _ in container.decode(stream)) == 6


def test_preview_png_of_a_crop(capsys, tiny_weights, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=12, size=(64, 48), rate=24)
    out = tmp_path / "preview.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", str(clip), "-o", str(out), "--seconds", "0.1", "--crop", "32x24+8+8", "--no-temporal",
              "--try", f"weights={tiny_weights},tile=32,window=1,window-stride=1"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    image, _, _ = read_image(out)
    assert image.shape == (96, 2 * 128, 3)
    assert "32x24" in captured.out and "64x48" in captured.out
