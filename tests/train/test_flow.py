"""SPyNet pretraining pieces: synthetic pairs really are related by their flow; the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsrt_cli.model.layers import flow_warp
from vsrt_cli.model.spynet import IMAGENET_MEAN, IMAGENET_STD, SPyNet
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


def noise_sequence(size: int = 232) -> Sequence:
    """Isotropic texture (blurred noise), so x and y gradients are independent."""
    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.normal(size=(1, 3, size, size))).float()
    u = torch.arange(-12, 13, dtype=torch.float32)
    g = torch.exp(-u.square() / (2 * 4.0**2))
    g = (g / g.sum()).view(1, 1, 1, -1).expand(3, 1, 1, -1)
    img = torch.nn.functional.conv2d(img, g, padding=(0, 12), groups=3)
    img = torch.nn.functional.conv2d(img, g.transpose(-1, -2), padding=(12, 0), groups=3)[0]
    img = (img - img.min()) / (img.max() - img.min()) * 255
    gt = img.permute(1, 2, 0).round().numpy().astype(np.uint8)[None].repeat(2, axis=0)
    return Sequence("noise", gt, gt[:, ::4, ::4])


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
    assert flow.abs().max() == 0.0  # exactly zero: the last conv of every level starts at 0


def lk_features(net: SPyNet, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
    """The finest level's designed x/y channels ``Px``, ``Py`` after its fourth conv."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = torch.cat([(ref - mean) / std, (supp - mean) / std, torch.zeros_like(ref[:, :2])], dim=1)
    for conv in net.levels[-1].convs[:4]:
        x = torch.relu(conv(x))
    return torch.stack((x[:, 0] - x[:, 1], x[:, 2] - x[:, 3]), dim=1)


def test_fresh_spynet_features_carry_the_flow_direction():
    # The bug this init fixes: from random features SPyNet never learned the *sign* of a flow.
    torch.manual_seed(0)
    net = SPyNet()
    init_spynet(net)
    seq = noise_sequence()
    rng = np.random.default_rng(2)
    agree = total = 0
    for _ in range(8):
        ref, supp, flow = synthetic_pair(seq, rng, 32, 1.0, 0.3)
        with torch.no_grad():
            feat = lk_features(net, ref[None], supp[None])[0, :, 8:-8, 8:-8].mean(dim=(1, 2))
        truth = flow[:, 8:-8, 8:-8].mean(dim=(1, 2))
        for axis in range(2):
            if truth[axis].abs() > 0.3:
                total += 1
                agree += int(torch.sign(feat[axis]) == torch.sign(truth[axis]))
    assert total >= 4 and agree == total
