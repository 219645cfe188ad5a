"""SPyNet optical flow (Ranjan & Black 2017) as used inside VSRT, and the per-window flows.

Self-contained: it owns its resize to a multiple of 32 and rescales the flow back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsrt_cli.model.layers import flow_warp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PYRAMID_LEVELS = 6


class FlowLevel(nn.Module):
    """One pyramid level: five 7x7 convs 8->32->64->32->16->2, ReLU between them."""

    def __init__(self) -> None:
        super().__init__()
        widths = (8, 32, 64, 32, 16, 2)
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, 7, padding=3) for cin, cout in zip(widths[:-1], widths[1:])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = F.relu(x, inplace=True)
        return x


class SPyNet(nn.Module):
    """Coarse-to-fine flow from ``ref`` to ``supp``: ``[N, 3, H, W]`` x2 (RGB in [0,1]) ->
    ``[N, 2, H, W]`` in pixels (channel 0 horizontal), so ``flow_warp(supp, flow)`` ~ ``ref``."""

    def __init__(self) -> None:
        super().__init__()
        self.levels = nn.ModuleList(FlowLevel() for _ in range(PYRAMID_LEVELS))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def pyramid_flows(self, ref: torch.Tensor, supp: torch.Tensor) -> list[torch.Tensor]:
        """The flow after every pyramid level, coarsest first (``[N, 2, H/2^k, W/2^k]``);
        height and width must be multiples of 32. Training supervises them all."""
        ref_pyr = [(ref - self.mean) / self.std]
        supp_pyr = [(supp - self.mean) / self.std]
        for _ in range(PYRAMID_LEVELS - 1):
            ref_pyr.append(F.avg_pool2d(ref_pyr[-1], kernel_size=2, stride=2, count_include_pad=False))
            supp_pyr.append(F.avg_pool2d(supp_pyr[-1], kernel_size=2, stride=2, count_include_pad=False))
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
            flow = flow_up + self.levels[level](torch.cat([ref_l, warped, flow_up], dim=1))
            flows.append(flow)
        return flows

    def compute_flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        """Flow at the working size; height and width must be multiples of 32."""
        return self.pyramid_flows(ref, supp)[-1]

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        h, w = ref.shape[-2:]
        h_up = h if h % 32 == 0 else 32 * (h // 32 + 1)
        w_up = w if w % 32 == 0 else 32 * (w // 32 + 1)
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = F.interpolate(self.compute_flow(ref, supp), size=(h, w), mode="bilinear", align_corners=False)
        scale = torch.tensor([w / w_up, h / h_up], dtype=flow.dtype, device=flow.device)
        return flow * scale.view(1, 2, 1, 1)


def neighbours(t: int) -> tuple[list[int], list[int]]:
    """For each position of a ``t``-frame window: its previous and its next neighbour's
    position. At the window ends the missing neighbour is the frame itself."""
    return [max(j - 1, 0) for j in range(t)], [min(j + 1, t - 1) for j in range(t)]


def window_flows(spynet: SPyNet, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows between each frame of a window and its neighbours, in one batched SPyNet call.

    ``frames``: ``[B, T, 3, H, W]``. Returns ``(to_prev, to_next)``, each ``[B, T, 2, H, W]``:
    ``to_prev[:, j]`` is flow(f_j -> f_{j-1}) and ``to_next[:, j]`` is flow(f_j -> f_{j+1}).
    At the window ends the missing neighbour is the frame itself, and that self-pair still goes
    through SPyNet (as in the official code, where it is generally not zero).
    (The official code names these ``flows_forward`` and ``flows_backward``.)
    """
    b, t, c, h, w = frames.shape
    prev, nxt = neighbours(t)
    ref = torch.cat([frames, frames], dim=1).reshape(-1, c, h, w)
    supp = torch.cat([frames[:, prev], frames[:, nxt]], dim=1).reshape(-1, c, h, w)
    flows = spynet(ref, supp).view(b, 2 * t, 2, h, w)
    return flows[:, :t], flows[:, t:]
