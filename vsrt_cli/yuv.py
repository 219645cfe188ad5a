"""8-bit 4:2:0 YUV <-> RGB on the model's device, so a GPU run moves a frame's 1.5 bytes per
pixel over the bus instead of 3 and the decode/encode threads skip swscale's conversion.

Torch and numpy only (no PyAV): the planes come from the reader and go to the writer. Coming
in, the maths is swscale's, measured against it (tests/test_yuv.py): chroma upsampled bilinearly
like :func:`vsrt_cli.io.reader.to_rgb`, from where the stream sites it (MPEG-2, H.264 and HEVC
on the even luma columns, JPEG, VP9 and AV1 between two; the reader checks a stream's siting
against swscale with :func:`match_siting`). Going out, RGB -> YUV with the chroma of each 2x2
block averaged, or filtered 1-2-1 onto the even columns for encoders whose players expect it
there (swscale's ``rgb24 -> yuv420p`` always averages).
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


def _levels(full_range: bool) -> tuple[float, float, float]:
    """``(black, luma span, chroma span)`` in 8-bit code values."""
    return (0.0, 255.0, 255.0) if full_range else (16.0, 219.0, 224.0)


def _shifted(x: torch.Tensor, dim: int, step: int) -> torch.Tensor:
    """``x`` moved by one sample along ``dim`` (``step`` +1: each position holds its next
    neighbour's value, -1: its previous one's), the edge sample repeated."""
    n = x.shape[dim]
    if step > 0:
        return torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
    return torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)


def _double(x: torch.Tensor, dim: int, cosited: bool) -> torch.Tensor:
    """Twice as many samples along ``dim`` (bilinear, edges clamped). ``cosited``: the samples
    sit on the even output positions and the odd ones average their neighbours; otherwise they
    sit between two output positions (weights 3/4 and 1/4, as ``F.interpolate`` with
    ``align_corners=False``)."""
    if cosited:
        pair = (x, (x + _shifted(x, dim, 1)) / 2)
    else:
        pair = (0.75 * x + 0.25 * _shifted(x, dim, -1), 0.75 * x + 0.25 * _shifted(x, dim, 1))
    return torch.stack(pair, dim + 1).flatten(dim, dim + 1)


def upsample(chroma: torch.Tensor, left: bool, top: bool) -> torch.Tensor:
    """``[h, w]`` chroma -> ``[2h, 2w]``, sited as :class:`Planes` says."""
    return _double(_double(chroma, 1, left), 0, top)


def yuv420_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, matrix: int, full_range: bool,
                  left: bool, top: bool = False) -> torch.Tensor:
    """uint8 planes (on any device) -> ``[3, H, W]`` float32 RGB in [0, 1] there; ``left`` and
    ``top``: where the chroma sits (see :class:`Planes`)."""
    kr, kb = _KR_KB[matrix]
    black, span, cspan = _levels(full_range)
    luma = (y.float() - black) / span
    cb = upsample((u.float() - 128) / cspan, left, top)
    cr = upsample((v.float() - 128) / cspan, left, top)
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return torch.stack([r, g, b]).clamp_(0, 1)


def match_siting(chroma: np.ndarray, full: np.ndarray) -> tuple[tuple[bool, bool], float, float]:
    """Which of :data:`SITINGS` upsamples ``chroma`` ``[h, w]`` closest to ``full`` ``[2h, 2w]``
    (another converter's 4:4:4 chroma of the same frame): ``((left, top), its mean error, the
    next best's)`` in code values. On flat pictures every siting fits: the errors are close."""
    c, reference = torch.from_numpy(chroma).float(), torch.from_numpy(full).float()
    errors = sorted(((upsample(c, *s) - reference).abs().mean().item(), s) for s in SITINGS)
    return errors[0][1], errors[0][0], errors[1][0]


def _halve(x: torch.Tensor, left: bool) -> torch.Tensor:
    """``[K, H, W]`` -> ``[K, H/2, W/2]``: row pairs averaged; columns averaged in pairs, or
    (``left``) filtered 1-2-1 around the even columns, where left-sited chroma belongs."""
    rows = (x[:, 0::2] + x[:, 1::2]) / 2
    if not left:
        return (rows[..., 0::2] + rows[..., 1::2]) / 2
    even, odd = rows[..., 0::2], rows[..., 1::2]
    before = torch.cat([even[..., :1], odd[..., :-1]], -1)  # the odd column left of each even one
    return (before + 2 * even + odd) / 4


def rgb_to_yuv420(rgb: torch.Tensor, matrix: int, full_range: bool, left: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[K, 3, H, W]`` RGB in [0, 1] (H, W even) -> uint8 ``Y [K, H, W]``, ``U``/``V``
    ``[K, H/2, W/2]``, rounded, on the same device; chroma between two luma rows, and on the
    even columns (``left``, what H.264/HEVC players assume) or between two. One frame at a time,
    so the temporaries stay at one frame's size."""
    kr, kb = _KR_KB[matrix]
    black, span, cspan = _levels(full_range)

    def code(x: torch.Tensor, offset: float, scale: float) -> torch.Tensor:
        return (x * scale + offset).round_().clamp_(0, 255).to(torch.uint8)

    planes: tuple[list[torch.Tensor], ...] = ([], [], [])
    for frame in rgb:
        r, g, b = frame.float().clamp(0, 1)[:, None]
        luma = kr * r + (1 - kr - kb) * g + kb * b
        cb = _halve((b - luma) / (2 * (1 - kb)), left)
        cr = _halve((r - luma) / (2 * (1 - kr)), left)
        for out, plane in zip(planes, (code(luma, black, span), code(cb, 128, cspan), code(cr, 128, cspan))):
            out.append(plane[0])
    y, u, v = (torch.stack(p) for p in planes)
    return y, u, v
