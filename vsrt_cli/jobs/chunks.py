"""Pure planning of chunks: one long clip cut by frame index into pieces that can be upscaled
apart (on several workers, or resumed one by one) and stitched into the output an unchunked run
would write. Plain integers; no torch, no I/O.

A chunk owns the output frames ``[start, end)``. It runs exactly the model calls
(:class:`~vsrt_cli.engine.schedule.Window`) of the whole clip's plan that produce any of its frames,
with the same frames in each call and the true global indices, so the clip ends still reflect
and the last window still moves back as in an unchunked run; a call that straddles a boundary
is computed by both neighbours and each keeps its own frames. The frames those calls read,
``[decode_from, decode_to)``, are the chunk's context: ``window // 2`` either side for the
centred schedule (stride 1), up to a window at the clip's end for strided ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from vsrt_cli.engine.schedule import Window, plan_windows


@dataclass(frozen=True)
class Chunk:
    """Chunk ``number`` (0-based) of ``count``: output frames ``[start, end)``, decoded frames
    ``[decode_from, decode_to)``, and the whole clip's windows that produce its frames."""

    number: int
    count: int
    start: int
    end: int
    decode_from: int
    decode_to: int
    windows: tuple[Window, ...]

    @property
    def frames(self) -> int:
        return self.end - self.start

    def owns(self, index: int) -> bool:
        return self.start <= index < self.end


def split(n: int, chunks: int) -> list[tuple[int, int]]:
    """``[start, end)`` of ``min(chunks, n)`` near-equal runs covering ``range(n)`` (the first
    ones one frame longer where it does not divide)."""
    if n < 1:
        raise ValueError("a clip has at least one frame")
    if chunks < 1:
        raise ValueError("at least one chunk")
    count = min(chunks, n)
    size, extra = divmod(n, count)
    bounds, start = [], 0
    for k in range(count):
        end = start + size + (k < extra)
        bounds.append((start, end))
        start = end
    return bounds


def chunks_for_seconds(n: int, rate: float, seconds: float) -> int:
    """How many chunks cut an ``n``-frame clip at ``rate`` fps into pieces of about
    ``seconds`` (at least one)."""
    if seconds <= 0 or rate <= 0:
        raise ValueError("seconds and rate must be positive")
    return max(1, math.ceil(n / (rate * seconds)))


def plan_chunks(n: int, chunks: int, window: int, stride: int, first: int = 0) -> list[Chunk]:
    """Cut an ``n``-frame clip into at most ``chunks`` chunks for the ``window``/``stride``
    schedule (see the module docstring). ``first``: the clip is frames ``[first, first + n)`` of
    the source (a span); every index of the plan is the source's, and the windows reflect at
    the span's ends as an unchunked run of the span does."""
    windows = [_shifted(win, first) for win in plan_windows(n, window, stride)]
    plan = []
    bounds = [(start + first, end + first) for start, end in split(n, chunks)]
    w = 0  # first window that may still produce frames of the next chunk
    for number, (start, end) in enumerate(bounds):
        while max(index for _, index in windows[w].outputs) < start:
            w += 1
        mine = []
        for win in windows[w:]:
            outputs = [index for _, index in win.outputs]
            if min(outputs) >= end:
                break
            mine.append(win)
        lo = min(min(win.frames) for win in mine)
        hi = max(max(win.frames) for win in mine) + 1
        plan.append(Chunk(number, len(bounds), start, end, lo, hi, tuple(mine)))
    return plan


def _shifted(win: Window, first: int) -> Window:
    if not first:
        return win
    return replace(win, frames=tuple(i + first for i in win.frames),
                   outputs=tuple((pos, index + first) for pos, index in win.outputs))
