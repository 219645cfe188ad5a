"""MATLAB-style bicubic resizing and the "BI" degradation (bicubic x1/4 with antialiasing).

``imresize`` matches MATLAB's ``imresize(img, scale, 'bicubic')`` (and BasicSR's
``matlab_functions.imresize`` with ``antialiasing=True``): the Keys cubic kernel with a = -0.5,
widened by ``1/scale`` when shrinking, output size ``ceil(scale * size)``, sample centres
``u = x/scale + 0.5 (1 - 1/scale)`` (1-based), weights normalised per output pixel, and indices
outside the image mirrored symmetrically (``1..n, n..1``). Each axis is one dense
``[out, in]`` matrix, so the resize is linear and a constant image stays constant.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SCALE = 4


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), elementwise."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = 1.5 * ax3 - 2.5 * ax2 + 1.0
    outer = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return torch.where(ax <= 1, inner, torch.where(ax <= 2, outer, torch.zeros_like(ax)))


def output_length(in_length: int, scale: float) -> int:
    """MATLAB's output size for one axis: ``ceil(scale * in_length)``."""
    return math.ceil(scale * in_length - 1e-9)


def resize_matrix(in_length: int, scale: float, antialias: bool = True) -> torch.Tensor:
    """The ``[out, in]`` float64 matrix that resizes one axis the way MATLAB does."""
    out_length = output_length(in_length, scale)
    shrink_aa = antialias and scale < 1
    kernel_width = 4.0 / scale if shrink_aa else 4.0
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based
    distance = u[:, None] - indices
    weights = scale * cubic(distance * scale) if shrink_aa else cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric mirroring of out-of-range indices: 1..n, n..1, repeated.
    period = 2 * in_length
    folded = torch.remainder(indices.long() - 1, period)
    folded = torch.where(folded < in_length, folded, period - 1 - folded)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, folded, weights)
    return matrix


def imresize(x: torch.Tensor, scale: float, antialias: bool = True) -> torch.Tensor:
    """Resize the last two axes of ``[..., H, W]`` by ``scale`` (float, values not clamped)."""
    h, w = x.shape[-2:]
    rows = resize_matrix(h, scale, antialias).to(x.dtype)
    cols = resize_matrix(w, scale, antialias).to(x.dtype)
    return torch.einsum("oh,...hw,pw->...op", rows, x, cols)


def resize_uint8(frames: np.ndarray, scale: float) -> np.ndarray:
    """Resize ``[N, H, W, 3]`` uint8 frames with :func:`imresize`, rounded back to uint8."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    out = imresize(x, scale).round_().clamp_(0, 255).to(torch.uint8)
    return out.permute(0, 2, 3, 1).contiguous().numpy()


def crop_to_multiple(frames: np.ndarray, multiple: int = SCALE) -> np.ndarray:
    """Crop ``[N, H, W, C]`` (bottom/right) so that H and W are multiples of ``multiple``."""
    h, w = frames.shape[1:3]
    return frames[:, : h - h % multiple, : w - w % multiple]


def bi_degrade(frames: np.ndarray) -> np.ndarray:
    """The BI protocol: ``[N, 4h, 4w, 3]`` uint8 GT -> ``[N, h, w, 3]`` uint8 LR (bicubic x1/4, AA)."""
    if frames.shape[1] % SCALE or frames.shape[2] % SCALE:
        raise ValueError(f"GT size {frames.shape[1:3]} must be a multiple of {SCALE}; crop it first")
    return resize_uint8(frames, 1 / SCALE)


def bicubic_upscale(lr: torch.Tensor) -> torch.Tensor:
    """The bicubic x4 baseline (MATLAB ``imresize(lr, 4)``), ``[..., h, w]`` -> ``[..., 4h, 4w]``."""
    return imresize(lr, float(SCALE))
