"""SPyNet pretraining pieces: synthetic pairs really are related by their flow; the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsrt_cli.model.layers import flow_warp
from vsrt_cli.model.spynet import SPyNet
from vsrt_cli.train.data import Sequence
from vsrt_cli.train.flow import (
    end_point_error, init_spynet, multiscale_epe, pyramid_flows, random_flow, synthetic_pair,
)


def smooth_sequence(size: int = 232) -> Sequence:
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    rng = np.random.default_rng(0)
    img = np.zeros((size, size, 3))
    for _ in range(6):
        fy, fx, ph = rng.uniform(0.01, 0.05, 2).tolist() + [rng.uniform(0, 6)]
        img += rng.uniform(0, 1, 3) * np.sin(fy * yy + fx * xx + ph)[..., None]
    img = (img - img.min()) / (img.max() - img.min()) * 255
    gt = img.round().astype(np.uint8)[None].repeat(2, axis=0)
    return Sequence("smooth", gt, gt[:, ::4, ::4])


def test_random_flow_is_bounded_and_smooth():
    rng = np.random.default_rng(3)
    for _ in range(10):
        f = random_flow(rng, 32, 4.0, 1.5)
        assert f.shape == (2, 32, 32)
        assert f.abs().max() < 4.0 + 3.0 + 0.02 * 16 * 6
        assert (f[:, 1:] - f[:, :-1]).abs().max() < 1.0  # smooth: small steps between pixels


def test_synthetic_pair_is_explained_by_its_flow():
    seq = smooth_sequence()
    rng = np.random.default_rng(1)
    explained, unexplained = [], []
    for _ in range(6):
        ref, supp, flow = synthetic_pair(seq, rng, 32, 3.0, 1.0)
        assert ref.shape == supp.shape == (3, 32, 32) and flow.shape == (2, 32, 32)
        inner = (slice(None), slice(6, -6), slice(6, -6))
        warped = flow_warp(supp[None], flow[None], padding_mode="border")[0]
        if flow.abs().max() > 0.5:
            explained.append((warped - ref)[inner].abs().mean().item())
            unexplained.append((supp - ref)[inner].abs().mean().item())
    assert explained and np.mean(explained) < 0.25 * np.mean(unexplained)


def test_pyramid_flows_end_in_compute_flow():
    torch.manual_seed(0)
    net = SPyNet()
    ref, supp = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        flows = pyramid_flows(net, ref, supp)
        assert [f.shape[-1] for f in flows] == [2, 4, 8, 16, 32, 64]
        assert torch.allclose(flows[-1], net.compute_flow(ref, supp), atol=1e-5)


def test_end_point_error_and_multiscale_loss():
    pred = torch.zeros(1, 2, 8, 8)
    target = torch.stack([torch.full((8, 8), 3.0), torch.full((8, 8), 4.0)])[None]
    assert end_point_error(pred, target).item() == pytest.approx(5.0)
    pyramid = [target[..., :: 8 // s, :: 8 // s] * s / 8 for s in (2, 4, 8)]
    assert multiscale_epe(pyramid, target).item() == pytest.approx(0.0, abs=1e-3)


def test_fresh_spynet_starts_near_zero_flow():
    torch.manual_seed(0)
    net = SPyNet()
    init_spynet(net)
    with torch.no_grad():
        flow = net(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert flow.abs().max() < 0.5
