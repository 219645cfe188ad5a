"""Pure geometry: which frames go into each model call, which tiles a frame is cut into, and
how tile outputs are blended. Plain integers and arrays; no torch, no I/O.

Temporal windows
    ``stride == 1``: every output frame ``i`` comes from the window centred on it, with the
    official ``reflection_circle`` rule at the clip ends (BasicSR ``VideoTestDataset``).
    ``stride > 1``: windows of ``window`` consecutive frames start every ``stride`` frames; each
    frame is taken from the window in which it is most central; the last window is moved back to
    end on the last frame. Clips shorter than a window get one call with all their frames.

Spatial tiles
    Tiles of ``tile x tile`` LR pixels start every ``tile - overlap`` pixels, the last one flush
    with the edge. A frame smaller than a tile, or not a multiple of the model's size step, is
    padded first (and the result cropped back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


# --- temporal windows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One model call: ``frames`` are source frame indices in window order; ``outputs`` pairs
    a position in the window with the output frame index it produces."""

    frames: tuple[int, ...]
    outputs: tuple[tuple[int, int], ...]


def reflection_circle(idx: int, n: int, window: int) -> tuple[int, ...]:
    """Frame indices of the official centred window for frame ``idx`` of an ``n``-frame clip."""
    r = window // 2
    out = []
    for i in range(idx - r, idx + r + 1):
        if i < 0:
            i = idx + r - i
        elif i > n - 1:
            i = (idx - r) - (i - (n - 1))
        out.append(i)
    return tuple(out)


class WindowPlanner:
    """Streams :class:`Window` s as frames become available, without knowing the clip length in
    advance. Call :meth:`ready` with the number of frames decoded so far and whether the input is
    exhausted; it returns the windows that can run now. :attr:`keep_from` is the first frame any
    future window may still need (older frames can be dropped)."""

    def __init__(self, window: int, stride: int) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        if not 1 <= stride <= window:
            raise ValueError("stride must be between 1 and the window length")
        if stride == 1 and window % 2 == 0:
            raise ValueError("a centred window (stride 1) needs an odd window length")
        self.window = window
        self.stride = stride
        self.next_output = 0  # first output frame not yet scheduled
        self.done = False

    @property
    def keep_from(self) -> int:
        return max(0, self.next_output - self.window)

    def ready(self, available: int, eof: bool) -> list[Window]:
        out: list[Window] = []
        while not self.done:
            win = self._next(available, eof)
            if win is None:
                break
            out.append(win)
        return out

    def _next(self, n: int, eof: bool) -> Window | None:
        t, s, first = self.window, self.stride, self.next_output
        if eof and first >= n:
            self.done = True
            return None
        if eof and (n < t or (n == t and s > 1)):  # a short clip: one call with every frame
            self.done = True
            self.next_output = n
            return Window(tuple(range(n)), tuple((i, i) for i in range(n)))
        if s == 1:
            # Until the end is known, only windows that the end rule cannot touch are taken.
            frames = reflection_circle(first, n if eof else 1 << 62, t)
            if not eof and (n < t or max(frames) >= n):
                return None
            self.next_output = first + 1
            return Window(frames, ((t // 2, first),))
        # stride > 1: window k starts at k*s and owns [k*s + off, (k+1)*s + off)
        off = (t - s) // 2
        k = self._window_index(first, off)
        start = k * s
        if not eof and start + t >= n:  # not yet known whether this is the last window
            return None
        last = eof and start + t >= n
        if last:
            start = max(0, n - t)
            own_end = n
        else:
            own_end = (k + 1) * s + off
        frames = tuple(range(start, start + t))
        self.next_output = own_end
        return Window(frames, tuple((i - start, i) for i in range(first, own_end)))

    def _window_index(self, first: int, off: int) -> int:
        return 0 if first == 0 else (first - off) // self.stride


def plan_windows(n: int, window: int, stride: int) -> list[Window]:
    """All windows for an ``n``-frame clip (the same ones :class:`WindowPlanner` streams)."""
    return WindowPlanner(window, stride).ready(n, eof=True)


# --- spatial tiles ----------------------------------------------------------------------------


MIN_TILE = 32  # LR pixels: below this, attention sees too little context and quality drops


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class TileGrid:
    """How one frame is cut: ``padded`` is the frame size after padding (LR pixels), ``tile`` the
    tile size, ``rows``/``cols`` the tile start offsets, ``overlap`` the nominal overlap."""

    height: int
    width: int
    padded: tuple[int, int]
    tile: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    overlap: int

    @property
    def origins(self) -> list[tuple[int, int]]:
        """Tile top-left corners, rows outer, columns inner."""
        return [(y, x) for y in self.rows for x in self.cols]


def _starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    if tile >= length:
        return (0,)
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return tuple(starts)


def _equal_tiles(length: int, tile: int, overlap: int, multiple: int) -> tuple[int, tuple[int, ...]]:
    """``(side, starts)``: as few tiles as ``tile`` needs along an axis of ``length``, made as
    small as covers it with at least ``overlap`` shared between neighbours (equal sides, a
    multiple of ``multiple``, at most ``tile``), spread evenly. Cutting 320 px into 128-px tiles
    with 16 px of overlap computes 3 x 120 px instead of 3 x 128, 180 px 2 x 104 instead of 2 x 128."""
    if tile >= length:
        return min(tile, round_up(length, multiple)), (0,)
    count = -(-(length - overlap) // (tile - overlap))
    side = round_up(-(-(length + (count - 1) * overlap) // count), multiple)
    side = min(tile, max(side, MIN_TILE))  # never cut below the context floor (unless asked)
    return side, tuple(i * (length - side) // (count - 1) for i in range(count))


def plan_tiles(height: int, width: int, *, tile: int, overlap: int, multiple: int = 1, fixed: bool = False) -> TileGrid:
    """Cut an ``height x width`` LR frame into tiles.

    ``tile == 0`` means one tile of the whole frame (rounded up to ``multiple``); ``fixed`` means
    the model takes exactly ``tile x tile`` (the official models), so smaller frames are padded
    up to it and the tiles step by ``tile - overlap`` (the official positions). Otherwise
    ``tile`` is the largest side: the frame is covered by equal tiles with the least overlap
    work (:func:`_equal_tiles`), and a frame smaller than a tile gets a tile just big enough,
    rounded up to ``multiple``.
    """
    if height < 1 or width < 1:
        raise ValueError("frame size must be positive")
    if tile < 0 or overlap < 0:
        raise ValueError("tile and overlap must be >= 0")
    if tile == 0:
        if fixed:
            raise ValueError("this model needs tiles; tile=0 (whole frame) is not possible")
        th, tw = round_up(height, multiple), round_up(width, multiple)
        return TileGrid(height, width, (th, tw), (th, tw), (0,), (0,), 0)
    if tile % multiple:
        raise ValueError(f"tile must be a multiple of {multiple}")
    if overlap >= tile:
        raise ValueError("overlap must be smaller than the tile")
    if fixed:
        padded = (max(height, tile), max(width, tile))
        return TileGrid(height, width, padded, (tile, tile), _starts(padded[0], tile, overlap),
                        _starts(padded[1], tile, overlap), overlap)
    (th, rows), (tw, cols) = (_equal_tiles(n, tile, overlap, multiple) for n in (height, width))
    return TileGrid(height, width, (max(height, th), max(width, tw)), (th, tw), rows, cols, overlap)


def smaller_tile(
    tile: int, height: int, width: int, *, multiple: int = 1, fixed: bool = False, minimum: int = 1
) -> int | None:
    """The next tile size to try after running out of memory at ``tile`` (0 = whole frame) on an
    ``height x width`` frame: about half the side, a multiple of ``multiple``, at least
    ``minimum`` (rounded up to ``multiple``); None when it cannot shrink (fixed-size models, or
    already at the smallest tile)."""
    if fixed:
        return None
    side = max(height, width) if tile == 0 else tile
    floor = max(round_up(minimum, multiple), multiple)
    smaller = max((side // 2) // multiple * multiple, floor)
    return smaller if 0 < smaller < side else None


def _axis_weights(starts: tuple[int, ...], tile: int, scale: int) -> list[np.ndarray]:
    """Per-tile 1-D weights (HR length ``tile*scale``) along one axis.

    Where a tile overlaps its neighbour by ``ov`` LR pixels, its weight is 0 over the outer
    quarter of the overlap, rises as a raised cosine over the middle half and is 1 beyond. Each
    pixel thus takes only the tile parts that are at least ``ov/4`` from a tile edge inside the
    frame. Frame borders get full weight.
    """
    hr = tile * scale
    pos = (np.arange(hr) + 0.5) / scale  # LR distance of each HR pixel centre from the tile start
    out = []
    for i, start in enumerate(starts):
        w = np.ones(hr)
        if i > 0:
            ov = starts[i - 1] + tile - start
            w *= _ramp(pos, ov)
        if i < len(starts) - 1:
            ov = start + tile - starts[i + 1]
            w *= _ramp(tile - pos, ov)
        out.append(w)
    return out


def _ramp(dist: np.ndarray, overlap: int) -> np.ndarray:
    if overlap <= 0:
        return np.ones_like(dist)
    lo, hi = overlap / 4, 3 * overlap / 4
    x = np.clip((dist - lo) / (hi - lo), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(math.pi * x)


def blend_weights(grid: TileGrid, scale: int) -> list[np.ndarray]:
    """Unnormalised HR weights ``[tile_h*scale, tile_w*scale]`` per tile, in ``grid.origins``
    order. Every HR pixel of the padded frame gets a positive total; dividing by that total
    (see :func:`normalised_weights`) makes the weights sum to one."""
    wy = _axis_weights(grid.rows, grid.tile[0], scale)
    wx = _axis_weights(grid.cols, grid.tile[1], scale)
    return [np.outer(a, b).astype(np.float32) for a in wy for b in wx]


def weight_total(grid: TileGrid, weights: list[np.ndarray], scale: int) -> np.ndarray:
    """Sum of all tiles' weights over the padded HR frame ``[H*scale, W*scale]``."""
    total = np.zeros((grid.padded[0] * scale, grid.padded[1] * scale), dtype=np.float64)
    th, tw = grid.tile[0] * scale, grid.tile[1] * scale
    for (y, x), w in zip(grid.origins, weights):
        total[y * scale : y * scale + th, x * scale : x * scale + tw] += w
    return total


def normalised_weights(grid: TileGrid, scale: int) -> list[np.ndarray]:
    """Blend weights divided by their per-pixel total: they sum to one at every HR pixel."""
    weights = blend_weights(grid, scale)
    total = weight_total(grid, weights, scale)
    th, tw = grid.tile[0] * scale, grid.tile[1] * scale
    return [
        (w / total[y * scale : y * scale + th, x * scale : x * scale + tw]).astype(np.float32)
        for (y, x), w in zip(grid.origins, weights)
    ]
