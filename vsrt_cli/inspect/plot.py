"""Line charts drawn with numpy (no plotting library): per-frame scores of ``vsrt eval --plot``.

Charts are ``[H, W, 3]`` uint8 RGB images; :func:`~vsrt_cli.io.frames.encode_png` saves them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vsrt_cli.inspect.labels import draw_text, text_size

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
REFERENCE = (90, 90, 90)  # the ground truth's own curve
INK, GRID, PAPER = (0, 0, 0), (225, 225, 225), (255, 255, 255)
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 16, 26, 24


def _segment(image: np.ndarray, p: tuple[float, float], q: tuple[float, float], colour: tuple[int, int, int], width: int = 2) -> None:
    n = int(max(abs(q[0] - p[0]), abs(q[1] - p[1]))) + 1
    xs = np.round(np.linspace(p[0], q[0], n)).astype(int)
    ys = np.round(np.linspace(p[1], q[1], n)).astype(int)
    for dy in range(width):
        for dx in range(width):
            y = np.clip(ys + dy - width // 2, 0, image.shape[0] - 1)
            x = np.clip(xs + dx - width // 2, 0, image.shape[1] - 1)
            image[y, x] = colour


def _ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering [lo, hi]."""
    span = hi - lo if hi > lo else 1.0
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    step = next(m * step for m in (1, 2, 5, 10) if m * step >= raw)
    first = math.floor(lo / step) * step
    return [first + k * step for k in range(int(math.ceil((hi - first) / step)) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"


def line_chart(
    series: Sequence[tuple[str, Sequence[float | None], tuple[int, int, int]]], *, title: str,
    width: int = 640, height: int = 240,
) -> np.ndarray:
    """One panel: each ``(name, values per frame, colour)`` as a line (None = no value there),
    axes with round ticks, the title and a legend along the top."""
    image = np.full((height, width, 3), PAPER, dtype=np.uint8)
    values = [v for _, ys, _ in series for v in ys if v is not None and math.isfinite(v)]
    frames = max((len(ys) for _, ys, _ in series), default=1)
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    ticks = _ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    x0, x1, y0, y1 = MARGIN_L, width - MARGIN_R, MARGIN_T, height - MARGIN_B

    def at(frame: float, value: float) -> tuple[float, float]:
        fx = (frame / max(1, frames - 1)) * (x1 - x0) + x0
        fy = y1 - (value - lo) / (hi - lo) * (y1 - y0)
        return fx, fy

    for tick in ticks:
        _, ty = at(0, tick)
        image[int(round(ty)), x0:x1] = GRID
        label = _fmt(tick)
        tw, th = text_size(label)
        draw_text(image, label, x0 - tw - 4, int(round(ty)) - th // 2, colour=INK)
    for frame in sorted({0, (frames - 1) // 2, frames - 1}):
        fx, _ = at(frame, lo)
        label = str(frame)
        tw, _ = text_size(label)
        draw_text(image, label, int(round(fx)) - tw // 2, y1 + 6, colour=INK)
    image[y0:y1 + 1, x0] = INK
    image[y1, x0:x1 + 1] = INK
    for _, ys, colour in reversed(series):  # the first series on top
        points = [(i, v) for i, v in enumerate(ys) if v is not None and math.isfinite(v)]
        for (i, v), (j, w) in zip(points, points[1:]):
            _segment(image, at(i, v), at(j, w), colour)
        if len(points) == 1:
            _segment(image, at(*points[0]), at(*points[0]), colour, width=4)
    draw_text(image, title, x0, 4, colour=INK)
    x = x0 + text_size(title)[0] + 16
    for name, _, colour in series:  # the legend: a colour swatch and the name
        if x >= width - 20:
            break
        image[6:12, x : x + 10] = colour
        draw_text(image, name, x + 14, 5, colour=INK)
        x += 14 + text_size(name)[0] + 12
    label = "frame"
    draw_text(image, label, (x0 + 3 * x1) // 4 - text_size(label)[0] // 2, y1 + 6, colour=INK)
    return image


def eval_plot(scores: Sequence[object], *, one_truth: bool = True, width: int = 720) -> np.ndarray:
    """``vsrt eval --plot``: PSNR-Y per frame over warping error per frame, one colour per
    output (:class:`~vsrt_cli.inspect.evaluate.ClipScore`); when all were scored against ``one_truth``,
    the ground truth's own warping error in grey."""
    colours = [PALETTE[k % len(PALETTE)] for k in range(len(scores))]
    top = line_chart([(s.name, s.psnr_y_frames, c) for s, c in zip(scores, colours)],  # type: ignore[attr-defined]
                     title="PSNR-Y (dB)", width=width)
    panels = [top]
    if any(s.warp_frames for s in scores):  # type: ignore[attr-defined]
        curves = [(s.name, s.warp_frames, c) for s, c in zip(scores, colours)]  # type: ignore[attr-defined]
        # the truth last: drawn first, under the outputs
        truth = scores[0].warp_frames_truth  # type: ignore[attr-defined]
        if truth and one_truth:
            curves.append(("truth", truth, REFERENCE))
        panels.append(line_chart(curves, title="warping error (Y levels)", width=width))
    return np.concatenate(panels, axis=0)
