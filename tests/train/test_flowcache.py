"""Cached whole-frame flows: layout, the window's ends, and augmentations that keep them true;
and flows estimated on each degraded window instead."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vsrt_cli.model.dis import DISFlow
from vsrt_cli.model.layers import flow_warp
from vsrt_cli.train.data import Sequence, WindowSampler, augment
from vsrt_cli.train.degrade import bi_degrade
from vsrt_cli.train.flowcache import (
    augment_flow, cached_flows, pan_flows, sequence_flows, to_flow_tensors, window_ends_still,
)


class IndexFlow(nn.Module):
    """A stand-in SPyNet for frames of constant value ``index``: flow x = supp - ref indices."""

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        d = (supp - ref)[:, :1] * 255
        return torch.cat([d, -2 * d], dim=1)


def constant_frames(n: int, h: int = 6, w: int = 10) -> np.ndarray:
    return np.stack([np.full((h, w, 3), j, np.uint8) for j in range(n)])


def test_sequence_flows_put_each_pair_in_its_channels(tmp_path):
    flows = sequence_flows(IndexFlow(), constant_frames(9))
    assert flows.shape == (9, 6, 10, 4) and flows.dtype == np.float16
    assert np.all(flows[1:, ..., 0] == -1) and np.all(flows[1:, ..., 1] == 2)  # to the previous
    assert np.all(flows[:-1, ..., 2] == 1) and np.all(flows[:-1, ..., 3] == -2)  # to the next
    assert np.all(flows[0, ..., :2] == 0) and np.all(flows[-1, ..., 2:] == 0)  # sequence ends
    file = tmp_path / "f.npy"
    first = cached_flows(IndexFlow(), constant_frames(9), file)
    again = cached_flows(None, None, file)  # read back, not recomputed
    assert np.array_equal(first, again)


def test_window_ends_are_still_inside_a_longer_sequence():
    flows = sequence_flows(IndexFlow(), constant_frames(9))
    window = window_ends_still(flows[2:7])
    assert np.all(window[0, ..., :2] == 0) and np.all(window[-1, ..., 2:] == 0)
    assert np.all(window[1:, ..., 0] == -1) and np.all(window[:-1, ..., 2] == 1)


def shifted_window(offsets: np.ndarray, size: int = 24) -> np.ndarray:
    """``[T, size, size, 3]`` views of one smooth random image, frame k moved by offsets[k]."""
    rng = np.random.default_rng(0)
    big = rng.random((size + 16, size + 16, 3))
    for _ in range(3):  # smooth it, so bilinear warping is accurate
        big = (big + np.roll(big, 1, 0) + np.roll(big, 1, 1) + np.roll(big, (1, 1), (0, 1))) / 4
    frames = []
    for dx, dy in offsets.astype(int):
        frames.append(big[8 + dy : 8 + dy + size, 8 + dx : 8 + dx + size])
    return np.stack(frames).astype(np.float32)


def alignment_error(frames: np.ndarray, flow: np.ndarray) -> float:
    """Mean error of each frame's neighbours warped onto it by ``flow``, 5 px border ignored."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    to_prev, to_next = to_flow_tensors(flow)
    errors = []
    for j in range(len(frames)):
        for k, f in ((j - 1, to_prev[j]), (j + 1, to_next[j])):
            if 0 <= k < len(frames):
                warped = flow_warp(x[k : k + 1], f[None])[0]
                errors.append(float((warped - x[j])[:, 5:-5, 5:-5].abs().mean()))
    return float(np.mean(errors))


def test_exact_pan_flows_align_neighbours_under_every_augmentation():
    offsets = np.array([[-2, 1], [-1, 0], [0, 0], [2, -1], [3, -3]], dtype=np.float64)
    frames = shifted_window(offsets)
    flow = pan_flows(offsets, 24, 24)
    assert alignment_error(frames, flow) < 1e-5
    assert alignment_error(frames, np.zeros_like(flow)) > 0.01  # the scene does move
    for draw in np.ndindex(2, 2, 2, 2):
        lr, _, moved = augment(frames, frames, np.random.default_rng(0), flow)  # any draw
        flipped = frames
        hflip, vflip, transpose, reverse = draw
        if hflip:
            flipped = flipped[:, :, ::-1]
        if vflip:
            flipped = flipped[:, ::-1]
        if transpose:
            flipped = flipped.transpose(0, 2, 1, 3)
        if reverse:
            flipped = flipped[::-1]
        assert alignment_error(flipped, augment_flow(flow, *draw)) < 1e-5, draw
        assert alignment_error(lr, moved) < 1e-5


def test_sampler_gives_each_window_its_own_flows():
    gt = np.repeat(np.arange(12, dtype=np.uint8)[:, None, None, None], 4 * 16, 1).repeat(4 * 20, 2).repeat(3, 3)
    lr = gt[:, ::4, ::4]
    seq = Sequence("a/x", gt, lr, sequence_flows(IndexFlow(), lr))
    sampler = WindowSampler([seq], 5, 8, flows=True)
    for k in range(16):
        lr_w, _, flow, _ = sampler.sample(np.random.default_rng(k))
        assert flow.shape == (5, 8, 8, 4)
        assert np.all(flow[0, ..., :2] == 0) and np.all(flow[-1, ..., 2:] == 0)
        # whichever way time runs in the window, the next frame's index differs by flow x
        step = int(lr_w[1, 0, 0, 0]) - int(lr_w[0, 0, 0, 0])
        assert abs(step) == 1
    batch = sampler.batch(np.random.default_rng(0), 3)
    assert tuple(batch[2][0].shape) == (3, 5, 2, 8, 8) and tuple(batch[2][1].shape) == (3, 5, 2, 8, 8)


def moving_scene(frames: int, lr_size: int, speed: int) -> np.ndarray:
    """``[frames, 4 lr_size, 4 lr_size, 3]`` uint8 GT of one smooth textured scene panning
    ``speed`` LR px per frame to the left (x)."""
    rng = np.random.default_rng(5)
    side = 4 * (lr_size + speed * frames)
    big = rng.random((side, side, 3))
    for _ in range(12):
        big = (big + np.roll(big, 1, 0) + np.roll(big, 1, 1) + np.roll(big, (1, 1), (0, 1))) / 4
    big = (big - big.min()) / (big.max() - big.min()) * 255
    n = 4 * lr_size
    return np.stack([big[:n, 4 * speed * k : 4 * speed * k + n] for k in range(frames)]).round().astype(np.uint8)


class RecordingDIS(DISFlow):
    """DIS that remembers the frame sizes it was asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(ref.shape[-2:]))
        return super().forward(ref, supp)


def test_degraded_windows_get_flows_estimated_on_themselves_with_context():
    gt = moving_scene(7, 64, 1)
    lr = bi_degrade(gt)
    seq = Sequence("a/x", gt, lr, np.zeros((*lr.shape[:3], 4), dtype=np.float16))  # cache unused
    estimator = RecordingDIS()
    sampler = WindowSampler([seq], 5, 16, flows=True, degradation="real", clean_share=0.0, flow_net=estimator)
    better = 0
    for k in range(8):
        lr_w, gt_w, flow, _ = sampler.sample(np.random.default_rng(k))
        assert lr_w.shape == (5, 16, 16, 3) and gt_w.shape == (5, 64, 64, 3) and flow.shape == (5, 16, 16, 4)
        assert np.all(flow[0, ..., :2] == 0) and np.all(flow[-1, ..., 2:] == 0)
        frames = lr_w.astype(np.float32) / 255
        better += alignment_error(frames, flow) < 0.7 * alignment_error(frames, np.zeros_like(flow))
        again = sampler.sample(np.random.default_rng(k))  # deterministic under the seed
        assert np.array_equal(again[0], lr_w) and np.array_equal(again[2], flow)
    # the flows are the degraded frames' own, and they align them (the scene pans 1 px/frame)
    assert better >= 6
    # estimated on the window with 16 px of context on each side, not on the 16 px patch
    assert estimator.sizes and set(estimator.sizes) == {(48, 48)}


def test_degraded_flows_need_a_real_run_with_a_frozen_flow():
    from vsrt_cli.errors import ConfigError
    from vsrt_cli.train.config import TrainConfig

    with pytest.raises(ConfigError, match="flows-from degraded"):
        TrainConfig(stage="main", minutes=1, flows_from="degraded")
    with pytest.raises(ConfigError, match="flows-from degraded"):
        TrainConfig(stage="main", minutes=1, degradation="real", flow_lr_mul=0.5, flows_from="degraded")
    real = TrainConfig(stage="main", minutes=1, degradation="real")
    assert real.flows_from == "clean"  # old states keep theirs
    switched = TrainConfig(stage="main", minutes=1, degradation="real", flows_from="degraded")
    assert switched.resume_key() == real.resume_key()  # a resume may switch the flows' source
    gt = moving_scene(5, 24, 1)
    seq = Sequence("a/x", gt, bi_degrade(gt), np.zeros((5, 24, 24, 4), dtype=np.float16))
    with pytest.raises(ValueError, match="degraded windows"):
        WindowSampler([seq], 5, 16, flows=True, flow_net=DISFlow())
