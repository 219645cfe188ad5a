"""Encode frames into a container next to the output, copy audio and subtitles packet for
packet, and rename into place only when everything succeeded."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsrt_cli.errors import OutputError
from vsrt_cli.io.carry import Carry, main_video
from vsrt_cli.io.colour import RANGE_FULL, RANGE_LIMITED, SDR_BT709, Colour
from vsrt_cli.io.encoders import (
    CODEC_ALIASES,
    X265_UNSET_DTS_FRAMES,
    check_keeps,
    choose_pix_fmt,
    encoder_choices,
    encoder_options,
    open_failure,
    resolve_codec,
)
from vsrt_cli.io.outputs import partial_path, refuse_replace
from vsrt_cli.io.probe import probe
from vsrt_cli.io.planes import Planes, converts
from vsrt_cli.io.span import Cut

__all__ = ["CODEC_ALIASES", "EncodeSettings", "VideoWriter", "default_pix_fmt", "write_failure"]


@dataclass(frozen=True)
class EncodeSettings:
    """How the output video is encoded. ``pix_fmt`` None means 8-bit 4:2:0 for 8-bit sources
    and 10-bit 4:2:0 for deeper ones and for HDR (where the encoder can; see encoders.py)."""

    codec: str | None = None  # None: libvpx-vp9 for .webm, libx264 otherwise; HDR: libsvtav1 / libx265
    crf: int = 16
    preset: str = "medium"
    pix_fmt: str | None = None
    copy_streams: bool = True
    threads: int = 0


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def write_failure(path: Path, exc: BaseException) -> OutputError:
    """The one-line error for a failed write of ``path``: disk full and permissions by name."""
    code = getattr(exc, "errno", None)
    if code in _FULL:
        return OutputError(
            f"writing {path} failed: the disk is full (or a file-size limit was hit: {exc}); "
            "the partial output was removed; free some space or write to another folder"
        )
    if code in _DENIED:
        return OutputError(
            f"cannot write {path}: {exc}; the folder is read-only or not yours; choose a writable output folder"
        )
    return OutputError(f"writing {path} failed: {exc}")


def default_pix_fmt(codec: str, bit_depth: int) -> str:
    """The input's bit depth, 4:2:0 for delivery codecs, 4:4:4 or RGB for lossless ones."""
    deep = bit_depth > 8
    if codec == "png":
        return "rgb48be" if deep else "rgb24"
    if codec == "ffv1":
        return "yuv444p10le" if deep else "yuv444p"
    if codec.startswith("prores"):
        return "yuv422p10le"
    return "yuv420p10le" if deep else "yuv420p"


class VideoWriter:
    """``with VideoWriter(path, ...) as w: w.write(image, pts)``; renamed into place on success.

    ``source`` is the input whose other streams, attachments, chapters and tags are carried
    (:class:`~vsrt_cli.io.carry.Carry`). What the output container cannot hold is left out and
    listed in :attr:`dropped`, for the caller to say. An existing file is
    replaced only with ``overwrite`` (:func:`~vsrt_cli.io.outputs.refuse_replace`).

    ``colour`` (primaries, transfer, matrix, range, HDR10 metadata) and ``sample_aspect`` are
    the input's, carried to the output; when not given they are read from ``source`` (BT.709,
    square pixels without one). ``metadata`` goes into the container's header (e.g. the
    ``comment`` tag of :mod:`vsrt_cli.io.sidecar`), beside the input's own tags, never over them. HDR comes out as HDR at 10 bits, or is refused before any work
    (:func:`~vsrt_cli.io.encoders.check_keeps`), as is a pixel shape the output cannot record.
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        time_base: Fraction,
        rate: Fraction | None,
        bit_depth: int,
        settings: EncodeSettings,
        source: Path | None = None,
        overwrite: bool = False,
        colour: Colour | None = None,
        sample_aspect: Fraction | None = None,
        metadata: dict[str, str] | None = None,
        cut: Cut | None = None,
    ) -> None:
        self.path = path
        self.cut = cut  # a span of the source: timestamps moved to 0, copies cut alike
        self.metadata = dict(metadata or {})
        self.tmp = partial_path(path)
        self.overwrite = overwrite
        self.width, self.height = width, height
        self.time_base = time_base
        self.rate = rate
        self.settings = settings
        if source is not None and (colour is None or sample_aspect is None):
            info = probe(source)
            colour = info.colour if colour is None else colour
            sample_aspect = info.sample_aspect if sample_aspect is None else sample_aspect
        self.colour = colour or SDR_BT709
        self.sample_aspect = Fraction(sample_aspect or 1)
        self.codec = resolve_codec(settings.codec, path.suffix, self.colour)
        if self.codec not in av.codecs_available:
            raise OutputError(f"no encoder {self.codec!r} here; try --codec {', '.join(encoder_choices())}")
        depth = max(bit_depth, 10) if self.colour.hdr else bit_depth
        wanted = settings.pix_fmt or default_pix_fmt(self.codec, depth)
        try:
            self.pix_fmt = choose_pix_fmt(self.codec, wanted, explicit=settings.pix_fmt is not None)
        except ValueError as exc:
            raise OutputError(f"pixel format {wanted!r} is unknown; try --pix-fmt yuv420p") from exc
        self.rgb_out = self.pix_fmt.startswith(("rgb", "bgr", "gbr"))
        name = source.name if source is not None else path.name
        check_keeps(self.codec, self.pix_fmt, self.colour, self.sample_aspect, path.suffix, name)
        self.source = source
        self.dropped: list[str] = []
        self.frames_written = 0
        self._out: av.container.OutputContainer | None = None
        self._src: av.container.InputContainer | None = None
        self._carry: Carry | None = None
        self._copy: Iterator[av.Packet] | None = None
        self._pending: av.Packet | None = None
        self._held: list[av.Packet] = []  # libx265's first packets (see _mux_video)

    # -- opening --------------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        try:
            self._out = av.open(str(self.tmp), "w")
        except OSError as exc:
            if exc.errno in _FULL | _DENIED:
                raise write_failure(self.path, exc) from exc
            raise OutputError(f"cannot create {self.path}: {exc}; check the folder exists, is writable, and the extension is a video container (.mp4, .mkv, .mov, .webm)") from exc
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot create {self.path}: {exc}; check the folder exists, is writable, and the extension is a video container (.mp4, .mkv, .mov, .webm)") from exc
        try:
            self._add_video()
            if self.source is not None:
                self._add_copies()
            self._start()
        except BaseException:
            self._abort()
            raise
        return self

    def _add_video(self) -> None:
        assert self._out is not None
        try:
            stream = self._out.add_stream(self.codec, rate=self.rate or Fraction(25))
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(
                f"cannot write {self.codec} video into {self.path.name} ({exc}); try another --codec "
                "(libx264 for .mp4/.mkv/.mov, libvpx-vp9 for .webm) or another extension"
            ) from exc
        stream.width, stream.height = self.width, self.height
        try:
            stream.pix_fmt = self.pix_fmt
        except (ValueError, av.FFmpegError) as exc:
            raise OutputError(f"pixel format {self.pix_fmt!r} is unknown; try --pix-fmt yuv420p") from exc
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        cc = stream.codec_context
        colour = self.colour
        if not self.rgb_out:  # the encoders write these into the VUI, the muxers into colour boxes
            cc.colorspace = colour.matrix
            cc.color_range = RANGE_FULL if colour.full_range else RANGE_LIMITED
        cc.color_primaries = colour.primaries
        cc.color_trc = colour.transfer
        if self.sample_aspect != 1:
            cc.sample_aspect_ratio = self.sample_aspect
        cc.thread_count = self.settings.threads
        cc.options = encoder_options(self.codec, crf=self.settings.crf, preset=str(self.settings.preset), colour=colour)
        self._video = stream

    def _start(self) -> None:
        """Open the encoder and write the header now, so a codec the container cannot hold fails
        before any frame is computed."""
        assert self._out is not None
        try:
            level = av.logging.get_level()
            av.logging.set_level(av.logging.ERROR)  # the encoder's own words for a refusal
            try:
                with av.logging.Capture(local=True) as logs:
                    self._video.codec_context.open()
            except (av.FFmpegError, ValueError) as exc:
                raise open_failure(self.codec, self.path.name, exc, list(logs)) from exc
            finally:
                av.logging.set_level(level)
            if self._carry is not None:
                self._carry.finish_header(self.metadata)
                self.dropped += self._carry.dropped
            else:
                self._out.metadata.update(self.metadata)
            self._out.start_encoding()  # opens the file itself
        except OSError as exc:
            if exc.errno in _FULL | _DENIED:
                raise write_failure(self.path, exc) from exc
            raise OutputError(
                f"cannot write {self.codec} video into {self.path.name} ({exc}); "
                "try another --codec (libx264 for .mp4/.mkv/.mov, libvpx-vp9 for .webm) or another extension"
            ) from exc
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(
                f"cannot write {self.codec} video into {self.path.name} ({exc}); "
                "try another --codec (libx264 for .mp4/.mkv/.mov, libvpx-vp9 for .webm) or another extension"
            ) from exc

    def _add_copies(self) -> None:
        assert self._out is not None and self.source is not None
        self._src = av.open(str(self.source), metadata_errors="ignore")
        self._carry = Carry(self._src, self._out, main_video(self._src), self._video,
                            copy_streams=self.settings.copy_streams)
        self._copy = self._carry.packets(self.cut.packets if self.cut else None)  # a span: cut to it

    # -- writing --------------------------------------------------------------------------
    @property
    def takes_planes(self) -> bool:
        """Whether :meth:`write` takes :class:`~vsrt_cli.io.planes.Planes` in this video's matrix and
        range as they are (8-bit 4:2:0 output, no conversion left to do here)."""
        return self.pix_fmt == "yuv420p" and converts(self.colour.matrix)

    def write(self, image: np.ndarray | Planes, pts: int | None) -> None:
        """Encode one ``[H, W, 3]`` RGB uint8/uint16 frame, or its 4:2:0 planes (see
        :attr:`takes_planes`), with its source timestamp."""
        assert self._out is not None
        if isinstance(image, Planes):
            frame = self._planes_frame(image)
        else:
            frame = self._rgb_frame(image)
        if self.cut is not None:
            pts = self.cut.video(pts, self.time_base)
        if pts is None:  # no timestamp: the next frame at the stream's rate
            pts = round(self.frames_written / ((self.rate or Fraction(25)) * self.time_base))
        frame.pts = pts
        frame.time_base = self.time_base
        time = float(frame.pts * self.time_base)
        self._mux_copies(until=time)
        packets = self._video.encode(frame)
        self.frames_written += 1
        self._mux_video(packets)

    def _planes_frame(self, planes: Planes) -> av.VideoFrame:
        if not self.takes_planes or (planes.matrix, planes.full_range) != (self.colour.matrix, self.colour.full_range) or planes.rotation:
            raise ValueError(f"planes in matrix {planes.matrix} (rotation {planes.rotation}) for a {self.pix_fmt} "
                             f"output in matrix {self.colour.matrix}")
        height, width = planes.y.shape
        frame = av.VideoFrame(width, height, "yuv420p")
        for index, array in enumerate((planes.y, planes.u, planes.v)):
            plane = frame.planes[index]
            rows = np.frombuffer(plane, np.uint8).reshape(array.shape[0], plane.line_size)
            rows[:, :array.shape[1]] = array
        return frame

    def _rgb_frame(self, image: np.ndarray) -> av.VideoFrame:
        fmt = "rgb48le" if image.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(image, format=fmt)
        if self.rgb_out:
            frame = frame.reformat(format=self.pix_fmt)
        else:
            frame = frame.reformat(format=self.pix_fmt, src_colorspace=self.colour.matrix, dst_colorspace=self.colour.matrix,
                                   dst_color_range="JPEG" if self.colour.full_range else "MPEG")
        return frame

    def _mux_video(self, packets: list[av.Packet], *, final: bool = False) -> None:
        """Mux the encoder's packets. libx265's wait until it has taken a third frame: for a
        clip of two frames or fewer it leaves their DTS unset (X265_UNSET_DTS_FRAMES), and they
        get DTS = PTS, right there since two frames hold no B-frame (it needs a later reference)."""
        if self.codec == "libx265" and self.frames_written <= X265_UNSET_DTS_FRAMES:
            self._held += packets
            if not final:
                return
            packets, self._held = self._held, []
            for packet in packets:
                packet.dts = packet.pts
        elif self._held:
            packets, self._held = self._held + packets, []
        self._mux(packets)

    def _mux(self, packets: list[av.Packet]) -> None:
        assert self._out is not None
        try:
            self._out.mux(packets)
        except (OSError, av.FFmpegError) as exc:
            raise write_failure(self.path, exc) from exc

    def _mux_copies(self, until: float | None) -> None:
        """Copy the other streams' packets up to ``until`` seconds (all of them if None)."""
        if self._copy is None:
            return
        while True:
            packet = self._pending
            self._pending = None
            if packet is None:
                packet = next(self._copy, None)
                if packet is None:
                    self._copy = None
                    return
            stamp = packet.dts if packet.dts is not None else packet.pts
            if until is not None and stamp is not None and float(stamp * packet.time_base) > until:
                self._pending = packet
                return
            assert self._carry is not None
            if self._carry.route(packet):
                self._mux([packet])

    # -- closing --------------------------------------------------------------------------
    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._mux_video(self._video.encode(None), final=True)
            self._mux_copies(until=None)
            assert self._out is not None
            try:
                self._out.close()  # writes the index: can fail on a full disk too
                self._out = None
                if self._src is not None:
                    self._src.close()
                # again: the output may have appeared while the frames were computed
                refuse_replace(self.path, overwrite=self.overwrite, folder=False)
                os.replace(self.tmp, self.path)
            except (OSError, av.FFmpegError) as failure:
                raise write_failure(self.path, failure) from failure
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        for container in (self._out, self._src):
            if container is not None:
                try:
                    container.close()
                except Exception:
                    pass
        self._out = self._src = None
        self.tmp.unlink(missing_ok=True)
