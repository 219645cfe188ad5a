"""Telling the network how hard its input was compressed (not part of the paper's network).

A network trained blind on a mix of clean and compressed windows cannot tell a clean frame from
a lightly compressed one and pays for it on both: from the clean 5-frame state, 30% clean
windows cost 0.84 dB on clean input after 31 compute-min while gaining 0.41 at x264 CRF 28;
50% clean windows cost 0.15 and gained 0.15 after 10 (weights/training/README.md). Yet a video
file says how it was compressed: its decoder knows each block's quantiser (H.264 QP, MPEG-2 /
MPEG-4 qscale, VP9 quantiser index), and a lossless file or a folder of PNGs is known to be clean.

``quant`` is that knowledge per batch item: the window's mean quantiser as an H.264-equivalent
QP (0 = lossless/clean, 51 = the coarsest), or NaN when it is unknown (AV1, HEVC not from
x265, JPEG frames, raw arrays); see :mod:`vsrt_cli.io.quant` for reading it. :class:`QuantFiLM` maps it to a
per-channel scale and shift of the features at every stage: after extraction, after each
transformer block (the last feeds the reconstruction) (feature-wise linear modulation). Its last layer starts at zero, so a network
warm-started from unconditioned weights first computes exactly what they did, for every
``quant``; training with known and unknown levels teaches it both.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_QP = 51.0  # H.264's coarsest quantiser
# How much of a quant_blend network's compression weights each input gets: none up to ZERO_QP,
# rising linearly to all of them at FULL_QP; UNKNOWN_BLEND when the codec reports no quantiser.
# Calibrated on training clips (not the held-out ones) through x264, with the shipped pair
# (trained with none at 0 rising to all at 18): the best share was 0.5 at QP 22.6 (CRF 18),
# 0.75 at 27.5, 1 at 32.3 and 37.3, for the video model and its twin alike; blind, 0.75 loses
# 0.05-0.07 dB to 1 at CRF 28-33 and gains 0.28 at CRF 18 (weights/training/README.md).
ZERO_QP = 12.0
FULL_QP = 32.0
UNKNOWN_BLEND = 0.75


class QuantFiLM(nn.Module):
    """``quant [B]`` (H.264-equivalent QP, NaN unknown) -> ``sites`` ``(scale, shift)`` pairs
    ``[B, C]``: site 0 the extracted features, site ``i`` the output of transformer block ``i``."""

    def __init__(self, channels: int, sites: int, hidden: int = 32) -> None:
        super().__init__()
        self.channels, self.sites = channels, sites
        self.mlp = nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(0.1), nn.Linear(hidden, 2 * sites * channels))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, quant: torch.Tensor) -> torch.Tensor:
        """``[B, 2 * sites, C]``: scale and shift of each site in turn; exactly 0 (no change) for
        a known-clean input (``quant`` 0), so that input runs the unconditioned network."""
        known = ~torch.isnan(quant)
        level = torch.where(known, quant, torch.zeros_like(quant)).clamp(0, MAX_QP) / MAX_QP
        z = torch.stack([known.to(quant.dtype), level], dim=-1)
        clean = torch.tensor([[1.0, 0.0]], dtype=z.dtype, device=z.device)
        return (self.mlp(z) - self.mlp(clean)).view(-1, 2 * self.sites, self.channels)


def modulate(feat: torch.Tensor, film: torch.Tensor | None, which: int) -> torch.Tensor:
    """``feat [N, C, H, W]`` scaled and shifted by site ``which`` of ``film [B, 2 * sites, C]``,
    whose items each cover ``N / B`` consecutive entries of ``feat`` (None: unchanged)."""
    if film is None:
        return feat
    per = feat.shape[0] // film.shape[0]
    scale = film[:, 2 * which].repeat_interleave(per, dim=0)[:, :, None, None].to(feat.dtype)
    shift = film[:, 2 * which + 1].repeat_interleave(per, dim=0)[:, :, None, None].to(feat.dtype)
    return feat * (1 + scale) + shift


def blend_scale(quant: torch.Tensor) -> torch.Tensor:
    """How much of a ``quant_blend`` network's compression weights an input gets (``[B]``): 0 for
    a known-clean input and up to ``ZERO_QP`` (high-quality lossy video is nearly clean), rising
    linearly to 1 at ``FULL_QP``, 1 above it, ``UNKNOWN_BLEND`` when unknown."""
    ramp = ((quant - ZERO_QP) / (FULL_QP - ZERO_QP)).clamp(0, 1)
    return torch.where(torch.isnan(quant), torch.full_like(quant, UNKNOWN_BLEND), ramp)


def restore_quant(strength: float) -> float:
    """The quantiser a ``quant_blend`` network is told for ``--restore strength`` (0 to 1): the
    QP at which :func:`blend_scale` gives that share of the compression offset, so the
    modulation and the blend stay the pair it was trained with; 0 is a clean input (QP 0: the
    clean network exactly, modulation and offset both off)."""
    if not 0 <= strength <= 1:
        raise ValueError(f"restore strength {strength} is not in [0, 1]")
    return 0.0 if strength == 0 else ZERO_QP + strength * (FULL_QP - ZERO_QP)


def describe_restore(strength: float | None, quant: float | None) -> str:
    """The one-line note for a ``quant_blend`` network: how much of its compression offset it
    used and why (``strength`` None: ``--restore auto``, from ``quant``, the input's quantiser)."""
    if strength is not None:
        why = "the clean model's output" if strength == 0 else "set by --restore; the input's quantiser is not consulted"
        return f"--restore {strength:g}: {strength:.2f} of the compression offset ({why})"
    share = float(blend_scale(torch.tensor([math.nan if quant is None else quant]))[0])
    if quant is None or math.isnan(quant):
        why = f"the input does not say how hard it was compressed: {UNKNOWN_BLEND:g} for unknown inputs"
    elif quant == 0:
        why = "the input is lossless"
    else:
        why = (f"the input was compressed at about H.264 QP {quant:.0f}, read from its bitstream; none up to QP "
               f"{ZERO_QP:.0f}, all from QP {FULL_QP:.0f}")
    return f"--restore auto: {share:.2f} of the compression offset ({why}; --restore 0..1 to choose)"


def blend_groups(scale: torch.Tensor) -> list[tuple[float, torch.Tensor]]:
    """The batch items sharing each blend ``scale`` value: ``[(value, indices)]``."""
    return [(float(v), (scale == v).nonzero().flatten()) for v in torch.unique(scale)]


def delta_key(name: str) -> str:
    """The key of parameter ``name``'s compression offset (a ParameterDict takes no dots)."""
    return "__".join(name.split("."))


def describe(quant: float | None) -> str:
    """What a ``quant_film`` network was told about its input, for the user (one line)."""
    if quant is None or math.isnan(quant):
        return "the input does not say how hard it was compressed (its codec reports no quantiser): the model works blind"
    if quant == 0:
        return "the input is lossless: the model treats it as clean"
    return f"the input was compressed at about H.264 QP {quant:.0f} (read from its bitstream): the model adapts to that"


def quant_tensor(quant: torch.Tensor | float | None, batch: int, device: torch.device) -> torch.Tensor:
    """``quant`` as a float32 ``[batch]`` tensor on ``device`` (None: unknown for all)."""
    if quant is None or isinstance(quant, (int, float)):  # a fill on the device: no copy, no wait
        return torch.full((batch,), float("nan") if quant is None else float(quant), device=device)
    q = torch.as_tensor(quant, dtype=torch.float32, device=device).reshape(-1)
    return q.expand(batch) if q.numel() == 1 else q
