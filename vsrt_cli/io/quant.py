"""How hard a decoded video frame was compressed: its quantiser, read from the decoder.

FFmpeg's H.264, MPEG-2 / MPEG-4 part 2 and VP9 decoders export each block's quantiser as
frame side data when asked (``export_side_data=venc_params``); PyAV hands it over as a QP map.
:func:`frame_qp` turns it into one number on H.264's scale (0 = lossless, 51 = coarsest), the
``quant`` a ``quant_film`` network is told (:mod:`vsrt_cli.model.quant`). The same function
reads the training windows' codec round trips and a user's video, so both mean the same thing.

- H.264: the mean QP of the blocks.
- MPEG-2 / MPEG-4 part 2: the mean exported quantiser (twice the encoder's ``qscale``, 2-62,
  a linear step) mapped to the H.264 QP of the same distortion, ``10 + 6 log2(q)``: on 8 LR
  frames of the car clip, MPEG-2 at qscale 2 / 4 / 8 gave 42.81 / 41.45 / 39.83 dB and x264
  at QP 22 / 28 / 34 gave 42.83 / 41.47 / 39.78 (H.264's step doubles every 6 QP).
- VP9: the frame's base quantiser index (0-255; 0 is lossless) mapped to the H.264 QP of about
  the same distortion, ``10.5 + 0.127 q``: 12 frames of two training clips' LR (Tears of Steel,
  the squirrel), libvpx-vp9 at fixed quantisers, index 31 / 63 / 100 / 143 / 185 / 225 matched
  x264 at QP 14.4 / 18.9 / 22.9 / 28.0 / 33.6 / 39.3 (mean of the two clips, by PSNR-Y).
- HEVC: FFmpeg exports no quantisers, but x265 writes its settings into the stream (an SEI
  message in the first access unit, also kept in an MP4/MKV header): a constant-quality
  encode's CRF is told as that H.264 QP. By distortion x265 CRF c matches x264 at reported
  QP 4.45 + 0.98 c (``benchmarks/codec_qp.py``: two training clips' LR, CRF 14-38, by PSNR-Y),
  but HEVC's artefacts at equal PSNR are smoother (deblocking and SAO) and the compression-aware
  model wants less of its offsets there: on 15 windows with detail from six training clips
  (``benchmarks/blend.py --codecs libx265``) the best share at CRF 18 / 23 / 28 / 33 was about
  0.35 / 0.57 / 0.78 / 1, what QP 19 / 23 / 28 / 32+ gets (the PSNR match would give 0.5 / 0.75 /
  1 / 1, 0.02-0.04 dB worse; unknown, 0.75, is 0.32 dB worse at CRF 18). Other HEVC encoders
  (phones, hardware) and x265 at a bitrate: unknown.
- every other codec (AV1, ...): unknown (None).
Frames of a lossless codec (:data:`LOSSLESS_CODECS`) are known clean: 0. A QP map PyAV refuses
(an interlaced MPEG-2 picture holds more blocks than its frame size) is read block by block, and
what cannot be read at all is unknown for that frame, never an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

EXPORT_OPTIONS = {"export_side_data": "venc_params"}  # decoder option that makes FFmpeg export it
LOSSLESS_CODECS = frozenset({"ffv1", "ffvhuff", "huffyuv", "png", "apng", "rawvideo", "utvideo", "magicyuv", "qtrle", "bmp", "tiff"})
_VP9, _H264, _MPEG2 = 0, 1, 2  # AV_VIDEO_ENC_PARAMS_*
QP_MAP_CODECS = frozenset({"h264", "mpeg1video", "mpeg2video", "mpeg4"})  # decoders exporting per-block QP maps
X265_CRF_QP = (0.0, 1.0)  # the H.264 QP told = a + b * x265 CRF (benchmarks/blend.py; module docstring)


def mpeg_to_qp(quantiser: float) -> float:
    """An exported MPEG-2 / MPEG-4 quantiser (2 x qscale) as the H.264 QP of about the same
    distortion (at most 51)."""
    return min(51.0, 10.0 + 6.0 * math.log2(max(quantiser, 1.0)))


def vp9_to_qp(qindex: float) -> float:
    """A VP9 base quantiser index (0-255) as the H.264 QP of about the same distortion (0 for
    the lossless index 0, at most 51)."""
    return 0.0 if qindex <= 0 else min(51.0, 10.5 + 0.127 * qindex)


def x265_crf_to_qp(crf: float) -> float:
    """An x265 CRF as the H.264 QP a compression-aware network is told (at most 51)."""
    return min(51.0, X265_CRF_QP[0] + X265_CRF_QP[1] * crf)


def frame_qp(frame, size: tuple[int, int] | None = None) -> float | None:
    """The H.264-equivalent mean quantiser of a decoded ``av.VideoFrame`` (decoded with
    :data:`EXPORT_OPTIONS`), over the blocks covering its top-left ``size`` (height, width) px
    (all blocks if None); None if its codec exports none."""
    for data in frame.side_data:
        kind = getattr(data, "codec_type", None)
        if kind == _VP9:  # one index per frame (its segments' deltas are left out)
            return vp9_to_qp(float(data.qp))
        if kind not in (_H264, _MPEG2) or not data.nb_blocks:
            continue
        try:
            qp = np.asarray(data.qp_map(), dtype=np.float64)
        except (RuntimeError, ValueError):
            # PyAV wants as many blocks as the frame's size holds; an interlaced MPEG-2 picture
            # has more (its height rounded up to two macroblock rows, one per field)
            mean = _block_mean(data, frame, size)
            if mean is None:
                return None
        else:
            if size is not None:  # blocks of frame.height / rows px
                rows = max(1, math.ceil(size[0] * qp.shape[0] / frame.height))
                cols = max(1, math.ceil(size[1] * qp.shape[1] / frame.width))
                qp = qp[:rows, :cols]
            mean = float(qp.mean())
        return mean if int(data.codec_type) == _H264 else mpeg_to_qp(mean)
    return None


def _block_mean(data, frame, size: tuple[int, int] | None) -> float | None:
    """The mean quantiser of the blocks starting inside the frame (its top-left ``size``), read
    block by block; None if the side data cannot be read at all (unknown, never an error)."""
    height, width = size if size is not None else (frame.height, frame.width)
    try:
        values = [data.qp + block.delta_qp for block in map(data.block_params, range(data.nb_blocks))
                  if block.src_y < height and block.src_x < width]
    except (RuntimeError, ValueError, IndexError):
        return None
    return float(np.mean(values)) if values else None


def x265_qp(data: bytes) -> float | None:
    """The H.264-equivalent QP of a stream from the settings x265 wrote into ``data`` (a header
    or an SEI payload): its CRF through :func:`x265_crf_to_qp`; None if ``data`` holds no x265
    settings or the encode was not constant quality (``rc=abr``, ``rc=cqp``)."""
    at = data.find(b"x265 (build")
    if at < 0:
        return None
    end = data.find(b"\0", at)
    text = data[at : end if end >= 0 else len(data)]
    rc, crf = re.search(rb" rc=(\w+)", text), re.search(rb" crf=(\d+(?:\.\d+)?)", text)
    if rc is None or rc.group(1) != b"crf" or crf is None:
        return None
    return x265_crf_to_qp(float(crf.group(1)))


class HevcQuant:
    """Reads HEVC frames' quantiser, which FFmpeg does not export: what x265 wrote into the
    stream's header, else into its first frame's SEI (:func:`x265_qp`), for every frame after."""

    def __init__(self, header: bytes | None) -> None:
        self.qp = x265_qp(header or b"")

    def __call__(self, frame, size: tuple[int, int] | None = None) -> float | None:
        if self.qp is None:
            for data in frame.side_data:
                if getattr(data.type, "name", "") == "SEI_UNREGISTERED":
                    self.qp = x265_qp(bytes(data))
        return self.qp


def decoded_quant(codec: str, header: bytes | None) -> Callable[..., float | None]:
    """What reads the quantiser of frames decoded by FFmpeg's decoder ``codec`` (called with the
    frame and optionally the ``size`` it covers): 0 for a lossless codec, :class:`HevcQuant`
    for HEVC (``header``: the stream's extradata), else :func:`frame_qp`."""
    if codec in LOSSLESS_CODECS:
        return lambda frame, size=None: 0.0
    if codec == "hevc":
        return HevcQuant(header)
    return frame_qp


def quant_reader(stream) -> Callable[..., float | None]:
    """Ask a video ``stream``'s decoder (not yet opened) to export quantisers, and return what
    reads a decoded frame's (:func:`decoded_quant`).

    Decoders that export a QP map (:data:`QP_MAP_CODECS`) then run slice threads, not frame
    threads (the others keep theirs: their quantiser is one number per stream or frame header).
    FFmpeg's frame-threaded H.264 decoder sometimes exports a frame's QP map before it is filled
    (all zeros, "lossless"), as the threads happen to run; a quant_blend model then blends that
    window as clean, up to 23 code values off. The same clip gave other frames by other routes
    (a Ray worker's second clip) until this."""
    if stream.codec_context.name in QP_MAP_CODECS:
        stream.thread_type = "SLICE"
    stream.codec_context.options = {**stream.codec_context.options, **EXPORT_OPTIONS}
    return decoded_quant(stream.codec_context.name, stream.codec_context.extradata)


def mean_qp(values: list[float | None]) -> float:
    """The mean of the known values, NaN if none is known (a window's ``quant``)."""
    known = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(known)) if known else float("nan")
