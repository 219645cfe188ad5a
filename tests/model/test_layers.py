"""Blocks in isolation: warping, positional encoding, normalisation."""

from __future__ import annotations

import math

import torch

from vsrt_cli.model.layers import ChannelLayerNorm, encoding_channels, flow_warp, positional_encoding


def test_flow_warp_zero_flow_is_identity():
    x = torch.rand(2, 3, 7, 9)
    assert torch.allclose(flow_warp(x, torch.zeros(2, 2, 7, 9)), x, atol=1e-6)


def test_flow_warp_integer_shift_and_padding():
    x = torch.rand(1, 1, 4, 5) + 1.0
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 1.0  # sample one pixel to the right
    zeros = flow_warp(x, flow, "zeros")
    assert torch.allclose(zeros[..., :-1], x[..., 1:], atol=1e-6)
    assert torch.all(zeros[..., -1] == 0)
    border = flow_warp(x, flow, "border")
    assert torch.allclose(border[..., -1], x[..., -1], atol=1e-6)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 1] = -1.0  # one row up
    assert torch.allclose(flow_warp(x, flow)[..., 1:, :], x[..., :-1, :], atol=1e-6)


def test_positional_encoding_t5_layout():
    pe = positional_encoding(5, 5, 4, 6, 7)[0]
    c = torch.arange(4.0).view(4, 1, 1).expand(4, 6, 7)
    h = torch.arange(6.0).view(1, 6, 1).expand(4, 6, 7)
    w = torch.arange(7.0).view(1, 1, 7).expand(4, 6, 7)
    expected = torch.stack([c.sin(), c.cos(), h.sin(), h.cos(), w.sin()])
    assert torch.allclose(pe, expected, atol=1e-6)


def test_positional_encoding_shorter_window_is_a_prefix():
    full = positional_encoding(7, 7, 3, 4, 4)
    assert torch.equal(positional_encoding(7, 2, 3, 4, 4), full[:, :2])
    assert encoding_channels(5) == 2 and encoding_channels(7) == 4
    # T=7: frames 2 and 3 are the cosines (sines first), frame 2 = cos(c)
    assert math.isclose(full[0, 2, 1, 0, 0].item(), math.cos(1.0), rel_tol=1e-6)


def test_channel_layer_norm_is_per_pixel():
    norm = ChannelLayerNorm(6)
    x = torch.randn(2, 3, 6, 5, 4) * 3 + 2
    y = norm(x)
    assert torch.allclose(y.mean(dim=2), torch.zeros(2, 3, 5, 4), atol=1e-5)
    assert torch.allclose(y.var(dim=2, unbiased=False), torch.ones(2, 3, 5, 4), atol=1e-3)
