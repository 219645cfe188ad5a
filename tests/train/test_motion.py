"""Camera-motion windows: offsets, exact resampling, the real centre frame, fixed validation pans."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsrt_cli.train.data import Motion, Sequence, WindowSampler, panned_val_windows
from vsrt_cli.train.degrade import bi_degrade
from vsrt_cli.train.motion import film, margin_for, motion_window, pan_offsets, translate


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB content ``[h, w, 3]`` uint8 (bicubic-upsampled noise)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g)
    up = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return (up[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def coded(h: int, w: int) -> np.ndarray:
    """GT whose red channel is the row and green the column: every crop names its position."""
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([y, x, (y + x) % 256], axis=-1).astype(np.uint8)


def test_pan_offsets_are_a_pan_through_the_untouched_centre():
    rng = np.random.default_rng(3)
    for _ in range(50):
        d = pan_offsets(rng, 5, max_speed=1.5, jitter=0.0)
        assert d.shape == (5, 2) and np.array_equal(d[2], [0.0, 0.0])
        steps = np.diff(d, axis=0)
        assert np.allclose(steps, steps[0]) and np.linalg.norm(steps[0]) <= 1.5
    shaken = pan_offsets(np.random.default_rng(4), 5, max_speed=0.0, jitter=0.5)
    assert np.array_equal(shaken[2], [0.0, 0.0]) and np.abs(shaken).max() <= 1.0
    assert np.abs(shaken).sum() > 0
    assert pan_offsets(np.random.default_rng(0), 1, 1.5, 0.35).tolist() == [[0.0, 0.0]]


def test_translate_by_whole_pixels_is_an_exact_shift():
    hr = torch.from_numpy(texture(64, 64)).permute(2, 0, 1).float()
    out = translate(hr, np.array([[0.0, 0.0], [1.0, 0.0], [0.0, -0.5]]))  # LR px: 4 and 2 HR px
    assert torch.equal(out[0], hr)
    assert torch.allclose(out[1][:, :, :-4], hr[:, :, 4:], atol=1e-3)  # x + 4: content moves left
    assert torch.allclose(out[2][:, 2:, :], hr[:, :-2, :], atol=1e-3)  # y - 2: content moves down


def test_film_of_a_whole_pixel_pan_gives_shifted_lr_frames():
    crop = texture(4 * 40, 4 * 40, seed=1)
    offsets = np.array([[-2.0, 0.0], [-1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    lr, gt = film(crop, offsets, margin=4)
    assert lr.shape == (5, 32, 32, 3) and gt.shape == (5, 128, 128, 3)
    assert np.array_equal(gt[2], crop[16:-16, 16:-16])  # the centre is the real frame
    assert np.array_equal(lr[2], bi_degrade(crop[None])[0, 4:-4, 4:-4])
    for k in (0, 1, 3, 4):
        s = k - 2  # frame k shows the content s LR px further right
        if s > 0:
            a, b = lr[k][:, :-s].astype(int), lr[2][:, s:].astype(int)
        else:
            a, b = lr[k][:, -s:].astype(int), lr[2][:, :s].astype(int)
        assert np.abs(a - b).max() <= 1  # rounding of the resampled GT
        assert not np.array_equal(lr[k], lr[2])


def test_motion_window_centre_frame_is_a_real_crop_at_the_same_place_for_any_length():
    gt = coded(4 * 60, 4 * 64)
    m = margin_for(1.5, 0.35, 5)
    one = motion_window(gt, np.random.default_rng(9), 1, 16, m, 1.5, 0.35)
    five = motion_window(gt, np.random.default_rng(9), 5, 16, m, 1.5, 0.35)
    assert one[0].shape == (1, 16, 16, 3) and five[0].shape == (5, 16, 16, 3)
    assert np.array_equal(one[1][0], five[1][2]) and np.array_equal(one[0][0], five[0][2])
    y0, x0 = int(five[1][2, 0, 0, 0]), int(five[1][2, 0, 0, 1])
    assert np.array_equal(five[1][2], gt[y0 : y0 + 64, x0 : x0 + 64])
    with pytest.raises(ValueError, match="too small"):
        motion_window(gt, np.random.default_rng(9), 5, 16, 2, 1.5, 0.35)


def test_sampler_mixes_motion_windows_only_from_large_enough_sequences():
    small = Sequence("s/a", np.repeat(coded(4 * 20, 4 * 20)[None], 6, 0), np.zeros((6, 20, 20, 3), np.uint8))
    big_gt = np.repeat(texture(4 * 48, 4 * 48)[None], 6, 0)
    big = Sequence("b/a", big_gt, bi_degrade(big_gt))
    sampler = WindowSampler([small, big], 5, 16, Motion(share=1.0))
    assert sampler.movable == {"b/a"}
    moved = 0
    for k in range(40):
        lr, gt, _, _ = sampler.sample(np.random.default_rng(k))
        assert lr.shape == (5, 16, 16, 3) and gt.shape == (5, 64, 64, 3)
        moved += int(not np.array_equal(lr[0], lr[2]))  # every real window here is static
    assert 10 < moved < 40  # big ones move (unless the pan is ~0), small ones never do


def test_panned_val_windows_are_fixed_and_centred_on_real_frames():
    gt = np.stack([texture(4 * 40, 4 * 72, seed=s) for s in range(6)])
    seq = Sequence("v/clip", gt, bi_degrade(gt))
    wins = panned_val_windows([seq], 5, 4, (24, 48), 8)
    again = panned_val_windows([seq], 5, 4, (24, 48), 8)
    assert [w.name for w in wins] == ["v/clip@0+pan0.25", "v/clip@2+pan0.5", "v/clip@3+pan0.75", "v/clip@5+pan1"]
    assert all(torch.equal(a.lr, b.lr) for a, b in zip(wins, again))
    w = wins[3]
    assert tuple(w.lr.shape) == (5, 3, 24, 48) and tuple(w.gt.shape) == (5, 3, 96, 192)
    m = margin_for(1.25, 0.0, 5)
    y, x = (40 - 24) // 2 - m, (72 - 48) // 2 - m
    expect = gt[5, 4 * (y + m) : 4 * (y + m + 24), 4 * (x + m) : 4 * (x + m + 48)]
    assert torch.equal(w.gt[2], torch.from_numpy(expect).permute(2, 0, 1).float() / 255)
    assert not torch.equal(w.lr[1], w.lr[2])
    assert np.hypot(*w.pan) == pytest.approx(1.0) and all(np.hypot(*v.pan) > 0 for v in wins)
