"""8-bit 4:2:0 YUV <-> RGB on the model's device, so a GPU run moves a frame's 1.5 bytes per
pixel over the bus instead of 3 and the decode/encode threads skip swscale's conversion.

Torch and numpy only (no PyAV): the planes come from the reader and go to the writer. The maths
is swscale's, measured against it (tests/test_yuv.py): chroma upsampled bilinearly like
:func:`vsrt_cli.io.reader.to_rgb`, vertically between two luma rows, horizontally either on the
even luma columns (MPEG-2, H.264, HEVC: ``left``) or between two (VP9, AV1, JPEG); on the way
out, RGB -> YUV then each 2x2 block's chroma averaged, as swscale does for ``rgb24 -> yuv420p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# YUV matrix code points (ISO/IEC 23091-2) and their (Kr, Kb). BT.2020 constant luminance
# (10) is not a matrix: such frames keep the host path.
_KR_KB = {
    1: (0.2126, 0.0722),  # BT.709
    4: (0.30, 0.11),  # FCC
    5: (0.299, 0.114),  # BT.470BG (BT.601 625)
    6: (0.299, 0.114),  # SMPTE 170M (BT.601 525)
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 non-constant luminance
}


def converts(matrix: int) -> bool:
    """Whether frames with this YUV matrix can be converted here."""
    return matrix in _KR_KB


@dataclass(frozen=True, eq=False)
class Planes:
    """One 8-bit 4:2:0 frame: ``y`` ``[H, W]``, ``u``/``v`` ``[H/2, W/2]`` uint8 (H, W even),
    its matrix and range, the display rotation (degrees counter-clockwise, as
    :func:`numpy.rot90`) still to apply after conversion, and whether its chroma samples sit on
    the even luma columns (``left``) or between two."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    matrix: int
    full_range: bool
    rotation: int = 0
    left: bool = True

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in display orientation."""
        h, w = self.y.shape
        return (w, h) if self.rotation in (90, 270) else (h, w)


def _levels(full_range: bool) -> tuple[float, float, float]:
    """``(black, luma span, chroma span)`` in 8-bit code values."""
    return (0.0, 255.0, 255.0) if full_range else (16.0, 219.0, 224.0)


def _upsample(chroma: torch.Tensor, left: bool) -> torch.Tensor:
    """``[h, w]`` -> ``[2h, 2w]``, bilinear with edges clamped: vertically between two luma
    rows; horizontally the same, or (``left``) co-sited with the even luma columns, the odd ones
    averaging their neighbours."""
    if not left:
        return torch.nn.functional.interpolate(chroma[None, None], scale_factor=2, mode="bilinear",
                                               align_corners=False)[0, 0]
    right = torch.cat([chroma[:, 1:], chroma[:, -1:]], 1)
    wide = torch.stack([chroma, (chroma + right) / 2], 2).flatten(1)
    return torch.nn.functional.interpolate(wide[None, None], scale_factor=(2, 1), mode="bilinear",
                                           align_corners=False)[0, 0]


def yuv420_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, matrix: int, full_range: bool,
                  left: bool = True) -> torch.Tensor:
    """uint8 planes (on any device) -> ``[3, H, W]`` float32 RGB in [0, 1] there; ``left``:
    chroma sited on the even luma columns (see :class:`Planes`)."""
    kr, kb = _KR_KB[matrix]
    black, span, cspan = _levels(full_range)
    luma = (y.float() - black) / span
    cb = _upsample((u.float() - 128) / cspan, left)
    cr = _upsample((v.float() - 128) / cspan, left)
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return torch.stack([r, g, b]).clamp_(0, 1)


def rgb_to_yuv420(rgb: torch.Tensor, matrix: int, full_range: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[K, 3, H, W]`` RGB in [0, 1] (H, W even) -> uint8 ``Y [K, H, W]``, ``U``/``V``
    ``[K, H/2, W/2]``, rounded, on the same device."""
    kr, kb = _KR_KB[matrix]
    black, span, cspan = _levels(full_range)
    rgb = rgb.float().clamp(0, 1)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    luma = kr * r + (1 - kr - kb) * g + kb * b
    cb = torch.nn.functional.avg_pool2d(((b - luma) / (2 * (1 - kb)))[:, None], 2)[:, 0]
    cr = torch.nn.functional.avg_pool2d(((r - luma) / (2 * (1 - kr)))[:, None], 2)[:, 0]

    def code(x: torch.Tensor, offset: float, scale: float) -> torch.Tensor:
        return (x * scale + offset).round_().clamp_(0, 255).to(torch.uint8)

    return code(luma, black, span), code(cb, 128, cspan), code(cr, 128, cspan)
