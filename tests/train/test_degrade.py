"""MATLAB-style bicubic resize: constants, linearity, the kernel's known weights, torch's AA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vsrt_cli.train.degrade import (
    bi_degrade, bicubic_upscale, crop_to_multiple, cubic, imresize, output_length, resize_matrix,
)


def test_cubic_kernel_values():
    x = torch.tensor([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.5], dtype=torch.float64)
    expected = [1.0, 0.8671875, 0.2265625, 0.0, -0.0703125, -0.0234375, 0.0, 0.0]
    assert torch.allclose(cubic(x), torch.tensor(expected, dtype=torch.float64))


def test_halving_an_impulse_gives_the_widened_kernel():
    # x1/2 with antialiasing: output pixel i sits at input 2i + 0.5 (0-based); its weights are
    # 0.5 * cubic(0.5 * d) for the eight inputs at distance d = +-0.5, +-1.5, +-2.5, +-3.5.
    m = resize_matrix(32, 0.5)
    row = m[8, 12:22].numpy()  # centre 16.5
    half = 0.5 * np.array([-0.0234375, -0.0703125, 0.2265625, 0.8671875])
    assert np.allclose(row[1:9], np.concatenate([half, half[::-1]]))
    assert row[0] == 0 and row[9] == 0


@pytest.mark.parametrize("scale", [0.25, 0.5, 4.0])
def test_constant_stays_constant_and_sizes_follow_matlab(scale):
    x = torch.full((2, 3, 13, 22), 0.37, dtype=torch.float64)
    y = imresize(x, scale)
    assert y.shape[-2:] == (output_length(13, scale), output_length(22, scale))
    assert torch.allclose(y, torch.full_like(y, 0.37))
    assert output_length(13, 0.25) == 4  # ceil, as MATLAB


def test_linear():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 20, 24, generator=g, dtype=torch.float64), torch.rand(3, 20, 24, generator=g, dtype=torch.float64)
    assert torch.allclose(imresize(2 * a - 3 * b, 0.25), 2 * imresize(a, 0.25) - 3 * imresize(b, 0.25))


def test_interior_matches_torch_antialiased_bicubic():
    # PyTorch's antialias=True bicubic uses the same a=-0.5 kernel widened by 1/scale; only the
    # border treatment differs (it renormalises, MATLAB mirrors), so the interiors agree.
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = imresize(x, 0.25)
    ref = F.interpolate(x, scale_factor=0.25, mode="bicubic", antialias=True, align_corners=False)
    assert torch.allclose(ours[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2], atol=1e-6)
    assert not torch.allclose(ours[..., 0, :], ref[..., 0, :], atol=1e-6)  # mirrored border


def test_upscale_interior_matches_torch_bicubic():
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    # (torch's plain bicubic uses a = -0.75; its antialias path is the a = -0.5 kernel)
    ref = F.interpolate(x, scale_factor=4, mode="bicubic", antialias=True, align_corners=False)
    assert torch.allclose(bicubic_upscale(x)[..., 8:-8, 8:-8], ref[..., 8:-8, 8:-8], atol=1e-9)


def test_mirrored_border_keeps_rows_normalised():
    m = resize_matrix(7, 0.25)
    assert torch.allclose(m.sum(dim=1), torch.ones(m.shape[0], dtype=torch.float64))
    assert m.shape == (2, 7)


def test_bi_degrade_on_uint8_frames():
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 17, 30, 3), dtype=np.uint8)
    gt = crop_to_multiple(frames)
    assert gt.shape == (2, 16, 28, 3)
    lr = bi_degrade(gt)
    assert lr.shape == (2, 4, 7, 3) and lr.dtype == np.uint8
    assert abs(lr.astype(float).mean() - gt.astype(float).mean()) < 3  # mean-preserving
    with pytest.raises(ValueError, match="multiple of 4"):
        bi_degrade(frames)
