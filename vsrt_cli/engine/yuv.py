"""8-bit 4:2:0 YUV <-> RGB on the model's device, so a GPU run moves a frame's 1.5 bytes per
pixel over the bus instead of 3 and the decode/encode threads skip swscale's conversion.

Torch only (no PyAV): the planes (:class:`vsrt_cli.io.planes.Planes`) come from the reader and
go to the writer. Coming in, the maths is swscale's, measured against it (tests/test_yuv.py): chroma upsampled bilinearly
like :func:`vsrt_cli.io.reader.to_rgb`, from where the stream sites it (MPEG-2, H.264 and HEVC
on the even luma columns, JPEG, VP9 and AV1 between two; the reader checks a stream's siting
against swscale with :func:`vsrt_cli.io.planes.match_siting`; the upsampling rule lives there). Going out, RGB -> YUV with the chroma of each 2x2
block averaged, or filtered 1-2-1 onto the even columns for encoders whose players expect it
there (swscale's ``rgb24 -> yuv420p`` always averages).
"""

from __future__ import annotations

import torch

from vsrt_cli.io.planes import KR_KB, Ops, Planes, converts, levels, upsample

TORCH: Ops = (torch.cat, torch.stack)
__all__ = ["Planes", "converts", "rgb_to_yuv420", "yuv420_to_rgb"]


def yuv420_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, matrix: int, full_range: bool,
                  left: bool, top: bool = False) -> torch.Tensor:
    """uint8 planes (on any device) -> ``[3, H, W]`` float32 RGB in [0, 1] there; ``left`` and
    ``top``: where the chroma sits (see :class:`Planes`)."""
    kr, kb = KR_KB[matrix]
    black, span, cspan = levels(full_range)
    luma = (y.float() - black) / span
    cb = upsample((u.float() - 128) / cspan, left, top, TORCH)
    cr = upsample((v.float() - 128) / cspan, left, top, TORCH)
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return torch.stack([r, g, b]).clamp_(0, 1)


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
    kr, kb = KR_KB[matrix]
    black, span, cspan = levels(full_range)

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
