"""Supervised SPyNet pretraining on synthetic pairs with known flow.

No pretrained flow weights exist for this project, so pairs are made from real frames: a random
smooth flow ``f`` (global affine motion plus a bicubically upsampled coarse random field) is
applied to a GT crop at HR (``4 f`` upsampled), and both the warped and the original crop are
degraded with BI, so the pair looks like two LR video frames whose true flow is ``f``:
``ref = warp(supp, f)``, which is exactly what ``SPyNet(ref, supp)`` must return.
The loss is the end-point error at every pyramid level (coarse-to-fine supervision).

From a random init this never learned (val EPE = zero-flow EPE after 1,200 steps): the flow's
sign is a product of temporal and spatial differences, invisible to random ReLU features, so
each level settled on zero flow and its last hidden ReLUs died. :func:`init_spynet` therefore
starts every level from Lucas-Kanade-like features (:func:`lucas_kanade_init`) with a zero
read-out. Adam at lr 1e-3 still wrecks those features within ~100 steps; 1e-4 learns steadily
(pass ``--lr 1e-4`` while the stage default in ``config.py`` is 1e-3).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vsrt_cli.model.layers import flow_warp
from vsrt_cli.model.spynet import SPyNet
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
    """The flow after every pyramid level, coarsest first (see :meth:`SPyNet.pyramid_flows`)."""
    return spynet.pyramid_flows(ref, supp)


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


def _gaussian(sigma: float, size: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets ``-size//2 .. size//2`` and the normalised 1-D Gaussian over them."""
    u = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-u.square() / (2 * sigma**2))
    return u, g / g.sum()


LK_CHANNELS = 6  # designed channels carried through the hidden layers of every level


@torch.no_grad()
def lucas_kanade_init(level: torch.nn.Module) -> None:
    """Give one pyramid level a Lucas-Kanade-like start; its other channels stay random.

    The direction of a flow is a *product* of the temporal difference ``It = ref - warped``
    (about ``f . grad I``) and the spatial gradient: under flips neither alone says anything
    about the sign of ``f``. From random features an EPE-trained level never finds that
    product: it settles on zero flow and its last hidden ReLUs die. So the first conv computes
    ``+-(Ix + It)``, ``+-(Ix - It)`` (and for y), whose ReLUs give ``|Ix + It| - |Ix - It|
    = 2 sign(Ix It) min(|Ix|, |It|)`` (``2 |Ix| fx`` for ``|fx| < 1``); the second conv sums
    that over a Gaussian window into ``+-Px``, ``+-Py`` and the energies; convs 3-4 carry these
    six channels through unchanged; the last conv starts at zero (zero initial flow) and learns
    the read-out, while everything else refines the estimate."""
    c1, c2, c3, c4, c5 = level.convs
    u, g = _gaussian(1.0)
    smooth = torch.outer(g, g)  # rows y, columns x
    dg = u * g
    dg = dg / (u * dg).sum()  # derivative of Gaussian with unit response to a unit ramp
    gradients = (torch.outer(g, dg), torch.outer(dg, g))  # d/dx, d/dy
    c1.weight[:8] = 0.0
    c1.bias[:8] = 0.0
    for k, grad in enumerate(gradients):
        spatial = torch.zeros(8, 7, 7)
        spatial[0:6] = grad / 6  # gradient of the grey mean of ref and warped
        temporal = torch.zeros(8, 7, 7)
        temporal[0:3], temporal[3:6] = smooth / 3, -smooth / 3  # grey ref - warped
        for j, (sa, sb) in enumerate(((1, 1), (-1, -1), (1, -1), (-1, 1))):
            c1.weight[4 * k + j] = sa * spatial + sb * temporal
    _, window = _gaussian(1.5)
    window = torch.outer(window, window)
    c2.weight[:LK_CHANNELS] = 0.0
    c2.weight[:, :8] = 0.0
    c2.bias[:LK_CHANNELS] = 0.0
    for k in range(2):
        src = slice(4 * k, 4 * k + 4)
        diff = torch.stack((window, window, -window, -window))
        c2.weight[2 * k, src] = diff
        c2.weight[2 * k + 1, src] = -diff
        c2.weight[4 + k, src] = window.expand(4, 7, 7)
    for conv in (c3, c4):
        conv.weight[:LK_CHANNELS] = 0.0
        conv.weight[:, :LK_CHANNELS] = 0.0
        conv.bias[:LK_CHANNELS] = 0.0
        for j in range(LK_CHANNELS):
            conv.weight[j, j, 3, 3] = 1.0
    c5.weight.zero_()
    c5.bias.zero_()


def init_spynet(spynet: SPyNet) -> None:
    """A fresh SPyNet that learns in minutes: VSRT's kaiming (fan_out) init for the random
    channels plus :func:`lucas_kanade_init` in every level, so it starts at exactly zero flow
    with features whose linear read-out already carries the flow's direction."""
    for level in spynet.levels:
        for conv in level.convs:
            torch.nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.zeros_(conv.bias)
        lucas_kanade_init(level)
