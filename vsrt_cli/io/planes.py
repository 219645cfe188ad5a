"""One 8-bit 4:2:0 frame as planes, the YUV matrices and chroma sitings vsrt converts, and the
chroma upsampling rule itself, written once for numpy arrays and torch tensors alike.

No torch here (io never imports it): the reader hands :class:`Planes` to the engine, whose
device colour maths (:mod:`vsrt_cli.engine.yuv`) calls :func:`upsample` with torch's ``cat`` and
``stack``; the reader's siting check (:func:`match_siting`) calls it with numpy's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# YUV matrix code points (ISO/IEC 23091-2) and their (Kr, Kb). BT.2020 constant luminance
# (10) is not a matrix: such frames keep the host path.
KR_KB = {
    1: (0.2126, 0.0722),  # BT.709
    4: (0.30, 0.11),  # FCC
    5: (0.299, 0.114),  # BT.470BG (BT.601 625)
    6: (0.299, 0.114),  # SMPTE 170M (BT.601 525)
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 non-constant luminance
}


def converts(matrix: int) -> bool:
    """Whether frames with this YUV matrix can be converted here."""
    return matrix in KR_KB


@dataclass(frozen=True, eq=False)
class Planes:
    """One 8-bit 4:2:0 frame: ``y`` ``[H, W]``, ``u``/``v`` ``[H/2, W/2]`` uint8 (H, W even),
    its matrix and range, the display rotation (degrees counter-clockwise, as
    :func:`numpy.rot90`) still to apply after conversion, and where its chroma samples sit:
    on the even luma columns (``left``) or between two, on the even luma rows (``top``) or
    between two. H.264's default is left and between rows; JPEG's, VP9's and AV1's between both."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    matrix: int
    full_range: bool
    rotation: int = 0
    left: bool = True
    top: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in display orientation."""
        h, w = self.y.shape
        return (w, h) if self.rotation in (90, 270) else (h, w)


SITINGS = ((True, False), (False, False), (True, True), (False, True))  # (left, top) this module reproduces


def levels(full_range: bool) -> tuple[float, float, float]:
    """``(black, luma span, chroma span)`` in 8-bit code values."""
    return (0.0, 255.0, 255.0) if full_range else (16.0, 219.0, 224.0)



Ops = tuple[Callable[[Sequence[Any], int], Any], Callable[[Sequence[Any], int], Any]]
NUMPY: Ops = (np.concatenate, np.stack)  # (cat, stack) along an axis; torch's are (torch.cat, torch.stack)


def _take(x: Any, dim: int, start: int, stop: int | None) -> Any:
    return x[(slice(None),) * dim + (slice(start, stop),)]


def _shifted(x: Any, dim: int, step: int, ops: Ops) -> Any:
    """``x`` moved by one sample along ``dim`` (``step`` +1: each position holds its next
    neighbour's value, -1: its previous one's), the edge sample repeated."""
    n = x.shape[dim]
    if step > 0:
        return ops[0]([_take(x, dim, 1, n), _take(x, dim, n - 1, n)], dim)
    return ops[0]([_take(x, dim, 0, 1), _take(x, dim, 0, n - 1)], dim)


def _double(x: Any, dim: int, cosited: bool, ops: Ops) -> Any:
    """Twice as many samples along ``dim`` (bilinear, edges clamped). ``cosited``: the samples
    sit on the even output positions and the odd ones average their neighbours; otherwise they
    sit between two output positions (weights 3/4 and 1/4, as ``F.interpolate`` with
    ``align_corners=False``)."""
    if cosited:
        pair = (x, (x + _shifted(x, dim, 1, ops)) / 2)
    else:
        pair = (0.75 * x + 0.25 * _shifted(x, dim, -1, ops), 0.75 * x + 0.25 * _shifted(x, dim, 1, ops))
    doubled = ops[1](pair, dim + 1)
    return doubled.reshape(*x.shape[:dim], 2 * x.shape[dim], *x.shape[dim + 1:])


def upsample(chroma: Any, left: bool, top: bool, ops: Ops = NUMPY) -> Any:
    """``[h, w]`` chroma -> ``[2h, 2w]``, sited as :class:`Planes` says; ``ops``: the array
    library's ``(cat, stack)``."""
    return _double(_double(chroma, 1, left, ops), 0, top, ops)


def match_siting(chroma: np.ndarray, full: np.ndarray) -> tuple[tuple[bool, bool], float, float]:
    """Which of :data:`SITINGS` upsamples ``chroma`` ``[h, w]`` closest to ``full`` ``[2h, 2w]``
    (another converter's 4:4:4 chroma of the same frame): ``((left, top), its mean error, the
    next best's)`` in code values. On flat pictures every siting fits: the errors are close."""
    c, reference = chroma.astype(np.float32), full.astype(np.float32)
    errors = sorted((float(np.abs(upsample(c, *s) - reference).mean()), s) for s in SITINGS)
    return errors[0][1], errors[0][0], errors[1][0]
