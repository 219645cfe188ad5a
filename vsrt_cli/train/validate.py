"""Validation of a super-resolution network on fixed held-out windows (no PyAV: the GPU trainer
uses it too). PSNR/SSIM on Y (BT.601) of the window's centre frame, ``SCALE`` px border.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vsrt_cli.inspect.metrics import psnr, ssim
from vsrt_cli.model.vsrt import VSRT
from vsrt_cli.train.degrade import SCALE, bicubic_upscale

VAL_FRAMES = 5


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``[..., H, W, 3]`` uint8 -> ``[..., 3, H, W]`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float().div_(255.0)


@dataclass(frozen=True)
class ValWindow:
    """A fixed validation window: ``lr [T, 3, h, w]``, ``gt [T, 3, 4h, 4w]`` floats in [0, 1].
    ``pan``: for a panned window, the camera's (dx, dy) in LR px per frame, so the true flow
    from each frame to the next is ``-pan`` everywhere. ``flows``: ``(to_prev, to_next)``
    ``[T, 2, h, w]`` cut from whole-frame flows (else the model's SPyNet runs on the window).
    ``quant``: how hard the LR was compressed, as a ``quant_film`` network is told it (0: clean,
    the BI protocol; NaN: unknown)."""

    name: str
    lr: torch.Tensor
    gt: torch.Tensor
    pan: tuple[float, float] | None = None
    flows: tuple[torch.Tensor, torch.Tensor] | None = None
    quant: float = 0.0


def centre_prediction(
    net: VSRT, lr: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor] | None = None, quant: float = 0.0
) -> torch.Tensor:
    """The model's ``[3, 4h, 4w]`` output for the centre frame of ``lr [T, 3, h, w]``; a model
    with fewer frames than the window gets the centred sub-window. ``flows``: the window's
    ``(to_prev, to_next)`` ``[T, 2, h, w]`` cut from whole frames (else SPyNet on the window);
    ``quant`` as :class:`ValWindow`'s."""
    t, c = lr.shape[0], lr.shape[0] // 2
    n = min(net.config.num_frame, t)
    start = c - n // 2
    if flows is not None and net.config.use_flow and n == t:
        return net(lr[None], (flows[0][None], flows[1][None]), keep=[c], quant=quant)[0, 0].clamp(0, 1)
    return net(lr[start : start + n][None], keep=[c - start], quant=quant)[0, 0].clamp(0, 1)


@torch.no_grad()
def pan_flow_error(net: VSRT, windows: list[ValWindow], border: int = 4) -> float:
    """Mean end-point error (LR px, ``border`` px cropped) of the network's flow from the centre
    frame to the next one against the true flow ``-pan`` of panned windows."""
    errors = []
    for window in windows:
        if window.pan is None:
            continue
        c = window.lr.shape[0] // 2
        flow = net.compute_flows(window.lr[None])[1][0, c, :, border:-border, border:-border]
        truth = -torch.tensor(window.pan, dtype=flow.dtype)[:, None, None]
        errors.append(float((flow - truth).norm(dim=0).mean()))
    return float(np.mean(errors)) if errors else float("nan")


def to_image(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


@torch.no_grad()
def evaluate(net: VSRT, windows: list[ValWindow]) -> dict[str, float]:
    """Mean PSNR-Y / SSIM-Y (border ``SCALE``) of model and bicubic, overall and per source."""
    was_training = net.training
    net.eval()
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for window in windows:
        base = bicubic_upscale(window.lr[VAL_FRAMES // 2]).clamp(0, 1)
        gt = to_image(window.gt[window.gt.shape[0] // 2])  # a packed window keeps only its centre
        pred = to_image(centre_prediction(net, window.lr, window.flows, window.quant))
        score = (
            psnr(pred, gt, y=True, crop_border=SCALE),
            psnr(to_image(base), gt, y=True, crop_border=SCALE),
            ssim(pred, gt, y=True, crop_border=SCALE),
        )
        rows.setdefault(window.name.split("/")[0].split("@")[0], []).append(score)
    net.train(was_training)
    everything = [s for scores in rows.values() for s in scores]
    out = {
        "val_psnr_y": float(np.mean([s[0] for s in everything])),
        "val_bicubic_psnr_y": float(np.mean([s[1] for s in everything])),
        "val_ssim_y": float(np.mean([s[2] for s in everything])),
    }
    for source, scores in sorted(rows.items()):
        out[f"gain_db_{source}"] = float(np.mean([s[0] - s[1] for s in scores]))
    out["val_gain_db"] = out["val_psnr_y"] - out["val_bicubic_psnr_y"]
    return out


