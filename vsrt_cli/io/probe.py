"""What a video file holds, read once before any frame is decoded."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vsrt_cli.errors import InputError

# AVColorSpace values swscale understands directly; anything else is guessed from the size.
_KNOWN_MATRICES = {1, 4, 5, 6, 7, 9, 10}
BT709, BT601 = 1, 5
RANGE_FULL = 2  # AVCOL_RANGE_JPEG


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


def _bit_depth(fmt: av.VideoFormat) -> int:
    return max((c.bits for c in fmt.components), default=8)


def has_alpha(fmt: av.VideoFormat) -> bool:
    """Gray+alpha and RGBA/YUVA formats have an even number of components."""
    return len(fmt.components) in (2, 4)


def colour_matrix(colorspace: int, height: int) -> int:
    """The YUV->RGB matrix to decode with: the tagged one, else BT.709 for HD and BT.601 below."""
    if colorspace in _KNOWN_MATRICES:
        return colorspace
    return BT709 if height >= 720 else BT601


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
        stream = container.streams.video[0]
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
        return VideoInfo(
            path=path,
            width=w,
            height=h,
            rotation=rotation,
            frames=stream.frames or None,
            rate=stream.average_rate or stream.guessed_rate,
            time_base=stream.time_base or Fraction(1, 90000),
            codec=stream.codec_context.name,
            pix_fmt=first.format.name,
            bit_depth=_bit_depth(first.format),
            has_alpha=has_alpha(first.format),
            extra_streams=extra,
        )
