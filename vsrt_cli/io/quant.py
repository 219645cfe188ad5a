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
- every other codec (HEVC, AV1, ...): unknown (None).
Frames of a lossless codec (:data:`LOSSLESS_CODECS`) are known clean: 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

EXPORT_OPTIONS = {"export_side_data": "venc_params"}  # decoder option that makes FFmpeg export it
LOSSLESS_CODECS = frozenset({"ffv1", "ffvhuff", "huffyuv", "png", "apng", "rawvideo", "utvideo", "magicyuv", "qtrle", "bmp", "tiff"})
_VP9, _H264, _MPEG2 = 0, 1, 2  # AV_VIDEO_ENC_PARAMS_*


def mpeg_to_qp(quantiser: float) -> float:
    """An exported MPEG-2 / MPEG-4 quantiser (2 x qscale) as the H.264 QP of about the same
    distortion (at most 51)."""
    return min(51.0, 10.0 + 6.0 * math.log2(max(quantiser, 1.0)))


def vp9_to_qp(qindex: float) -> float:
    """A VP9 base quantiser index (0-255) as the H.264 QP of about the same distortion (0 for
    the lossless index 0, at most 51)."""
    return 0.0 if qindex <= 0 else min(51.0, 10.5 + 0.127 * qindex)


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
        qp = np.asarray(data.qp_map(), dtype=np.float64)
        if size is not None:  # blocks of frame.height / rows px
            rows = max(1, math.ceil(size[0] * qp.shape[0] / frame.height))
            cols = max(1, math.ceil(size[1] * qp.shape[1] / frame.width))
            qp = qp[:rows, :cols]
        mean = float(qp.mean())
        return mean if int(data.codec_type) == _H264 else mpeg_to_qp(mean)
    return None


def quant_reader(stream) -> Callable[[object], float | None]:
    """Ask a video ``stream``'s decoder (not yet opened) to export quantisers, and return what
    reads a decoded frame's: :func:`frame_qp`, or 0 for a lossless codec."""
    stream.codec_context.options = {**stream.codec_context.options, **EXPORT_OPTIONS}
    if stream.codec_context.name in LOSSLESS_CODECS:
        return lambda frame: 0.0
    return frame_qp


def mean_qp(values: list[float | None]) -> float:
    """The mean of the known values, NaN if none is known (a window's ``quant``)."""
    known = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(known)) if known else float("nan")
