"""What a video file holds, read once before any frame is decoded."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vsrt_cli.errors import InputError
from vsrt_cli.io.carry import main_video
from vsrt_cli.io.colour import BT709, RANGE_FULL, SDR_BT709, Colour, guess_matrix, read_colour

__all__ = ["BT709", "RANGE_FULL", "Colour", "VideoInfo", "colour_matrix", "has_alpha", "open_input", "probe", "shown_frames"]

_NO_TIMESTAMPS = 0x80  # AVFMT_NOTIMESTAMPS: raw elementary streams (.h264, .hevc, ...)


@dataclass(frozen=True)
class VideoInfo:
    """Facts about the first video stream. ``width``/``height`` are as displayed (after the
    rotation is applied); ``frames`` is None when the container does not say."""

    path: Path
    width: int
    height: int
    rotation: int
    frames: int | None
    rate: Fraction | None
    time_base: Fraction
    codec: str
    pix_fmt: str
    bit_depth: int
    has_alpha: bool
    extra_streams: int  # audio + subtitle streams that can be copied
    colour: Colour = SDR_BT709  # as tagged, untagged parts guessed (see colour.read_colour)
    sample_aspect: Fraction = Fraction(1)  # pixel width / height, as displayed (after rotation)
    timestamps: bool = True  # False: the container stores none; the reader counts at ``rate``
    duration: Fraction | None = None  # seconds of video the container announces, if it does
    start_time: float = 0.0  # seconds: the first frame's time (where a span's times count from)
    interlaced: str | None = None  # "top field first", ... (vsrt_cli.io.interlace.field_order); None: progressive
    deinterlace: str = "off"  # what the reader does about it: off, frame or double (interlace.plan)


def _bit_depth(fmt: av.VideoFormat) -> int:
    return max((c.bits for c in fmt.components), default=8)


def has_alpha(fmt: av.VideoFormat) -> bool:
    """Gray+alpha and RGBA/YUVA formats have an even number of components."""
    return len(fmt.components) in (2, 4)


def colour_matrix(colorspace: int, width: int, height: int) -> int:
    """The YUV->RGB matrix to decode with: the tagged one, else as players guess (BT.709 when
    ``width >= 1280`` or ``height > 576``, BT.601 below)."""
    return guess_matrix(colorspace, width, height)


def _video_duration(container: av.container.InputContainer, stream: av.VideoStream) -> Fraction | None:
    """Seconds from the video's first frame to its announced end: the stream's duration, or
    Matroska's per-track DURATION tag (an end time), else the container's (maybe the audio's)."""
    tb = stream.time_base or Fraction(1, 90000)
    start = stream.start_time * tb if stream.start_time is not None else Fraction(0)
    if stream.duration:
        return stream.duration * tb
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + Fraction(s) - start
        except ValueError:
            pass
    if not container.duration:
        return None
    offset = start - Fraction(container.start_time or 0, 1_000_000)
    return Fraction(container.duration, 1_000_000) - max(offset, Fraction(0))


def _sample_aspect(stream: av.VideoStream, rotation: int) -> Fraction:
    sar = stream.codec_context.sample_aspect_ratio or stream.sample_aspect_ratio
    if not sar or sar <= 0:
        return Fraction(1)
    return 1 / sar if rotation in (90, 270) else Fraction(sar)


def shown_frames(stream: av.VideoStream) -> int | None:
    """The frames of ``stream`` a player shows: the container's count less those its edit list
    hides (a phone MP4 trimmed at the start keeps the GOP before its first shown frame, marked
    discarded in the index, as FFmpeg honours it). None when the container does not say."""
    if not stream.frames:
        return None
    hidden = sum(1 for entry in stream.index_entries if entry.is_discard)
    return stream.frames - hidden if stream.frames > hidden else None


# AVFieldOrder: 0 unknown, 1 progressive, TT, BB, TB, BT (named by the field coded first, as ffprobe's
# "top coded first (swapped)"); only said to the user: the deinterlacer follows each frame's own flag
_ORDERS = {2: "top field first", 3: "bottom field first", 4: "top field first", 5: "bottom field first"}


def field_order(stream: av.VideoStream, first: av.VideoFrame) -> str | None:
    """How ``stream`` is interlaced (``top field first``, ``bottom field first``, or ``field
    order unknown`` from the frame's flag alone, as with PyAV 17), None if progressive."""
    coded = getattr(stream.codec_context, "field_order", None)  # PyAV 18 and newer
    order = _ORDERS.get(int(coded or 0))
    if order is not None:
        return order
    if not first.interlaced_frame:
        return None
    top = getattr(first, "top_field_first", None)  # not in PyAV 17 either
    return "field order unknown" if top is None else ("top field first" if top else "bottom field first")


def open_input(path: Path) -> av.container.InputContainer:
    """Open a media file, turning every failure into one actionable :class:`InputError`."""
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a video file, or a folder of PNG/JPEG frames")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes); it is not a video")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise InputError(f"{path} cannot be opened as a video ({exc.strerror or exc}); is it a video file?") from exc


def probe(path: Path) -> VideoInfo:
    """Read the container header and the first frame's rotation and format."""
    with open_input(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            raise InputError(f"{path} has no video stream (it holds {', '.join(kinds)}); give a video file")
        stream = main_video(container)
        try:
            first = next(container.decode(stream))
        except StopIteration:
            raise InputError(f"{path} has a video stream but no decodable frame; the file may be truncated") from None
        except av.FFmpegError as exc:
            raise InputError(f"{path}: the first frame cannot be decoded ({exc}); the file may be corrupt") from exc
        rotation = round(first.rotation / 90) * 90 % 360  # counter-clockwise, to display
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        extra = sum(1 for s in container.streams if s.type in ("audio", "subtitle"))
        stamped = not (container.format.flags & _NO_TIMESTAMPS)
        rate = stream.average_rate if stamped else None  # a raw stream's average is a default 25
        rate = rate or stream.guessed_rate or stream.average_rate
        return VideoInfo(
            path=path,
            width=w,
            height=h,
            rotation=rotation,
            frames=shown_frames(stream),
            rate=rate,
            time_base=stream.time_base or Fraction(1, 90000),
            codec=stream.codec_context.name,
            pix_fmt=first.format.name,
            bit_depth=_bit_depth(first.format),
            has_alpha=has_alpha(first.format),
            extra_streams=extra,
            colour=read_colour(first),
            sample_aspect=_sample_aspect(stream, rotation),
            timestamps=stamped,
            duration=_video_duration(container, stream),
            start_time=float(first.pts * first.time_base) if first.pts is not None and first.time_base else 0.0,
            interlaced=field_order(stream, first),
        )
