"""Decode frames on a background thread into a bounded queue.

Memory stays flat whatever the clip length: at most ``buffer`` decoded frames wait in the queue.
Frames come out as RGB arrays in display orientation, with their source timestamps.
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
from vsrt_cli.io.probe import RANGE_FULL, VideoInfo, colour_matrix, open_input


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``image`` is ``[H, W, 3]`` RGB, uint8 (8-bit sources) or uint16."""

    index: int
    pts: int | None
    time_base: Fraction
    image: np.ndarray

    @property
    def time(self) -> float | None:
        return None if self.pts is None else float(self.pts * self.time_base)


def to_rgb(frame: av.VideoFrame, bit_depth: int, rotation: int) -> np.ndarray:
    """An RGB array of ``frame`` with the right YUV matrix and range, rotated for display."""
    full = frame.color_range == RANGE_FULL or frame.format.name.startswith("yuvj")
    image = frame.to_ndarray(
        format="rgb48le" if bit_depth > 8 else "rgb24",
        src_colorspace=colour_matrix(frame.colorspace, frame.height),
        src_color_range="JPEG" if full else "MPEG",
        dst_color_range="JPEG",
    )
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image


_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class VideoReader:
    """``with VideoReader(info) as frames: for frame in frames: ...``"""

    def __init__(self, info: VideoInfo, *, buffer: int = 8, threads: int = 0) -> None:
        self.info = info
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, buffer))
        self._stop = threading.Event()
        self._threads = threads
        self._thread: threading.Thread | None = None
        self._container: av.container.InputContainer | None = None

    def __enter__(self) -> VideoReader:
        self._container = open_input(self.info.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = self._threads
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
        index = 0
        last_time: float | None = None
        try:
            assert self._container is not None
            for packet in self._container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    where = f"after {last_time:.3f} s" if last_time is not None else "at the start"
                    raise DecodeError(
                        f"{self.info.path}: decoding failed at frame {index} ({where}): {exc}; "
                        "the file is truncated or corrupt"
                    ) from exc
                for frame in frames:
                    image = to_rgb(frame, self.info.bit_depth, self.info.rotation)
                    item = Frame(index, frame.pts, frame.time_base or stream.time_base, image)
                    last_time = item.time
                    if not self._put(item):
                        return
                    index += 1
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
