"""Decoded frames into what the model takes: RGB arrays by swscale, or, for the device to convert
(:mod:`vsrt_cli.engine.yuv`), the YUV planes of 8-bit 4:2:0 frames, sited as swscale sites them."""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np

from vsrt_cli.io.colour import chroma_left, full_range
from vsrt_cli.io.probe import VideoInfo, colour_matrix
from vsrt_cli.io.planes import Planes, converts, match_siting

# Mean errors in code values against swscale's chroma (tests/test_yuv.py): the right siting
# 0.18-0.26 (swscale rounds in fixed point), a wrong one 0.9 and more on a detailed picture.
SITING_FITS = 0.6  # the best siting's error, at most: the stream's siting is one vsrt_cli.engine.yuv reproduces
SITING_TELLS = 0.2  # between the best siting's error and the next: the frame tells them apart
SITING_TRIES = 100  # frames looked at for a telling one; then the codec's default stays


def _subsampled(fmt: av.VideoFormat, width: int, height: int) -> bool:
    """4:2:0, 4:2:2, 4:1:1 ... (chroma planes smaller than the picture)."""
    return not fmt.is_rgb and len(fmt.components) >= 3 and (
        fmt.chroma_width(width) < width or fmt.chroma_height(height) < height)


def _levels(frame: av.VideoFrame) -> str:
    return "JPEG" if full_range(frame) else "MPEG"


def _to_444(frame: av.VideoFrame, bit_depth: int, width: int, height: int) -> av.VideoFrame:
    """Subsampled chroma interpolated to full size (bilinear, from where the frame sites it)."""
    matrix = colour_matrix(frame.colorspace, frame.width, frame.height)
    return frame.reformat(
        format="yuv444p16le" if bit_depth > 8 else "yuv444p", interpolation="BILINEAR",
        width=width, height=height, src_colorspace=matrix, dst_colorspace=matrix,
        src_color_range=_levels(frame), dst_color_range=_levels(frame),
    )


def to_rgb(frame: av.VideoFrame, bit_depth: int, rotation: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB array of ``frame`` with the right YUV matrix and range, rotated for display.

    Subsampled chroma is interpolated (bilinear, to 4:4:4 first): swscale's direct YUV->RGB
    path repeats each chroma sample, which gives blocky colour edges. ``size`` ``(width,
    height)``, coded orientation, scales a frame of another size to it (a stream whose
    resolution changes part-way comes out at its first size)."""
    matrix = colour_matrix(frame.colorspace, frame.width, frame.height)
    levels = _levels(frame)
    width, height = size if size is not None else (frame.width, frame.height)
    scale = {} if (width, height) == (frame.width, frame.height) else {"width": width, "height": height, "interpolation": "BICUBIC"}
    if _subsampled(frame.format, frame.width, frame.height):
        frame = _to_444(frame, bit_depth, width, height)
        scale = {}
    image = frame.to_ndarray(
        format="rgb48le" if bit_depth > 8 else "rgb24",
        src_colorspace=matrix,
        src_color_range=levels,
        dst_color_range="JPEG",
        **scale,
    )
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> np.ndarray:
    data = frame.planes[index]
    return np.frombuffer(data, np.uint8).reshape(height, data.line_size)[:, :width].copy()


def to_planes(frame: av.VideoFrame, rotation: int, size: tuple[int, int], left: bool, top: bool = False) -> Planes | None:
    """The YUV planes of an 8-bit 4:2:0 frame of ``size`` ``(width, height)`` (even sides) whose
    matrix :mod:`vsrt_cli.engine.yuv` converts, its chroma sited at ``left``/``top`` (see
    :class:`~vsrt_cli.io.planes.Planes`); None for any other frame (:func:`to_rgb` takes it)."""
    width, height = frame.width, frame.height
    if frame.format.name not in ("yuv420p", "yuvj420p") or (width, height) != size or width % 2 or height % 2:
        return None
    matrix = colour_matrix(frame.colorspace, width, height)
    if not converts(matrix):
        return None
    return Planes(_plane(frame, 0, width, height), _plane(frame, 1, width // 2, height // 2),
                  _plane(frame, 2, width // 2, height // 2), matrix, full_range(frame), rotation, left, top)


class FrameConverter:
    """``converter(frame)``: a decoded frame of the video ``info`` as a reader gives it: its
    planes when ``yuv`` and :func:`to_planes` takes it, else its RGB array (:func:`to_rgb`).

    Where the chroma sits is the stream's own tag, which swscale follows and PyAV does not
    expose. So it starts as the codec's default (:func:`~vsrt_cli.io.colour.chroma_left`) and
    is settled by the first frame that tells the sitings apart, against swscale's own 4:4:4
    chroma of it (:func:`~vsrt_cli.io.planes.match_siting`). A siting vsrt_cli.engine.yuv does not
    reproduce (bottom rows) sends the stream to swscale from that frame on."""

    def __init__(self, info: VideoInfo, size: tuple[int, int], yuv: bool) -> None:
        self.info, self.size, self.yuv = info, size, yuv
        self.siting = (chroma_left(info.codec), False)
        self.tries = 0 if yuv else SITING_TRIES

    def __call__(self, frame: av.VideoFrame) -> np.ndarray | Planes:
        planes = to_planes(frame, self.info.rotation, self.size, *self.siting) if self.yuv else None
        if planes is not None and self.tries < SITING_TRIES:
            planes = self._settle(frame, planes)
        return planes if planes is not None else to_rgb(frame, self.info.bit_depth, self.info.rotation, self.size)

    def _settle(self, frame: av.VideoFrame, planes: Planes) -> Planes | None:
        self.tries += 1
        full = _to_444(frame, 8, frame.width, frame.height)
        siting, best, second = match_siting(planes.u, _plane(full, 1, frame.width, frame.height))
        if best > SITING_FITS:  # none reproduces swscale's picture
            self.tries, self.yuv = SITING_TRIES, False
            return None
        if second - best < SITING_TELLS:
            return planes  # a flat picture: any siting gives it
        self.tries = SITING_TRIES
        self.siting = siting
        return replace(planes, left=siting[0], top=siting[1])
