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
- VP9 (a 0-255 index with its own tables) and every other codec: unknown (None).
Frames of a lossless codec (:data:`LOSSLESS_CODECS`) are known clean: 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

EXPORT_OPTIONS = {"export_side_data": "venc_params"}  # decoder option that makes FFmpeg export it
LOSSLESS_CODECS = frozenset({"ffv1", "ffvhuff", "huffyuv", "png", "apng", "rawvideo", "utvideo", "magicyuv", "qtrle", "bmp", "tiff"})
_H264, _MPEG2 = 1, 2  # AV_VIDEO_ENC_PARAMS_H264, AV_VIDEO_ENC_PARAMS_MPEG2 (VP9 is 0)


def mpeg_to_qp(quantiser: float) -> float:
    """An exported MPEG-2 / MPEG-4 quantiser (2 x qscale) as the H.264 QP of about the same
    distortion (at most 51)."""
    return min(51.0, 10.0 + 6.0 * math.log2(max(quantiser, 1.0)))


def frame_qp(frame, size: tuple[int, int] | None = None) -> float | None:
    """The H.264-equivalent mean quantiser of a decoded ``av.VideoFrame`` (decoded with
    :data:`EXPORT_OPTIONS`), over the blocks covering its top-left ``size`` (height, width) px
    (all blocks if None); None if its codec exports none."""
    for data in frame.side_data:
        if getattr(data, "codec_type", None) not in (_H264, _MPEG2) or not data.nb_blocks:
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
