"""Small building blocks shared by the VSRT network and SPyNet.

Everything here is pure tensor code: no files, no printing. Layouts are stated per function.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.1


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU with the slope used everywhere in VSRT (0.1), in place on a fresh tensor."""
    return F.leaky_relu(x, LRELU_SLOPE, inplace=True)


class ResidualBlock(nn.Module):
    """``x + conv2(relu(conv1(x)))``, two 3x3 convs with bias and no normalisation. ``[N, C, H, W]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def residual_stack(channels: int, count: int) -> nn.Sequential:
    """``count`` :class:`ResidualBlock` in a row (an empty, identity stack when ``count`` is 0)."""
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(count)))


def flow_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros", mode: str = "bilinear") -> torch.Tensor:
    """Sample ``x`` at ``p + flow(p)``: aligns a neighbour to the reference frame.

    ``x``: ``[N, C, H, W]``; ``flow``: ``[N, 2, H, W]`` in pixels, channel 0 horizontal (x) and
    channel 1 vertical (y). Bilinear, ``align_corners=True``; ``padding_mode`` is ``"zeros"``
    (feature warping) or ``"border"`` (inside SPyNet); ``mode`` ``"bilinear"`` (the paper's) or
    ``"bicubic"`` (keeps more of the detail near the sampling limit). Returns ``[N, C, H, W]``.
    """
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device, dtype=x.dtype)
    cols = torch.arange(w, device=x.device, dtype=x.dtype)
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
    sample_x = grid_x + flow[:, 0].to(x.dtype)
    sample_y = grid_y + flow[:, 1].to(x.dtype)
    norm_x = 2.0 * sample_x / max(w - 1, 1) - 1.0
    norm_y = 2.0 * sample_y / max(h - 1, 1) - 1.0
    grid = torch.stack((norm_x, norm_y), dim=3)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def encoding_channels(num_frame: int) -> int:
    """Channels per spatial axis of the official 3-D positional encoding for ``num_frame``."""
    k = math.ceil(num_frame / 6) * 2
    return k + 1 if k % 2 else k


def encoding_frequencies(num_frame: int) -> torch.Tensor:
    """The encoding's inverse frequencies ``1 / 10000^(2i/k)`` in float32 (``[k/2]``)."""
    k = encoding_channels(num_frame)
    return 1.0 / (10000 ** (torch.arange(0, k, 2, dtype=torch.float32) / k))


def encoding_tables(num_frame: int, channels: int, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """The encoding's three 1-D factors, float32: ``[channels, k]``, ``[height, k]``, ``[width, k]``.

    Encoding channel ``e`` of :func:`positional_encoding` is column ``e`` of the first table
    broadcast over rows and columns (``e < k``), column ``e - k`` of the second broadcast over
    channels and columns (``e < 2k``), else column ``e - 2k`` of the third."""
    inv_freq = encoding_frequencies(num_frame)

    def axis(n: int) -> torch.Tensor:  # [n, k]
        arg = torch.einsum("i,j->ij", torch.arange(n, dtype=torch.float32), inv_freq)
        return torch.cat((arg.sin(), arg.cos()), dim=-1)

    return axis(channels), axis(height), axis(width)


def positional_encoding(
    num_frame: int, frames: int, channels: int, height: int, width: int
) -> torch.Tensor:
    """The official VSRT positional encoding, ``[1, frames, channels, height, width]`` float32.

    The official code runs a 3-D sinusoidal encoder with the axes permuted so that the *frame*
    axis is the encoding channel and the three encoded axes are (feature channel, row, column).
    Per axis the layout is all sines, then all cosines; the three axes are concatenated and the
    result is cut to the first ``frames`` channels, one per frame. ``num_frame`` (the configured
    window) fixes the frequencies; ``frames`` (the actual T) may be smaller, at most ``3k``.
    Materialised (tests compare it with the official tensor); the model adds it through
    :func:`add_positional_encoding` without building it.
    """
    k = encoding_channels(num_frame)
    if frames > 3 * k:
        raise ValueError(f"positional encoding for num_frame={num_frame} covers at most {3 * k} frames")
    by_channel, by_row, by_col = encoding_tables(num_frame, channels, height, width)
    emb = torch.zeros(channels, height, width, 3 * k)
    emb[..., :k] = by_channel[:, None, None, :]
    emb[..., k : 2 * k] = by_row[None, :, None, :]
    emb[..., 2 * k :] = by_col[None, None, :, :]
    return emb[..., :frames].permute(3, 0, 1, 2).unsqueeze(0).contiguous()


@functools.lru_cache(maxsize=32)
def _device_tables(
    num_frame: int, channels: int, height: int, width: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, ...]:
    # Built as ordinary tensors even when first asked for under inference_mode, so that a later
    # training step may use them too. A few kB per shape: the tables, never the [T, C, H, W] tensor.
    with torch.inference_mode(False):
        return tuple(
            t.to(device=device, dtype=dtype) for t in encoding_tables(num_frame, channels, height, width)
        )


def add_positional_encoding(feat: torch.Tensor, num_frame: int, channels_of_frames: list[int]) -> torch.Tensor:
    """``feat + positional_encoding(...)`` for ``feat`` ``[B, T, C, H, W]``, frame ``j`` taking
    encoding channel ``channels_of_frames[j]``: the same numbers, added as broadcasts of the
    cached 1-D factors (per shape, device and dtype) instead of a full-size tensor rebuilt on the
    CPU and copied to the device on every call. In place where no gradient is needed."""
    _, t, c, h, w = feat.shape
    k = encoding_channels(num_frame)
    if max(channels_of_frames) >= 3 * k:
        raise ValueError(f"positional encoding for num_frame={num_frame} covers at most {3 * k} frames")
    by_channel, by_row, by_col = _device_tables(num_frame, c, h, w, feat.device, feat.dtype)
    terms = []
    for e in channels_of_frames:
        if e < k:
            terms.append(by_channel[:, e].view(c, 1, 1))
        elif e < 2 * k:
            terms.append(by_row[:, e - k].view(1, h, 1))
        else:
            terms.append(by_col[:, e - 2 * k].view(1, 1, w))
    if feat.requires_grad:
        return torch.stack([feat[:, j] + term for j, term in enumerate(terms)], dim=1)
    for j, term in enumerate(terms):
        feat[:, j] += term
    return feat


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of ``[..., C, H, W]`` at every pixel (size-agnostic)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(-3, -1)).movedim(-1, -3)
