"""The split, decoding, aligned sampling with augmentation, and the fixed validation windows."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import shared_path
from vsrt_cli.train.data import (
    TRAIN_SOURCES, VAL_SOURCES, Sequence, WindowSampler, decode_sequence, decode_video,
    sequence_paths, val_windows,
)


def coded_sequence(name: str, frames: int, h: int, w: int) -> Sequence:
    """LR pixel (t, y, x) holds the values (t, y, x); GT holds the same in every 4x4 block."""
    t, y, x = np.meshgrid(np.arange(frames), np.arange(h), np.arange(w), indexing="ij")
    lr = np.stack([t, y, x], axis=-1).astype(np.uint8)
    gt = lr.repeat(4, axis=1).repeat(4, axis=2)
    return Sequence(name, gt, lr)


def test_split_is_disjoint_and_holds_out_two_kinds():
    assert not set(TRAIN_SOURCES) & set(VAL_SOURCES)
    assert len(VAL_SOURCES) >= 2
    root = shared_path("data", "train")
    paths = sequence_paths(root, {**TRAIN_SOURCES, **VAL_SOURCES})
    assert all(p.exists() for _, p in paths)
    assert len([n for n, _ in paths if n.startswith("intel_asl_gestures/")]) == 20


def test_decode_a_real_clip():
    clip = shared_path("data", "test", "derived", "bbb_1s_320x180_h264_aac.mp4")
    frames = decode_video(clip, max_frames=5)
    assert frames.shape == (5, 180, 320, 3) and frames.dtype == np.uint8
    assert frames.std() > 10  # real content, not a blank frame


def test_decode_a_png_folder_in_order():
    folder = shared_path("data", "train", "sintel_ambush1_frames")
    frames = decode_sequence(folder)
    assert frames.shape == (4, 436, 1024, 3)
    assert not np.array_equal(frames[0], frames[1])


def test_samples_are_aligned_under_every_augmentation():
    sampler = WindowSampler([coded_sequence("a/x", 9, 20, 24), coded_sequence("b/y", 6, 12, 12)], 5, 8)
    rng = np.random.default_rng(0)
    reversed_seen = transposed_seen = False
    for _ in range(64):
        lr, gt, _, quant = sampler.sample(rng)
        assert lr.shape == (5, 8, 8, 3) and gt.shape == (5, 32, 32, 3) and quant == 0.0  # BI: clean
        assert np.array_equal(gt[:, ::4, ::4], lr) and np.array_equal(gt[:, 3::4, 3::4], lr)
        steps = np.diff(lr[:, 0, 0, 0].astype(int))
        assert np.all(steps == steps[0]) and abs(steps[0]) == 1  # consecutive frames
        reversed_seen |= steps[0] == -1
        transposed_seen |= lr[0, 0, 1, 1] != lr[0, 0, 0, 1]  # y grows along the width axis
    assert reversed_seen and transposed_seen


def test_batch_layout_and_reproducibility():
    sampler = WindowSampler([coded_sequence("a/x", 9, 20, 24)], 3, 8)
    lr, gt, flows, quant = sampler.batch(np.random.default_rng(5), 2)
    assert flows is None and quant.tolist() == [0.0, 0.0]
    assert tuple(lr.shape) == (2, 3, 3, 8, 8) and tuple(gt.shape) == (2, 3, 3, 32, 32)
    assert 0 <= lr.min() and lr.max() <= 1
    lr2, _, _, _ = sampler.batch(np.random.default_rng(5), 2)
    assert (lr == lr2).all()


def test_a_share_of_windows_hides_its_quantiser_and_the_rest_is_unchanged():
    seqs = [coded_sequence("a/x", 9, 20, 24)]
    told = WindowSampler(seqs, 3, 8)
    hiding = WindowSampler(seqs, 3, 8, hide_quant=0.5)
    hidden = 0
    for k in range(40):
        lr_t, gt_t, _, q_t = told.sample(np.random.default_rng(k))
        lr_h, gt_h, _, q_h = hiding.sample(np.random.default_rng(k))
        assert np.array_equal(lr_t, lr_h) and np.array_equal(gt_t, gt_h) and q_t == 0.0  # same windows
        hidden += bool(np.isnan(q_h))
    assert 10 <= hidden <= 30


def test_sampler_skips_sequences_too_short_or_too_small():
    with pytest.raises(ValueError, match="no sequence"):
        WindowSampler([coded_sequence("a/x", 4, 20, 20), coded_sequence("b/y", 9, 6, 20)], 5, 8)


def test_val_windows_are_fixed_centre_crops():
    seq = coded_sequence("car/clip", 20, 30, 45)
    wins = val_windows([seq], 5, 3, (16, 100), 8)
    assert [w.name for w in wins] == ["car/clip@0", "car/clip@8", "car/clip@15"]
    w = wins[1]
    assert tuple(w.lr.shape) == (5, 3, 16, 40) and tuple(w.gt.shape) == (5, 3, 64, 160)
    assert round(w.lr[0, 1, 0, 0].item() * 255) == (30 - 16) // 2  # centred rows
    assert round(w.lr[0, 0, 0, 0].item() * 255) == 8
