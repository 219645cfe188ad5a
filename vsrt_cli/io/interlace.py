"""Interlaced video: found by :func:`vsrt_cli.io.probe.field_order` (the codec's field order, or
the first frame's flag), and
deinterlaced before any conversion with FFmpeg's ``bwdif`` (through PyAV's filter graph), as
``ffmpeg -vf bwdif`` would: one frame per frame (``frame``, the default), or one per field
(``double``: twice the frame rate, timestamps in half the stream's time base). ``off`` treats
the fields as progressive frames (for a file wrongly flagged interlaced).

Upscaling the combed fields of an interlaced picture as one progressive frame would magnify
the combs; the decoded frames go through the filter on the decode thread instead.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Literal

import av
import av.filter

from vsrt_cli.errors import ConfigError
from vsrt_cli.io.probe import VideoInfo

Deinterlace = Literal["frame", "double", "off"]
MODES: tuple[str, ...] = ("frame", "double", "off")
FILTER = "bwdif"
def plan(info: VideoInfo, mode: str) -> tuple[VideoInfo, str | None]:
    """``info`` as the reader will hand its frames over with ``mode`` (``double``: twice the
    frames and rate, half the time base), and the one line that says what is done (None for a
    progressive input)."""
    if mode not in MODES:
        raise ConfigError(f"--deinterlace {mode}: use one of {', '.join(MODES)}")
    if info.interlaced is None:
        return info, None
    what = f"{info.path.name} is interlaced ({info.interlaced})"
    if mode == "off":
        return info, f"{what}; --deinterlace off: its fields are upscaled as progressive frames (combs and all)"
    if mode == "frame":
        return replace(info, deinterlace="frame"), (
            f"{what}: deinterlaced with {FILTER}, one frame per frame (--deinterlace double: one per field; off: none)")
    rate = info.rate * 2 if info.rate else None
    frames = info.frames * 2 if info.frames else None
    return replace(info, deinterlace="double", time_base=info.time_base / 2, rate=rate, frames=frames), (
        f"{what}: deinterlaced with {FILTER}, one frame per field ({float(rate or 0):g} frames/s)")


class Deinterlacer:
    """``push(frame)`` -> the deinterlaced frames ready so far; ``flush()`` -> the rest. One
    frame late (``bwdif`` reads the next frame). Frames flagged progressive pass unchanged."""

    def __init__(self, stream: av.VideoStream, *, double: bool) -> None:
        self.stream = stream
        self.double = double
        self.graph: av.filter.Graph | None = None
        tb = stream.time_base or Fraction(1, 90000)
        self.time_base = tb / 2 if double else tb  # of the frames handed over

    def _build(self, frame: av.VideoFrame) -> av.filter.Graph:
        graph = av.filter.Graph()
        tb = self.stream.time_base or Fraction(1, 90000)
        source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name, time_base=tb)
        mode = "send_field" if self.double else "send_frame"
        deint = graph.add(FILTER, f"mode={mode}:parity=auto:deint=all")
        sink = graph.add("buffersink")
        source.link_to(deint)
        deint.link_to(sink)
        graph.configure()
        return graph

    def push(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        if frame is None:
            if self.graph is None:
                return []
            self.graph.push(None)
        else:
            if self.graph is None:
                self.graph = self._build(frame)
            self.graph.push(frame)
        out = []
        while True:
            try:
                done = self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return out
            if done.pts is not None and done.time_base and done.time_base != self.time_base:
                done.pts = round(done.pts * done.time_base / self.time_base)  # bwdif counts in half ticks
            done.time_base = self.time_base
            out.append(done)

    def flush(self) -> list[av.VideoFrame]:
        return self.push(None)
