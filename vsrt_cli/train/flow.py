"""Supervised SPyNet pretraining on synthetic pairs with known flow.

No pretrained flow weights exist for this project, so pairs are made from real frames: a random
smooth flow ``f`` (global affine motion plus a bicubically upsampled coarse random field) is
applied to a GT crop at HR (``4 f`` upsampled), and both the warped and the original crop are
degraded with BI, so the pair looks like two LR video frames whose true flow is ``f``:
``ref = warp(supp, f)``, which is exactly what ``SPyNet(ref, supp)`` must return.
The loss is the end-point error at every pyramid level (coarse-to-fine supervision).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vsrt_cli.model.layers import flow_warp
from vsrt_cli.model.spynet import PYRAMID_LEVELS, SPyNet
from vsrt_cli.train.data import Sequence, to_tensor
from vsrt_cli.train.degrade import SCALE, imresize


def random_flow(
    rng: np.random.Generator, size: int, max_shift: float, max_local: float
) -> torch.Tensor:
    """A smooth ``[2, size, size]`` flow in pixels: translation + small affine + local field."""
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij"
    )
    shift = rng.uniform(-max_shift, max_shift, size=2)
    affine = rng.normal(0.0, 0.02, size=(2, 2)) * size / 2  # pixels at the crop's edge
    flow = torch.stack(
        (
            shift[0] + affine[0, 0] * xs + affine[0, 1] * ys,
            shift[1] + affine[1, 0] * xs + affine[1, 1] * ys,
        )
    )
    grid = int(rng.integers(2, 6))
    coarse = torch.from_numpy(rng.normal(0.0, max_local / 2, size=(1, 2, grid, grid))).float()
    local = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)[0]
    if rng.random() < 0.1:  # some pairs without motion: window ends feed self-pairs
        return torch.zeros(2, size, size)
    return (flow + local.clamp(-2 * max_local, 2 * max_local)).float()


def synthetic_pair(
    seq: Sequence, rng: np.random.Generator, size: int, max_shift: float, max_local: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ref, supp, flow)``: LR ``[3, size, size]`` x2 in [0, 1] and the true ``[2, size, size]``.

    The HR crop carries a margin so the warp rarely samples outside it."""
    margin = int(np.ceil(max_shift + 2 * max_local + size * 0.06)) + 2
    hr_size = SCALE * (size + 2 * margin)
    h, w = seq.gt.shape[1:3]
    if min(h, w) < hr_size:
        raise ValueError(f"{seq.name}: frames {h}x{w} smaller than the {hr_size} px crop")
    t = rng.integers(len(seq))
    y, x = rng.integers(h - hr_size + 1), rng.integers(w - hr_size + 1)
    hr = to_tensor(np.asarray(seq.gt[t, y : y + hr_size, x : x + hr_size]))
    if rng.random() < 0.5:
        hr = hr.flip(-1)
    if rng.random() < 0.5:
        hr = hr.transpose(-1, -2)
    flow = random_flow(rng, size, max_shift, max_local)
    lr_flow = F.pad(flow[None], (margin,) * 4, mode="replicate")
    hr_flow = SCALE * F.interpolate(lr_flow, scale_factor=SCALE, mode="bilinear", align_corners=False)
    warped = flow_warp(hr[None], hr_flow, padding_mode="border")[0]
    both = torch.stack((warped, hr))
    lr = imresize(both, 1 / SCALE).clamp_(0, 1).mul_(255).round_().div_(255)
    lr = lr[..., margin : margin + size, margin : margin + size]
    return lr[0], lr[1], flow


def synthetic_batch(
    seqs: list[Sequence], rng: np.random.Generator, batch: int, size: int,
    max_shift: float, max_local: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ref [B,3,s,s], supp [B,3,s,s], flow [B,2,s,s])`` from uniformly chosen sequences."""
    pairs = [
        synthetic_pair(seqs[rng.integers(len(seqs))], rng, size, max_shift, max_local)
        for _ in range(batch)
    ]
    return tuple(torch.stack(p) for p in zip(*pairs))  # type: ignore[return-value]


def pyramid_flows(spynet: SPyNet, ref: torch.Tensor, supp: torch.Tensor) -> list[torch.Tensor]:
    """The flow after every pyramid level, coarsest first (the last equals
    ``spynet.compute_flow``); ``[N, 3, H, W]`` with H, W multiples of 32."""
    ref_pyr = [(ref - spynet.mean) / spynet.std]
    supp_pyr = [(supp - spynet.mean) / spynet.std]
    for _ in range(PYRAMID_LEVELS - 1):
        ref_pyr.append(F.avg_pool2d(ref_pyr[-1], 2, 2, count_include_pad=False))
        supp_pyr.append(F.avg_pool2d(supp_pyr[-1], 2, 2, count_include_pad=False))
    ref_pyr.reverse()
    supp_pyr.reverse()
    n, _, h, w = ref.shape
    flow = ref.new_zeros(n, 2, h // 32, w // 32)
    flows = []
    for level, (ref_l, supp_l) in enumerate(zip(ref_pyr, supp_pyr)):
        if level == 0:
            flow_up = flow
        else:
            flow_up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
        warped = flow_warp(supp_l, flow_up, padding_mode="border")
        flow = flow_up + spynet.levels[level](torch.cat([ref_l, warped, flow_up], dim=1))
        flows.append(flow)
    return flows


def end_point_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance between ``[N, 2, H, W]`` flows, in pixels."""
    return (pred - target).square().sum(dim=1).add(1e-9).sqrt().mean()


def multiscale_epe(flows: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """EPE at every level against the target averaged down to that level and rescaled, summed
    with weights that grow towards the finest level (which alone is what inference uses)."""
    h = target.shape[-1]
    total = target.new_zeros(())
    for i, flow in enumerate(flows):
        factor = h // flow.shape[-1]
        down = F.avg_pool2d(target, factor) / factor if factor > 1 else target
        total = total + end_point_error(flow, down) * 2.0 ** (i - len(flows) + 1)
    return total


def init_spynet(spynet: SPyNet) -> None:
    """VSRT's SPyNet init (kaiming, fan_out) with each level's last conv near zero, so an
    untrained estimator starts from zero flow."""
    for level in spynet.levels:
        for conv in level.convs:
            torch.nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.zeros_(conv.bias)
        level.convs[-1].weight.data.mul_(0.01)
