"""Charts and labels drawn with numpy: text lands where asked, lines in their colours."""

from __future__ import annotations

import numpy as np

from vsrt_cli.inspect.labels import FONT, GLYPH_H, GLYPH_W, draw_text, label, text_size
from vsrt_cli.inspect.plot import PALETTE, line_chart


def test_every_glyph_is_5x7_and_text_has_its_size():
    assert all(g.shape == (GLYPH_H, GLYPH_W) for g in FONT.values())
    assert text_size("AB", scale=2) == (2 * (2 * 6 - 1), 14)
    image = np.zeros((20, 40, 3), np.uint8)
    draw_text(image, "H1", 3, 4, colour=(255, 0, 0))
    ys, xs = np.nonzero(image[..., 0])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (4, 10, 3, 3 + 6 + 3)  # "1" ends in its 4th column
    assert not image[..., 1:].any()


def test_text_is_clipped_and_a_long_label_shortened():
    image = np.zeros((10, 12, 3), np.uint8)
    draw_text(image, "WWWW", -3, 5)  # partly outside: no error, some pixels drawn
    assert image.any()
    frame = np.full((120, 60, 3), 128, np.uint8)
    label(frame, "a very long label indeed")
    assert (frame[2:9, 2:58] != 128).any() and (frame[60:] == 128).all()


def test_line_chart_draws_each_series_in_its_colour():
    chart = line_chart([("a", [1.0, 2.0, None, 4.0], PALETTE[0]), ("b", [3.0, 3.0, 3.0, 3.0], PALETTE[1])],
                       title="t", width=300, height=160)
    assert chart.shape == (160, 300, 3)
    for colour in PALETTE[:2]:
        assert np.all(chart == colour, axis=-1).sum() > 50
