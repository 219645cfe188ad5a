"""A span of a clip: ``--start T`` with ``--duration D`` or ``--end T`` (``upscale``, ``batch``) and
``--start``/``--seconds`` (``preview``), parsed by one rule; the frames it shows and the audio and
subtitle packets that start inside it, moved so the span begins at 0.

Times are seconds (``12.5``) or ``[HH:]MM:SS[.mmm]`` (``1:02:03.250``). A frame belongs to the
span when its timestamp lies in ``[start, end)``; the video is sought to the keyframe before
``start`` (:class:`~vsrt_cli.io.reader.VideoReader`'s ``seek``) and the frames before it are
decoded only to be dropped. Copied packets are kept when they *start* in ``[start, end)``: the
copied audio begins and ends within one packet of the span (packets are never cut).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING

from vsrt_cli.errors import ConfigError

if TYPE_CHECKING:
    import av

    from vsrt_cli.io.reader import Frame

_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)")
EPSILON = 1e-6  # seconds: a frame stamped a rounding error before the start belongs to the span


def parse_time(text: str | float | int, option: str = "--start") -> float:
    """``"12.5"``, ``12.5``, ``"02:03.5"`` or ``"1:02:03.250"`` -> seconds (not negative)."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        spec = text.strip()
        clock = _CLOCK.fullmatch(spec)
        try:
            if clock is not None:
                hours, minutes, secs = clock.groups()
                if int(minutes) > 59 and hours is not None or float(secs) >= 60:
                    raise ValueError(spec)
                seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
            else:
                seconds = float(spec)
        except ValueError:
            raise ConfigError(f"{option} {text}: give seconds (12.5) or HH:MM:SS.mmm (00:01:02.500)") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{option} {text}: must be a time of 0 or more")
    return seconds


@dataclass(frozen=True)
class Span:
    """Seconds ``[start, end)`` of the source's own timeline, counted from its first frame;
    ``end`` None: to the end of the clip."""

    start: float = 0.0
    end: float | None = None

    @classmethod
    def parse(cls, start: str | float | None = None, duration: str | float | None = None,
              end: str | float | None = None) -> Span | None:
        """The span the options describe (None when none is given: the whole clip)."""
        if duration is not None and end is not None:
            raise ConfigError("give --duration or --end, not both")
        if start is None and duration is None and end is None:
            return None
        first = parse_time(start, "--start") if start is not None else 0.0
        if duration is not None:
            length = parse_time(duration, "--duration")
            if length <= 0:
                raise ConfigError(f"--duration {duration}: must be positive")
            return cls(first, first + length)
        if end is not None:
            last = parse_time(end, "--end")
            if last <= first:
                raise ConfigError(f"--end {end}: must be after --start ({first:g} s)")
            return cls(first, last)
        return cls(first, None)

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def holds(self, time: float) -> bool:
        return time >= self.start - EPSILON and (self.end is None or time < self.end - EPSILON)

    def frames(self, rate: Fraction | None, total: int | None) -> int | None:
        """About how many frames the span shows (for progress), None when unknown."""
        if rate is None or not rate:
            return None
        whole = None if total is None else total - math.ceil(self.start * rate - EPSILON)
        part = None if self.end is None else math.ceil((self.end - self.start) * rate - EPSILON)
        known = [n for n in (whole, part) if n is not None]
        return max(0, min(known)) if known else None

    def describe(self) -> str:
        end = "the end" if self.end is None else f"{self.end:g} s"
        return f"{self.start:g} s to {end}"


def shown_range(span: Span | None, times: Iterable[int], time_base: Fraction, origin: float = 0.0) -> range:
    """The indices of the frames ``span`` shows, out of frames at timestamps ``times`` (display
    order, in ``time_base``), counting from ``origin`` seconds as :func:`clip_frames` does (the
    rule a chunked run plans by: the same frames as an unchunked run of the span). None: all."""
    stamps = list(times)
    if span is None:
        return range(len(stamps))
    inside = [i for i, pts in enumerate(stamps) if span.holds(float(pts * time_base) - origin)]
    return range(inside[0], inside[-1] + 1) if inside else range(0)


def clip_frames(frames: Iterable[Frame], span: Span, origin: float = 0.0) -> Iterator[Frame]:
    """The frames of ``frames`` (display order) that ``span`` shows, numbered from 0 (their
    timestamps kept: the writer's :class:`Cut` moves them). ``origin``: the time of the stream's
    first frame, where spans count from. Stops at the first frame past the end."""
    index = 0
    for frame in frames:
        time = (frame.time if frame.time is not None else frame.index / 25.0) - origin
        if span.end is not None and time >= span.end - EPSILON:
            return
        if time < span.start - EPSILON:
            continue
        yield replace(frame, index=index)
        index += 1


class Cut:
    """How a writer moves a span to 0: the first video frame written sets the shift (its own
    timestamp); copied packets are kept when they start between that frame's time and ``end``
    (seconds of the source's timeline, None: to the end) and moved back by as much."""

    SLACK = 10.0  # seconds past the end after which no stream's packet can still be in the span

    def __init__(self, end: float | None) -> None:
        self.end = end
        self.start: float | None = None  # seconds: the first video frame's time
        self.shift: int | None = None  # in the video's time base

    def video(self, pts: int | None, time_base: Fraction) -> int | None:
        """A video frame's timestamp, moved (the first one sets the shift)."""
        if pts is None:
            return None
        if self.shift is None:
            self.shift, self.start = pts, float(pts * time_base)
        return pts - self.shift

    def packets(self, container: av.container.InputContainer, streams: list) -> Iterator[av.Packet]:
        """``streams``' packets from ``container`` that start in the span, moved; sought to
        the span first (read lazily: by then the first video frame has set the start)."""
        start = self.start or 0.0
        if start > 0:
            container.seek(int(start * 1_000_000), backward=True, any_frame=False)
        for packet in container.demux(*streams):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None or packet.time_base is None:
                continue
            time = float(stamp * packet.time_base)
            if time < start - EPSILON:
                continue
            if self.end is not None and time >= self.end - EPSILON:
                if time >= self.end + self.SLACK:
                    return
                continue  # another stream's packets may still be in the span
            shift = round(start / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts = max(packet.dts - shift, 0) if packet.pts is None else min(packet.dts - shift, packet.pts)
            yield packet
