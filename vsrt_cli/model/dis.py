"""Dense inverse search optical flow (Kroeger et al. 2016, OpenCV's ``DISOpticalFlow``) as a
flow estimator with SPyNet's interface.

Why: the project has no pretrained SPyNet (the official weights cannot be fetched here), and the
one it trained on CPU made warped neighbours *worse* than unwarped ones on real footage (LR
PSNR of the warped next frame against the frame: 27.0 vs 32.5 dB unwarped on Big Buck Bunny,
28.1 vs 47.9 on a near-static indoor clip), so a video model learned to ignore its neighbours.
DIS needs no weights and warps better than no flow on every moving training source
(e.g. 37.2 vs 32.5 dB on Big Buck Bunny, 33.8 vs 19.7 on the playing cards) at a few ms per LR
frame pair on one core. It runs on the CPU on 8-bit grey frames (the model's LR input is 8-bit
video, so nothing is lost) and is deterministic. Models whose config says ``flow="dis"`` use it;
the official presets keep SPyNet.

OpenCV's "medium" preset stops at half resolution (finest scale 1), too coarse for LR frames of
100-300 px: at full resolution (finest scale 0) the warped next frame gains 0.1-2.1 dB on the
held-out and training clips (plane 39.4 -> 41.3 dB, caminandes 47.1 -> 48.1, ASL gestures
37.7 -> 39.8, car aerial 50.16 -> 50.28), the flow error on known pans halves (0.077 -> 0.038
LR px), and the 5-frame model trained with the coarser flows already gained from it (moving
held-out clips +0.19 -> +0.23 dB over its single-frame twin, static ones -0.03 -> +0.02;
weights/training/README.md).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vsrt_cli.errors import ConfigError

MIN_SIDE = 16
FINEST_SCALE = 0  # full resolution (the preset's own is 1: half)
DIGEST = "dis-medium-f0-2"  # names cached flows; change it when the estimator's output changes


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError(
            "this model's optical flow needs OpenCV; install it with "
            "`pip install opencv-python-headless`"
        ) from None
    return cv2


def grey_u8(frames: torch.Tensor) -> np.ndarray:
    """``[N, 3, H, W]`` RGB in [0, 1] -> ``[N, H, W]`` uint8 grey (BT.601, OpenCV's rounding)."""
    cv2 = _cv2()
    rgb = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    rgb = rgb.permute(0, 2, 3, 1).cpu().numpy()
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in rgb])


def dis_flow(ref: np.ndarray, supp: np.ndarray) -> np.ndarray:
    """``[H, W]`` uint8 grey pair -> ``[H, W, 2]`` float32 flow in pixels (x, y) such that
    ``supp`` sampled at ``p + flow(p)`` is ``ref``."""
    cv2 = _cv2()
    h, w = ref.shape
    if h < MIN_SIDE or w < MIN_SIDE:  # OpenCV refuses frames this small: replicate the edges
        pad = ((0, max(MIN_SIDE - h, 0)), (0, max(MIN_SIDE - w, 0)))
        ref, supp = np.pad(ref, pad, mode="edge"), np.pad(supp, pad, mode="edge")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(FINEST_SCALE)
    return dis.calc(ref, supp, None)[:h, :w]


class DISFlow(nn.Module):
    """Flow from ``ref`` to ``supp``: ``[N, 3, H, W]`` x2 (RGB in [0, 1]) -> ``[N, 2, H, W]`` in
    pixels on the input's device, so ``flow_warp(supp, flow)`` ~ ``ref`` (as :class:`SPyNet`).
    No parameters; not differentiable (the flow is an input to the network, never trained)."""

    digest = DIGEST

    @torch.no_grad()
    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        a, b = grey_u8(ref), grey_u8(supp)
        flows = np.stack([dis_flow(x, y) for x, y in zip(a, b)])
        out = torch.from_numpy(flows).permute(0, 3, 1, 2)
        return out.to(device=ref.device, dtype=torch.float32, non_blocking=True)
