"""Text on frames without a font library: a built-in 5x7 bitmap font drawn with numpy.

Lower case is drawn as upper case; a character the font lacks is drawn as ``?``. Images are
``[H, W, 3]`` uint8 RGB and are changed in place.
"""

from __future__ import annotations

import numpy as np

GLYPH_W, GLYPH_H = 5, 7

_GLYPHS = {
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "####. #...# #...# #...# #...# #...# ####.",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "####. ....# ....# .###. ....# ....# ####.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    " ": "..... ..... ..... ..... ..... ..... .....",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    ",": "..... ..... ..... ..... .##.. ..#.. .#...",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    ";": "..... .##.. .##.. ..... .##.. ..#.. .#...",
    "-": "..... ..... ..... ##### ..... ..... .....",
    "_": "..... ..... ..... ..... ..... ..... #####",
    "=": "..... ..... ##### ..... ##### ..... .....",
    "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    "/": "....# ....# ...#. ..#.. .#... #.... #....",
    "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
    "[": ".###. .#... .#... .#... .#... .#... .###.",
    "]": ".###. ...#. ...#. ...#. ...#. ...#. .###.",
    "%": "##..# ##..# ...#. ..#.. .#... #..## #..##",
    "!": "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
    "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
    "'": "..#.. ..#.. .#... ..... ..... ..... .....",
    "#": ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
    "*": "..... ..#.. #.#.# .###. #.#.# ..#.. .....",
    "<": "...#. ..#.. .#... #.... .#... ..#.. ...#.",
    ">": ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
    "@": ".###. #...# #.### #.#.# #.### #.... .###.",
}


def _bitmap(rows: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in rows.split()], dtype=bool)


FONT: dict[str, np.ndarray] = {ch: _bitmap(rows) for ch, rows in _GLYPHS.items()}


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """``[7 * scale, 6 * scale * len(text) - scale]`` bool: the pixels of ``text`` (one column of
    space between characters), each font pixel a ``scale`` x ``scale`` block."""
    if not text:
        return np.zeros((GLYPH_H * scale, 0), dtype=bool)
    glyphs = [FONT.get(ch.upper(), FONT["?"]) for ch in text]
    gap = np.zeros((GLYPH_H, 1), dtype=bool)
    row = np.concatenate([part for g in glyphs for part in (g, gap)][:-1], axis=1)
    return np.kron(row, np.ones((scale, scale), dtype=bool)).astype(bool)


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """``(width, height)`` in pixels of ``text`` drawn at ``scale``."""
    mask = text_mask(text, scale)
    return mask.shape[1], mask.shape[0]


def draw_text(
    image: np.ndarray, text: str, x: int, y: int, *, scale: int = 1,
    colour: tuple[int, int, int] = (255, 255, 255), background: tuple[int, int, int] | None = None, pad: int = 0,
) -> None:
    """Draw ``text`` with its top-left corner at ``(x, y)``, clipped to the image; with
    ``background``, on a filled box ``pad`` pixels larger on every side."""
    mask = text_mask(text, scale)
    h, w = mask.shape
    if background is not None:
        y0, x0 = max(0, y - pad), max(0, x - pad)
        image[y0 : max(0, y + h + pad), x0 : max(0, x + w + pad)] = background
    y0, x0 = max(0, y), max(0, x)
    y1, x1 = min(image.shape[0], y + h), min(image.shape[1], x + w)
    if y1 <= y0 or x1 <= x0:
        return
    region = image[y0:y1, x0:x1]
    region[mask[y0 - y : y1 - y, x0 - x : x1 - x]] = colour


def label(image: np.ndarray, text: str) -> None:
    """A readable label in the top-left corner: white on black, scaled with the image size."""
    scale = max(1, min(image.shape[:2]) // 120)
    pad = scale * 2
    # shorten a label wider than the image rather than cut it mid-glyph
    max_chars = max(1, (image.shape[1] - 2 * pad) // (6 * scale))
    if len(text) > max_chars:
        text = text[: max(1, max_chars - 2)] + ".."
    draw_text(image, text, pad, pad, scale=scale, background=(0, 0, 0), pad=pad)
