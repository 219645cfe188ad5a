"""Camera motion on real frames: training windows whose neighbours carry new sub-pixel samples.

At the LR scale the model trains on, most of the training clips hardly move: consecutive LR
frames of the surveillance and sign-language clips differ by 40-55 dB PSNR, so their neighbours
repeat the centre frame and a network learns to ignore them (measured: the 5-frame model's
neighbours were worth 0.002 dB). A *motion window* is made from one real GT frame as a moving
camera would have filmed it: frame ``k`` is the frame translated by ``d_k`` LR pixels, a pan
at constant velocity plus hand-held jitter, resampled at HR (bicubic), then degraded with BI
like every other window. The centre frame is the real frame, untouched, so a single-frame
model sees the same centre frames whether or not motion windows are mixed in.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vsrt_cli.train.degrade import SCALE, bi_degrade

BORDER = 2.5  # LR px beyond the largest shift: the x1/4 bicubic kernel (+-2) and the resampler


def pan_offsets(
    rng: np.random.Generator, frames: int, max_speed: float, jitter: float
) -> np.ndarray:
    """``[frames, 2]`` (dx, dy) offsets in LR pixels, zero at the centre frame: a pan whose
    speed is uniform in ``[0, max_speed]`` px/frame in a uniform direction, plus independent
    Gaussian jitter (sigma ``jitter``, cut at 2 sigma) on every other frame."""
    centre = frames // 2
    angle = rng.uniform(0.0, 2 * math.pi)
    speed = rng.uniform(0.0, max_speed)
    velocity = speed * np.array([math.cos(angle), math.sin(angle)])
    steps = np.arange(frames)[:, None] - centre
    shake = np.clip(rng.normal(0.0, jitter, size=(frames, 2)), -2 * jitter, 2 * jitter)
    shake[centre] = 0.0
    return steps * velocity + shake


def margin_for(max_speed: float, jitter: float, frames: int) -> int:
    """LR pixels a window's crop needs around it so every shifted frame stays inside the source."""
    return math.ceil(max_speed * (frames // 2) + 2 * jitter + BORDER)


def translate(hr: torch.Tensor, offsets: np.ndarray) -> torch.Tensor:
    """``hr [3, H, W]`` float -> ``[T, 3, H, W]``: frame ``k`` samples ``hr`` at
    ``p + SCALE * offsets[k]`` (bicubic, border padding); an all-zero offset is an exact copy."""
    t = len(offsets)
    _, h, w = hr.shape
    shift = torch.from_numpy(SCALE * offsets).to(hr.dtype)  # HR pixels, (dx, dy)
    ys = torch.arange(h, dtype=hr.dtype)
    xs = torch.arange(w, dtype=hr.dtype)
    gx = (xs[None, None, :] + shift[:, 0, None, None]) * (2 / (w - 1)) - 1
    gy = (ys[None, :, None] + shift[:, 1, None, None]) * (2 / (h - 1)) - 1
    grid = torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)  # [T, H, W, 2]
    out = F.grid_sample(
        hr[None].expand(t, -1, -1, -1), grid, mode="bicubic", padding_mode="border",
        align_corners=True,
    )
    still = torch.from_numpy(~offsets.any(axis=1))
    out[still] = hr  # bicubic at integer positions is exact up to rounding; make it exact
    return out


def motion_window(
    gt: np.ndarray, rng: np.random.Generator, frames: int, patch: int, margin: int,
    max_speed: float, jitter: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A window filmed by a moving camera from one GT frame ``gt [4h, 4w, 3]`` uint8:
    ``(lr [T, p, p, 3], gt [T, 4p, 4p, 3])`` uint8, the same layout as a real window, and the
    camera's ``offsets [T, 2]`` (LR px; the exact flows follow from them).
    ``margin`` (LR px, at least :func:`margin_for`) fixes where the crop may fall, so windows
    of any length take their centre frames from the same places."""
    m = margin
    if m < margin_for(max_speed, jitter, frames):
        raise ValueError(f"margin {m} is too small for {frames} frames at {max_speed} px/frame")
    size = patch + 2 * m
    h, w = gt.shape[0] // SCALE, gt.shape[1] // SCALE
    if min(h, w) < size:
        raise ValueError(f"a {h}x{w} LR frame is smaller than the {size} px a motion window needs")
    y, x = rng.integers(h - size + 1), rng.integers(w - size + 1)
    crop = gt[SCALE * y : SCALE * (y + size), SCALE * x : SCALE * (x + size)]
    offsets = pan_offsets(rng, frames, max_speed, jitter)
    return (*film(crop, offsets, m), offsets)


def film(crop: np.ndarray, offsets: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """GT ``crop [4H, 4W, 3]`` uint8 seen from ``offsets [T, 2]`` (LR px): the BI-degraded
    window without its ``margin`` (LR px) on every side, ``(lr [T, H-2m, W-2m, 3],
    gt [T, 4(H-2m), 4(W-2m), 3])`` uint8."""
    hr = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float()
    moved = translate(hr, offsets)
    moved = moved.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    m = margin
    h, w = moved.shape[1] // SCALE - m, moved.shape[2] // SCALE - m  # inner ends, LR px
    lr = bi_degrade(moved)[:, m:h, m:w]
    gt = moved[:, SCALE * m : SCALE * h, SCALE * m : SCALE * w]
    return np.ascontiguousarray(lr), np.ascontiguousarray(gt)
