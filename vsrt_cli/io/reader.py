"""Decode frames on a background thread into a bounded queue.

Memory stays flat whatever the clip length: at most ``buffer`` decoded frames wait in the queue.
Frames come out as RGB arrays in display orientation, with their source timestamps; or, when
asked, 8-bit 4:2:0 frames as their YUV planes, for the model's device to convert
(:mod:`vsrt_cli.engine.yuv`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from vsrt_cli.errors import DecodeError
from vsrt_cli.io.carry import main_video
from vsrt_cli.io.convert import FrameConverter, to_rgb
from vsrt_cli.io.interlace import Deinterlacer
from vsrt_cli.io.probe import VideoInfo, open_input, shown_frames
from vsrt_cli.io.quant import quant_reader
from vsrt_cli.io.planes import Planes

__all__ = ["Frame", "VideoReader", "to_rgb"]


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``image`` is ``[H, W, 3]`` RGB, uint8 (8-bit sources) or uint16, or
    the frame's :class:`~vsrt_cli.io.planes.Planes` from a reader asked for them. ``quant``: how hard
    it was compressed, as the decoder reports it (:func:`vsrt_cli.io.quant.frame_qp`; 0 for a
    lossless codec or a PNG, None unknown)."""

    index: int
    pts: int | None
    time_base: Fraction
    image: np.ndarray | Planes
    quant: float | None = None

    @property
    def time(self) -> float | None:
        return None if self.pts is None else float(self.pts * self.time_base)


_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class VideoReader:
    """``with VideoReader(info) as frames: for frame in frames: ...``

    Every frame the container announces must come out: a packet that fails to decode, a frame
    the decoder silently drops (found by packet timestamps that never come out) or a file that
    ends before the frame count in its index is a :class:`DecodeError` naming the frame and
    time. With ``skip_bad_frames`` such frames are replaced by the last good one instead, at
    their own timestamps, so timing stays intact; :attr:`repaired` counts them.

    With ``yuv`` 8-bit 4:2:0 frames come out as planes (see
    :class:`~vsrt_cli.io.convert.FrameConverter`), the rest as RGB. With ``seek`` (seconds of
    the source's timeline) decoding starts at the keyframe before it (:mod:`vsrt_cli.io.span`
    drops the frames before the span); the end-of-clip count checks are then off.
    """

    def __init__(self, info: VideoInfo, *, buffer: int = 8, threads: int = 0, skip_bad_frames: bool = False,
                 yuv: bool = False, seek: float | None = None) -> None:
        self.info = info
        self.seek = seek
        self.skip_bad_frames = skip_bad_frames
        self.yuv = yuv
        self.repaired = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, buffer))
        self._stop = threading.Event()
        self._threads = threads
        self._thread: threading.Thread | None = None
        self._container: av.container.InputContainer | None = None

    def __enter__(self) -> VideoReader:
        self._container = open_input(self.info.path)
        stream = main_video(self._container)
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = self._threads
        if self.seek:
            self._container.seek(int(self.seek / stream.time_base), stream=stream, backward=True, any_frame=False)
        self._thread = threading.Thread(target=self._run, args=(stream,), name="vsrt-decode", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        while self._thread is not None and self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        if self._container is not None:
            self._container.close()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, stream: av.VideoStream) -> None:
        try:
            _Decode(self, stream).run()
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failure(exc))
        finally:
            self._put(_END)

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]


def _reason(exc: Exception) -> str:
    """FFmpeg's words for an error, without the errno number."""
    return str(getattr(exc, "strerror", None) or exc)


class _Decode:
    """The decode loop of one :class:`VideoReader` (runs on its thread)."""

    def __init__(self, reader: VideoReader, stream: av.VideoStream) -> None:
        self.reader = reader
        self.stream = stream
        info = reader.info
        # Deinterlacing one frame per field: frames in half the stream's time base, and every
        # timestamp here (packets' included) counted in it
        self.deint = None if info.deinterlace == "off" else Deinterlacer(stream, double=info.deinterlace == "double")
        self.scale = 2 if info.deinterlace == "double" else 1
        self.time_base = stream.time_base / self.scale if stream.time_base else stream.time_base
        self.index = 0
        self.last: Frame | None = None
        self.pending: list[int] = []  # pts of demuxed packets whose frame has not come out yet
        self.step: int | None = None  # the last gap between frame timestamps
        self.failure: Exception | None = None  # a decoder error not yet tied to its frame
        self.first_pts: int | None = None
        self.keyed = False  # a keyframe was demuxed: what comes before it is not a loss
        rotated = info.rotation in (90, 270)
        self.size = (info.height, info.width) if rotated else (info.width, info.height)  # coded
        self.convert = FrameConverter(info, self.size, reader.yuv)
        self.quant = quant_reader(stream)
        # Ticks of the time base per frame, for frames the container gives no timestamp.
        rate = info.rate or Fraction(25)
        self.tick = 1 / (rate * self.time_base) if self.time_base else None

    def where(self, pts: int | None) -> str:
        """``frame N (at T s)`` of the frame with timestamp ``pts`` (in display order)."""
        if pts is None or self.time_base is None:
            return f"frame {self.index}"
        number = self.index + sum(1 for p in self.pending if p < pts)
        return f"frame {number} (at {float(pts * self.time_base):.3f} s)"

    def bad(self, pts: int | None, why: str | None = None) -> bool:
        """One frame that cannot be decoded: an error, or (skipping) the last good frame again."""
        info = self.reader.info
        if not self.reader.skip_bad_frames:
            cause = f" ({_reason(self.failure)})" if self.failure is not None and why is None else ""
            raise DecodeError(
                f"{info.path}: {why or self.where(pts) + ' could not be decoded'}{cause}; the file is "
                "truncated or corrupt (--skip-bad-frames repeats the last good frame instead)"
            )
        if self.last is None:
            return True  # nothing to repeat yet: the first good frame fills in (see emit)
        self.reader.repaired += 1
        return self.put(Frame(self.index, pts, self.last.time_base, self.last.image))

    def put(self, frame: Frame) -> bool:
        if self.first_pts is None:
            self.first_pts = frame.pts
        if self.last is not None and frame.pts is not None and self.last.pts is not None and frame.pts > self.last.pts:
            self.step = frame.pts - self.last.pts
        self.last = frame
        self.index += 1
        return self.reader._put(frame)

    def stamp(self, frame: av.VideoFrame) -> int | None:
        """The frame's timestamp; for frames without one (raw elementary streams, some AVI and
        MPEG-PS), the previous one plus a frame at the stream's rate, or ``index / rate``."""
        if frame.pts is not None or self.tick is None:
            return frame.pts
        if self.last is not None and self.last.pts is not None:
            return self.last.pts + max(1, round(self.tick))
        return round(self.index * self.tick)

    def emit(self, frame: av.VideoFrame) -> bool:
        image = self.convert(frame)
        quant = self.quant(frame)
        pts = self.stamp(frame)
        if frame.pts is not None:  # timestamps demuxed before this one never came out: lost frames
            lost = sorted(p for p in self.pending if p < pts)
            self.pending = [p for p in self.pending if p > pts]
            if self.last is None and self.failure is None:
                # A stream cut mid-GOP (TS captures, HLS segments): frames before the first
                # decodable one (leading frames of an open GOP) are not losses, as in ffmpeg.
                lost = []
            for p in lost:
                if self.last is None and self.reader.skip_bad_frames:  # broken start: repeat forwards
                    self.reader.repaired += 1
                    if not self.put(Frame(self.index, p, frame.time_base or self.time_base, image, quant)):
                        return False
                elif not self.bad(p):
                    return False
        return self.put(Frame(self.index, pts, frame.time_base or self.time_base, image, quant))

    def deinterlaced(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        if self.deint is None:
            return frames
        return [done for frame in frames for done in self.deint.push(frame)]

    def run(self) -> None:
        container = self.reader._container
        assert container is not None
        for packet in container.demux(self.stream):
            if self.reader._stop.is_set():
                return
            self.keyed = self.keyed or packet.is_keyframe
            if self.keyed and packet.size and packet.pts is not None and not packet.is_discard:
                self.pending.append(packet.pts * self.scale)
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                # With frame threads the error surfaces packets after the broken one: the lost
                # timestamp, found when a later frame comes out, names the frame (see emit).
                self.failure = exc
                continue
            for frame in self.deinterlaced(frames):
                if not self.emit(frame):
                    return
        for frame in self.deint.flush() if self.deint is not None else ():
            if not self.emit(frame):
                return
        if self.failure is not None and not self.pending and not self.reader.skip_bad_frames:
            raise DecodeError(
                f"{self.reader.info.path}: decoding failed near {self.where(self.last.pts if self.last else None)} "
                f"({_reason(self.failure)}); the file is corrupt (--skip-bad-frames keeps going)"
            )
        for p in sorted(self.pending):  # demuxed, never decoded: at the very end
            if not self.bad(p):
                return
        self.pending = []
        if self.reader.seek:  # a span: the counts and durations are the whole clip's
            return
        # what the edit list shows, as FFmpeg decodes it (twice that, one frame per field)
        expected = (shown_frames(self.stream) or 0) * self.scale
        if self.index and self.index < expected:  # the index promised more: a truncated file
            if not self.reader.skip_bad_frames:
                assert self.last is not None
                nxt = None if self.last.pts is None or self.step is None else self.last.pts + self.step
                at = "" if nxt is None else f" (at {float(nxt * self.time_base):.3f} s)"
                self.bad(nxt, f"the video stops after {self.index} of {expected} frames{at}")
            while self.index < expected and self.last is not None:
                pts = None if self.last.pts is None or self.step is None else self.last.pts + self.step
                self.reader.repaired += 1
                if not self.put(Frame(self.index, pts, self.last.time_base, self.last.image)):
                    return
        elif self.index and not expected:
            self.check_duration()

    def check_duration(self) -> None:
        """No frame count (Matroska, MPEG-TS): a video more than a second shorter than the
        length the container announces was cut off (a truncated download or capture). With
        ``skip_bad_frames`` the last frame is repeated up to that length."""
        info, last = self.reader.info, self.last
        if info.duration is None or last is None or last.pts is None or self.first_pts is None or not self.time_base:
            return
        step = self.step or max(1, round(self.tick or 1))
        # From the stream's start, not the first frame: a capture cut mid-GOP starts later
        origin = self.stream.start_time * self.scale if self.stream.start_time is not None else self.first_pts
        end = (last.pts + step - origin) * self.time_base  # seconds of video decoded
        if info.duration - end <= 1:
            return
        if not self.reader.skip_bad_frames:
            self.bad(last.pts + step, f"the video stops at {float(end):.3f} s of the {float(info.duration):.3f} s "
                     f"its container announces (after {self.index} frames)")
        first, tick = self.first_pts, self.tick or step
        while True:  # at the stream's rate from where the video stops
            pts = max(last.pts + 1, first + round(self.index * tick))
            if (pts - origin) * self.time_base > info.duration - tick * self.time_base / 2:
                return
            self.reader.repaired += 1
            if not self.put(Frame(self.index, pts, last.time_base, last.image)):
                return
            last = self.last
            assert last is not None and last.pts is not None
