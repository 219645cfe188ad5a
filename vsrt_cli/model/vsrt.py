"""Video Super-Resolution Transformer (Cao, Li, Zhang, Van Gool 2021, arXiv:2106.06847).

The network as the official code (caojiezhang/VSR-Transformer @8770126) realises it:
feature extraction -> SPyNet flows -> 3-D positional encoding -> ``depth`` pre-norm layers of
spatial-temporal convolutional self-attention (STCSA) and bidirectional optical-flow
feed-forward (BOFF) -> reconstruction with two x2 pixel-shuffles, plus a bilinear x4 base.

Layout: input ``[B, T, 3, H, W]`` RGB in [0, 1] -> output ``[B, T, 3, 4H, 4W]`` (not clamped).
Official checkpoint keys are mapped in :mod:`vsrt_cli.model.official`, never here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vsrt_cli.errors import ConfigError, ModelInputError
from vsrt_cli.model.config import VSRTConfig
from vsrt_cli.model.blocks import TransformerBlock, full_precision
from vsrt_cli.model.layers import ResidualBlock, add_positional_encoding, lrelu, residual_stack
from vsrt_cli.model.dis import DISFlow
from vsrt_cli.model.quant import QuantFiLM, blend_groups, blend_scale, delta_key, modulate, quant_tensor
from vsrt_cli.model.query import EarlyFusion, flows_read, query_forward
from vsrt_cli.model.spynet import SPyNet, window_flows

SCALE = 4


class VSRT(nn.Module):
    """The whole network: ``[B, T, 3, H, W]`` in [0, 1] -> ``[B, T, 3, 4H, 4W]``."""

    def __init__(self, config: VSRTConfig) -> None:
        super().__init__()
        self.config = config
        c = config.num_feat
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.extract = residual_stack(c, config.extract_blocks)
        # A flow-less (single-frame) network has no SPyNet at all: 1.44M unused parameters;
        # nor has one whose flow is DIS (no parameters).
        self.spynet = SPyNet() if config.use_flow and config.flow == "spynet" else None
        self.dis = DISFlow() if config.use_flow and config.flow == "dis" else None
        self.early_fusion = EarlyFusion(c) if config.per_frame_queries else None
        self.blocks = nn.ModuleList(
            TransformerBlock(config, gated=i >= config.depth - config.gated_blocks) for i in range(config.depth)
        )
        self.reconstruct = residual_stack(c, config.reconstruct_blocks)
        self.upsample1 = nn.Conv2d(c, 4 * c, 3, padding=1)
        self.upsample2 = nn.Conv2d(c, 4 * c, 3, padding=1)
        self.conv_hr = nn.Conv2d(c, c, 3, padding=1)
        self.conv_out = nn.Conv2d(c, 3, 3, padding=1)
        self.quant = QuantFiLM(c, 1 + config.depth) if config.quant_film else None
        self._init_weights()
        # quant_blend: an offset per body weight (zero: the clean network), blended in by how
        # hard the input was compressed (vsrt_cli.model.quant.blend_scale)
        self.delta = nn.ParameterDict({
            delta_key(n): nn.Parameter(torch.zeros_like(p)) for n, p in self.blended_parameters()
        }) if config.quant_blend else None

    def _init_weights(self) -> None:
        """The official initialisation: residual convs kaiming(fan_in) x 0.1, SPyNet kaiming(fan_out)."""
        for module in self.modules():
            if isinstance(module, ResidualBlock):
                for conv in (module.conv1, module.conv2):
                    nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
                    conv.weight.data.mul_(0.1)
                    nn.init.zeros_(conv.bias)
        for conv in self.spynet.modules() if self.spynet is not None else ():
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(conv.bias)

    def blended_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The body weights a ``quant_blend`` network offsets (not the flow, not the
        quantiser's own modulation, not the offsets)."""
        skip = ("spynet.", "quant.", "delta.")
        return [(n, p) for n, p in self.named_parameters() if not n.startswith(skip)]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`ModelInputError` if ``x`` is not a ``[B, T, 3, H, W]`` the model takes."""
        if x.ndim != 5 or x.shape[2] != 3:
            raise ModelInputError(
                f"the model takes a [batch, frames, 3, height, width] tensor, got shape {tuple(x.shape)}"
            )
        t = x.shape[1]
        if not 1 <= t <= self.config.max_frames:
            raise ModelInputError(
                f"the model takes 1 to {self.config.max_frames} frames per call, got {t}"
            )
        self.config.check_input_size(x.shape[3], x.shape[4])

    def compute_flows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(to_prev, to_next)`` flows ``[B, T, 2, H, W]`` of the LR window (zeros if flow is off)."""
        if not self.config.use_flow:
            zeros = x.new_zeros(x.shape[0], x.shape[1], 2, *x.shape[3:])
            return zeros, zeros
        return window_flows(self.flow_net, x)

    def flows_read(self, t: int, keep: Sequence[int] | None) -> tuple[set[int], set[int]]:
        """The positions of a ``t``-frame window whose ``(to_prev, to_next)`` flows a call with
        ``keep`` reads: all of them, but for a per-frame-query network only those around the
        kept frames (:func:`vsrt_cli.model.query.flows_read`)."""
        if keep is None or not self.config.per_frame_queries:
            return set(range(t)), set(range(t))
        return flows_read(t, keep)

    @property
    def flow_net(self) -> nn.Module:
        """The flow estimator, ``(ref, supp) [N, 3, H, W]`` -> ``[N, 2, H, W]`` (SPyNet or DIS)."""
        if not self.config.use_flow:
            raise ConfigError("this network uses no flow (a single-frame or no-motion model)")
        return self.spynet if self.spynet is not None else self.dis

    def features(self, x: torch.Tensor, film: torch.Tensor | None = None) -> torch.Tensor:
        """Extracted features of every frame: ``[B, T, 3, H, W]`` -> ``[B, T, C, H, W]``
        (modulated by ``film``, :meth:`film`'s output, in a ``quant_film`` network)."""
        feat = self.extract(lrelu(full_precision(self.stem, rearrange(x, "b t c h w -> (b t) c h w"))))
        return rearrange(modulate(feat, film, 0), "(b t) c h w -> b t c h w", b=x.shape[0])

    def embed(self, x: torch.Tensor, film: torch.Tensor | None = None) -> torch.Tensor:
        """Extracted features plus the positional encoding: ``[B, T, 3, H, W]`` -> ``[B, T, C, H, W]``."""
        return add_positional_encoding(self.features(x, film), self.config.num_frame, self.encoding_order(x.shape[1]))

    def film(self, quant: torch.Tensor | float | None, batch: int, device: torch.device) -> torch.Tensor | None:
        """The feature modulation of a ``quant_film`` network for ``quant`` (see
        :mod:`vsrt_cli.model.quant`; None or NaN: unknown), else None (``quant`` is ignored)."""
        if self.quant is None:
            return None
        return self.quant(quant_tensor(quant, batch, device))

    def encoding_order(self, t: int) -> list[int]:
        """The positional-encoding channel of each of ``t`` frames: ``j`` (official), or with
        ``centre_first`` channel 0 for the centre frame and the others in order."""
        if not (self.config.centre_first and t > 1):
            return list(range(t))
        order = [t // 2, *(j for j in range(t) if j != t // 2)]  # frame taking channel e
        return [order.index(j) for j in range(t)]

    def forward(
        self, x: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor] | None = None,
        *, keep: Sequence[int] | None = None, quant: torch.Tensor | float | None = None, blend: bool = True,
    ) -> torch.Tensor:
        """``x`` ``[B, T, 3, H, W]``; ``flows`` optionally precomputed ``(to_prev, to_next)``
        ``[B, T, 2, H, W]`` (e.g. on whole frames, then cropped per tile). ``keep``: the window
        positions wanted; only those are reconstructed (the last layer's feed-forward and
        everything after it), and the output is ``[B, len(keep), 3, 4H, 4W]``, equal to
        ``forward(x, flows)[:, keep]``. ``quant``: how hard the input was compressed, per item
        or for all (H.264-equivalent QP; None or NaN: unknown), read by a ``quant_film``
        network only (:mod:`vsrt_cli.model.quant`). ``blend=False``: a ``quant_blend`` network
        runs its weights as they are (the blend's own inner call)."""
        self.check_input(x)
        b, t = x.shape[:2]
        if self.delta is not None and blend:
            return self._blended(x, flows, keep, quant)
        if keep is not None:
            keep = [int(j) for j in keep]
            if not keep or not all(-t <= j < t for j in keep):
                raise ModelInputError(f"keep={keep}: positions must be within the {t}-frame window")
            keep = [j % t for j in keep]
            if keep == list(range(t)):
                keep = None
        if flows is None:
            flows = self.compute_flows(x)
        film = self.film(quant, b, x.device)
        if self.config.per_frame_queries:
            return query_forward(self, x, flows, keep, film)
        feat = self.embed(x, film)
        for i, block in enumerate(self.blocks):
            if keep is not None and i == len(self.blocks) - 1:
                feat = block.feed_forward(block.attend(feat), x, flows, keep)
            else:
                feat = block(feat, x, flows)
            if film is not None:
                feat = rearrange(modulate(rearrange(feat, "b t c h w -> (b t) c h w"), film, 1 + i), "(b t) c h w -> b t c h w", b=b)
        if keep is not None:  # depth >= 1: the last block has already dropped the others
            x = x[:, keep]
        out = self.reconstruct_frames(rearrange(feat, "b t c h w -> (b t) c h w"), rearrange(x, "b t c h w -> (b t) c h w"))
        return rearrange(out, "(b t) c h w -> b t c h w", b=b)

    def _blended(
        self, x: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor] | None, keep: Sequence[int] | None,
        quant: torch.Tensor | float | None,
    ) -> torch.Tensor:
        """The forward pass with each item's weights ``W + s * delta``, ``s = blend_scale(quant)``
        (items sharing ``s`` go together; the flow, unblended, is computed once). The groups are
        found on the host, so a window's call (one quantiser for all its tiles) never waits for
        the device."""
        b = x.shape[0]
        host = quant_tensor(quant.detach().cpu() if isinstance(quant, torch.Tensor) else quant, b, torch.device("cpu"))
        quant = quant_tensor(quant, b, x.device)
        if flows is None:
            flows = self.compute_flows(x)
        groups = blend_groups(blend_scale(host))
        parts, order = [], []
        for value, idx in groups:
            weights = {n: p + value * self.delta[delta_key(n)] if value else p for n, p in self.blended_parameters()}
            if len(groups) == 1:
                args, item_quant = (x, flows), quant
            else:
                idx = idx.to(x.device)
                args, item_quant = (x[idx], (flows[0][idx], flows[1][idx])), quant[idx]
            kwargs = {"keep": keep, "quant": item_quant, "blend": False}
            parts.append(torch.func.functional_call(self, weights, args, kwargs, strict=False))
            order.append(idx)
        if len(parts) == 1:
            return parts[0]
        out = torch.cat(parts)
        return out[torch.argsort(torch.cat(order))]

    def reconstruct_frames(self, feat: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Features ``[N, C, H, W]`` of LR frames ``[N, 3, H, W]`` -> HR frames ``[N, 3, 4H, 4W]``
        (reconstruction blocks, two x2 pixel-shuffles, plus the bilinear x4 base)."""
        out = self.reconstruct(feat)
        out = lrelu(F.pixel_shuffle(self.upsample1(out), 2))
        out = lrelu(F.pixel_shuffle(self.upsample2(out), 2))
        out = self.conv_out(lrelu(self.conv_hr(out)))
        return out + F.interpolate(frames, scale_factor=SCALE, mode="bilinear", align_corners=False)


# --- presets -------------------------------------------------------------------------------

PRESETS: dict[str, VSRTConfig] = {
    # The official REDS configuration: T=5, depth 5 (32,564,335 parameters).
    "vsrt-reds": VSRTConfig(num_frame=5, depth=5),
    # The official Vimeo-90K / Vid4 configuration: T=7, depth 7 (43,845,615 parameters).
    "vsrt-vimeo": VSRTConfig(num_frame=7, depth=7),
    # The project's own CPU-trained model (vsrt_cli.train): same architecture, narrow and
    # shallow, size-agnostic channel norm (538k body + 1.44M SPyNet parameters). Chosen by
    # measured training speed on a 2-core CPU (32x32 LR patches, batch 4, frozen flow):
    # this 4.7 samples/s vs 4.0 (32 ch, ff 4, 12 rec), 3.3 (32 ch, ff 5, 30 rec), 3.0 (48 ch).
    "vsrt-cpu-small": VSRTConfig(
        num_feat=32, num_frame=5, depth=2, patch_size=8, extract_blocks=2,
        reconstruct_blocks=6, ff_blocks=3, norm="channel",
    ),
}
# Its single-frame ablation (one frame per call, no flow): the baseline the video model must beat.
PRESETS["vsrt-cpu-small-1f"] = replace(PRESETS["vsrt-cpu-small"], num_frame=1, use_flow=False)
# The 5-frame network that warm-starts from vsrt-cpu-small-1f weights and first computes what
# they do (centre-first encoding, neighbour paths zero-initialised); its twin is the 1f preset.
# Its flow is DIS: the project's own CPU-trained SPyNet warped real footage worse than no flow.
PRESETS["vsrt-cpu-small-5f"] = replace(
    PRESETS["vsrt-cpu-small"], centre_first=True, neighbour_gates=True, flow="dis", per_frame_queries=True
)
# The compression-aware pair: the same networks told the input's quantiser (vsrt_cli.model.quant).
PRESETS["vsrt-cpu-small-5f-q"] = replace(PRESETS["vsrt-cpu-small-5f"], quant_film=True)
PRESETS["vsrt-cpu-small-1f-q"] = replace(PRESETS["vsrt-cpu-small-1f"], quant_film=True)
# ... and with the clean weights kept whole: a compression offset blended in by the quantiser.
PRESETS["vsrt-cpu-small-5f-qb"] = replace(PRESETS["vsrt-cpu-small-5f-q"], quant_blend=True)
PRESETS["vsrt-cpu-small-1f-qb"] = replace(PRESETS["vsrt-cpu-small-1f-q"], quant_blend=True)
# Grown from vsrt-cpu-small-5f without changing what it computes (issue #31): a third, gated
# transformer block, or deeper residual stacks whose added blocks start as the identity.
PRESETS["vsrt-cpu-small-5f-d3"] = replace(PRESETS["vsrt-cpu-small-5f"], depth=3, gated_blocks=1)
PRESETS["vsrt-cpu-small-5f-r10"] = replace(PRESETS["vsrt-cpu-small-5f"], reconstruct_blocks=10, ff_blocks=4)


def get_config(name: str) -> VSRTConfig:
    """The preset called ``name``; an unknown name raises and lists the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        valid = ", ".join(sorted(PRESETS))
        raise ConfigError(f"unknown model preset {name!r}; valid presets: {valid}") from None


def build_model(config: VSRTConfig | str) -> VSRT:
    """A freshly initialised network for a config or a preset name (on CPU, train mode)."""
    return VSRT(get_config(config) if isinstance(config, str) else config)
