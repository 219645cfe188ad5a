"""Image quality metrics as the super-resolution literature computes them (pure numpy).

Images are ``[H, W, 3]`` RGB, either uint8 or float in [0, 1]; floats are clipped and rounded
to uint8 levels first, so a model output is scored as the image a user would save.
``y=True`` scores the luma of BT.601 as MATLAB's ``rgb2ycbcr`` defines it,
``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` (RGB in [0, 1], Y in [16, 235]); like BasicSR's
``calculate_psnr(test_y_channel=True)`` the Y values are not rounded again.
``crop_border`` pixels are dropped on every side before scoring (the usual choice is the scale).
SSIM is Wang et al. 2004: 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
L = 255, "valid" filtering, mean over the map (and over channels for RGB).
"""

from __future__ import annotations

import numpy as np

PEAK = 255.0
Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def to_levels(image: np.ndarray) -> np.ndarray:
    """``[H, W, C]`` uint8 or float in [0, 1] -> float64 in [0, 255], rounded to integers."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float64)
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"images must be uint8 or float in [0, 1], got dtype {image.dtype}")
    return np.round(np.clip(image.astype(np.float64), 0.0, 1.0) * PEAK)


def rgb_to_y(levels: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` RGB in [0, 255] -> ``[H, W, 1]`` BT.601 luma in [16, 235] (float64)."""
    return (levels @ Y_WEIGHTS + 16.0)[..., None]


def _prepare(image: np.ndarray, y: bool, crop_border: int) -> np.ndarray:
    levels = to_levels(image)
    if levels.ndim != 3 or levels.shape[2] != 3:
        raise ValueError(f"images must be [H, W, 3], got shape {levels.shape}")
    if crop_border:
        levels = levels[crop_border:-crop_border, crop_border:-crop_border]
    return rgb_to_y(levels) if y else levels


def _pair(a: np.ndarray, b: np.ndarray, y: bool, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    if np.shape(a) != np.shape(b):
        raise ValueError(f"images differ in shape: {np.shape(a)} vs {np.shape(b)}")
    return _prepare(a, y, crop_border), _prepare(b, y, crop_border)


def psnr(a: np.ndarray, b: np.ndarray, *, y: bool = False, crop_border: int = 0) -> float:
    """PSNR in dB with peak 255; ``inf`` for identical images."""
    x, z = _pair(a, b, y, crop_border)
    mse = float(np.mean((x - z) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(PEAK**2 / mse)


def gaussian_kernel(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian ``[size]``; the 2-D window is its outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _filter_valid(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of ``[H, W]`` with ``outer(kernel, kernel)``."""
    n = len(kernel)
    h, w = img.shape
    rows = sum(kernel[i] * img[i : h - n + 1 + i] for i in range(n))
    return sum(kernel[j] * rows[:, j : w - n + 1 + j] for j in range(n))


def _ssim_channel(x: np.ndarray, z: np.ndarray) -> float:
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    k = gaussian_kernel()
    mu_x, mu_z = _filter_valid(x, k), _filter_valid(z, k)
    var_x = _filter_valid(x * x, k) - mu_x**2
    var_z = _filter_valid(z * z, k) - mu_z**2
    cov = _filter_valid(x * z, k) - mu_x * mu_z
    num = (2 * mu_x * mu_z + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_z**2 + c1) * (var_x + var_z + c2)
    return float(np.mean(num / den))


def ssim(a: np.ndarray, b: np.ndarray, *, y: bool = False, crop_border: int = 0) -> float:
    """Mean SSIM (1.0 for identical images); images must be at least 11x11 after cropping."""
    x, z = _pair(a, b, y, crop_border)
    if min(x.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {x.shape[:2]}")
    return float(np.mean([_ssim_channel(x[..., c], z[..., c]) for c in range(x.shape[2])]))


# --- temporal consistency -----------------------------------------------------------------------
# Flicker is measured as a warping error (Lai et al., "Learning Blind Video Temporal Consistency",
# ECCV 2018): frame t-1 is moved onto frame t along the *reference's* motion, and what still
# differs is change the motion does not explain. Pixels the motion cannot be trusted at (occluded,
# or flowing out of the frame) are left out by the forward-backward check of Sundaram et al. 2010.
# Flows are ``[H, W, 2]`` in pixels, channel 0 horizontal: ``warp(prev, flow)[p] = prev[p + flow(p)]``.


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``[H, W, C]`` sampled bilinearly at ``p + flow(p)`` (edge pixels repeat outside)."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx = np.clip(xs + flow[..., 0], 0, w - 1)
    sy = np.clip(ys + flow[..., 1], 0, h - 1)
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    img = image.astype(np.float64)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def trusted_motion(to_prev: np.ndarray, to_cur: np.ndarray) -> np.ndarray:
    """``[H, W]`` bool: pixels of frame t whose flow to t-1 (``to_prev``) lands inside the frame
    and comes back (``to_cur``, the flow of t-1 to t) to where it started, within
    ``0.01 (|f|^2 + |b|^2) + 0.5`` px^2; elsewhere (occlusions, flow errors) is left out."""
    h, w = to_prev.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx, sy = xs + to_prev[..., 0], ys + to_prev[..., 1]
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    back = warp(to_cur, to_prev)
    loop = np.sum((to_prev + back) ** 2, axis=-1)
    bound = 0.01 * (np.sum(to_prev**2, axis=-1) + np.sum(back**2, axis=-1)) + 0.5
    return inside & (loop <= bound)


def warping_error(prev: np.ndarray, cur: np.ndarray, to_prev: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute luma difference (BT.601 Y, 0-255 levels) between frame t (``cur``) and frame
    t-1 warped onto it along ``to_prev``, over ``mask``; 0 for a perfectly consistent pair."""
    if not mask.any():
        return float("nan")
    moved = rgb_to_y(warp(to_levels(prev), to_prev))[..., 0]
    here = rgb_to_y(to_levels(cur))[..., 0]
    return float(np.mean(np.abs(here - moved)[mask]))


def seam_ratio(errors: list[float], boundary: list[bool]) -> float | None:
    """Mean warping error of frame pairs that straddle two model calls over that of pairs from
    one call: 1.0 = no seam; above 1, frames jump where calls meet. None without both kinds."""
    err = np.asarray(errors, dtype=np.float64)
    at = np.asarray(boundary, dtype=bool)
    ok = np.isfinite(err)
    across, within = err[at & ok], err[~at & ok]
    if not len(across) or not len(within) or within.mean() == 0:
        return None
    return float(across.mean() / within.mean())
