"""PSNR / SSIM against values known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vsrt_cli.inspect.metrics import gaussian_kernel, psnr, rgb_to_y, ssim, to_levels


def noise_image(seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def test_identical_images_score_inf_and_one():
    img = noise_image()
    assert psnr(img, img) == math.inf
    assert psnr(img, img, y=True) == math.inf
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert ssim(img, img, y=True) == pytest.approx(1.0, abs=1e-12)


def test_psnr_of_a_known_error():
    a = np.full((16, 16, 3), 100, dtype=np.uint8)
    b = a.copy()
    b[::2] += 5
    b[1::2] -= 5  # every pixel off by exactly 5 -> MSE 25
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))
    # the same error on every channel is the same error on Y scaled by the Y weights' sum
    y_gain = (65.481 + 128.553 + 24.966) / 255
    assert psnr(a, b, y=True) == pytest.approx(10 * math.log10(255**2 / (25 * y_gain**2)))


def test_floats_are_rounded_to_uint8_levels():
    a = np.full((12, 12, 3), 100, dtype=np.uint8)
    near = a / 255.0 + 0.4 / 255  # rounds back to 100
    assert psnr(near, a) == math.inf
    assert np.array_equal(to_levels(np.array([[[-0.5, 0.5, 2.0]]])), [[[0.0, 128.0, 255.0]]])


def test_y_matches_matlab_rgb2ycbcr_range():
    black, white = np.zeros((1, 1, 3)), np.full((1, 1, 3), 255.0)
    assert rgb_to_y(black).item() == pytest.approx(16.0)
    assert rgb_to_y(white).item() == pytest.approx(235.0)
    red = np.array([[[255.0, 0, 0]]])
    assert rgb_to_y(red).item() == pytest.approx(16 + 65.481)


def test_ssim_of_a_constant_offset_is_the_luminance_term():
    a = np.full((20, 20, 3), 100, dtype=np.uint8)
    b = np.full((20, 20, 3), 120, dtype=np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 120 + c1) / (100**2 + 120**2 + c1)  # no variance: contrast term is 1
    assert ssim(a, b) == pytest.approx(expected, rel=1e-9)


def test_ssim_falls_with_noise_and_is_symmetric():
    clean = np.tile(np.linspace(0, 255, 48, dtype=np.uint8)[None, :, None], (48, 1, 3))
    rng = np.random.default_rng(1)
    light = np.clip(clean + rng.normal(0, 5, clean.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    assert 1 > ssim(clean, light) > ssim(clean, heavy) > 0
    assert ssim(clean, heavy) == pytest.approx(ssim(heavy, clean))
    assert psnr(clean, light) > psnr(clean, heavy)


def test_gaussian_window_and_crop_border():
    k = gaussian_kernel()
    assert k.shape == (11,) and k.sum() == pytest.approx(1.0) and k.argmax() == 5
    a = noise_image(2)
    b = a.copy()
    b[:4] = 0  # damage only inside the border
    assert psnr(a, b, crop_border=4) == math.inf
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(a, a[:-1])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[:10, :10], a[:10, :10])


# --- temporal consistency ---------------------------------------------------------------------

from vsrt_cli.inspect.metrics import seam_ratio, trusted_motion, warp, warping_error  # noqa: E402


def shifted_pair(dx: int = 2, size: int = 40):
    """A textured frame and the same scene moved ``dx`` pixels right, with the exact flows."""
    rng = np.random.default_rng(3)
    scene = rng.integers(0, 256, size=(size, size + dx, 3), dtype=np.uint8)
    prev, cur = scene[:, dx:], scene[:, :-dx]  # cur[p] = prev[p - (dx, 0)]: the scene moved right
    to_prev = np.zeros((size, size, 2))
    to_prev[..., 0] = -dx
    return prev, cur, to_prev, -to_prev


def test_warp_along_the_true_motion_explains_the_pair():
    prev, cur, to_prev, to_cur = shifted_pair()
    mask = trusted_motion(to_prev, to_cur)
    assert not mask[:, :2].any() and mask[:, 2:].all()  # what came in from outside is left out
    assert warping_error(prev, cur, to_prev, mask) == 0.0
    assert np.array_equal(warp(prev, np.zeros_like(to_prev)), prev.astype(np.float64))
    assert warping_error(prev, cur, np.zeros_like(to_prev), mask) > 20  # without motion: all change


def test_inconsistent_flow_is_not_trusted():
    _, _, to_prev, _ = shifted_pair()
    assert not trusted_motion(to_prev, np.zeros_like(to_prev))[:, 2:].any()


def test_seam_ratio():
    assert seam_ratio([1, 1, 3, 1, 1, 3], [False, False, True, False, False, True]) == pytest.approx(3.0)
    assert seam_ratio([1, 2], [True, True]) is None  # every pair across calls (--window-stride 1)
