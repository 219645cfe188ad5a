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
from vsrt_cli.model.layers import (
    ChannelLayerNorm,
    ResidualBlock,
    add_positional_encoding,
    flow_warp,
    lrelu,
    residual_stack,
)
from vsrt_cli.model.dis import DISFlow
from vsrt_cli.model.quant import QuantFiLM, blend_groups, blend_scale, delta_key, modulate, quant_tensor
from vsrt_cli.model.query import EarlyFusion, query_forward
from vsrt_cli.model.spynet import SPyNet, window_flows

SCALE = 4


def _make_norm(config: VSRTConfig) -> nn.Module:
    if config.norm == "tile":
        return nn.LayerNorm([config.num_feat, config.tile, config.tile])
    return ChannelLayerNorm(config.num_feat)


class STCSA(nn.Module):
    """Spatial-temporal convolutional self-attention on ``[B, T, C, H, W]``.

    Depthwise 3x3 q/k convs and a full 3x3 v conv per frame; each map is cut into
    ``patch x patch`` patches, and every (frame, patch) pair is one token whose vector holds
    ``C/heads`` channels of that patch. All tokens of all frames attend to each other; the result
    is folded back and passed through a 3x3 output conv.
    """

    def __init__(self, config: VSRTConfig) -> None:
        super().__init__()
        c = config.num_feat
        self.heads = config.heads
        self.patch = config.patch_size
        self.q = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.k = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.v = nn.Conv2d(c, c, 3, padding=1)
        self.proj = nn.Conv2d(c, c, 3, padding=1)
        # neighbour_gates: how much of the all-frames attention replaces the within-frame one
        self.cross_gate = nn.Parameter(torch.zeros(())) if config.neighbour_gates else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        p = self.patch
        flat = rearrange(x, "b t c h w -> (b t) c h w")
        q, k, v = self.q(flat), self.k(flat), self.v(flat)

        # A token is one (frame, patch) pair; its vector is channel-major, then patch row, then
        # patch column -- the layout of the official Unfold(kernel=p, stride=p), as a reshape.
        pattern = "(b t) (g c) (y p1) (x p2) -> b g (t y x) (c p1 p2)"

        def tokens(feat: torch.Tensor) -> torch.Tensor:
            return rearrange(feat, pattern, b=b, g=self.heads, p1=p, p2=p)

        attended = F.scaled_dot_product_attention(tokens(q), tokens(k), tokens(v))
        inverse = "b g (t y x) (c p1 p2) -> (b t) (g c) (y p1) (x p2)"
        out = rearrange(attended, inverse, t=t, y=h // p, p1=p, p2=p)
        if self.cross_gate is not None and t > 1:
            within = "n (g c) (y p1) (x p2) -> n g (y x) (c p1 p2)"
            split = [rearrange(f, within, g=self.heads, p1=p, p2=p) for f in (q, k, v)]
            own = rearrange(
                F.scaled_dot_product_attention(*split),
                "n g (y x) (c p1 p2) -> n (g c) (y p1) (x p2)", y=h // p, p1=p, p2=p,
            )
            out = own + self.cross_gate.to(out.dtype) * (out - own)
        out = self.proj(out)
        return rearrange(out, "(b t) c h w -> b t c h w", b=b)


def full_precision(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` outside any autocast: the layers that read pixels keep them exact. In bf16 an
    8-bit pixel is rounded by up to half a grey level, which cost 0.12 dB PSNR on a clean clip;
    these convolutions are a few percent of the model's work."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return conv(x.float())


class FlowBranch(nn.Module):
    """One BOFF direction: ``[lr frame (3), warped neighbour (C)]`` -> conv, LeakyReLU, blocks.

    ``gated``: ``conv_in`` reads ``[lr frame, the frame's own features]`` (what a single-frame
    network sees, its neighbour being itself) and the warped neighbour enters through
    ``conv_neighbour``, zero-initialised."""

    def __init__(self, channels: int, blocks: int, *, gated: bool = False) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(channels + 3, channels, 3, padding=1)
        self.conv_neighbour = nn.Conv2d(channels, channels, 3, padding=1, bias=False) if gated else None
        if self.conv_neighbour is not None:
            nn.init.zeros_(self.conv_neighbour.weight)
        self.blocks = residual_stack(channels, blocks)

    def forward(self, lr: torch.Tensor, warped: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        if self.conv_neighbour is None:
            x = full_precision(self.conv_in, torch.cat([lr, warped.to(lr.dtype)], dim=1))
        else:
            x = full_precision(self.conv_in, torch.cat([lr, own.to(lr.dtype)], dim=1))
            x = x + self.conv_neighbour(warped).to(x.dtype)
        return self.blocks(lrelu(x))


class BOFF(nn.Module):
    """Bidirectional optical-flow feed-forward on ``[B, T, C, H, W]``.

    Each frame sees its next neighbour warped by flow(f_j -> f_{j+1}) and its previous one
    warped by flow(f_j -> f_{j-1}) (zero padding; window ends use the frame itself), each with
    the raw LR frame, through its own conv stack; a 1x1 conv fuses the two directions.
    """

    def __init__(self, config: VSRTConfig) -> None:
        super().__init__()
        c = config.num_feat
        self.from_next = FlowBranch(c, config.ff_blocks, gated=config.neighbour_gates)
        self.from_prev = FlowBranch(c, config.ff_blocks, gated=config.neighbour_gates)
        self.fuse = nn.Conv2d(2 * c, c, 1)

    def forward(
        self, x: torch.Tensor, lrs: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor],
        keep: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """``keep``: only these frame positions are computed (``[B, len(keep), C, H, W]`` out);
        each frame's output depends only on its own and its neighbours' inputs."""
        b = x.shape[0]
        to_prev, to_next = flows
        nxt = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
        prev = torch.cat([x[:, :1], x[:, :-1]], dim=1)
        if keep is not None:
            x, lrs, nxt, prev = x[:, keep], lrs[:, keep], nxt[:, keep], prev[:, keep]
            to_prev, to_next = to_prev[:, keep], to_next[:, keep]

        def fold_time(t: torch.Tensor) -> torch.Tensor:
            return rearrange(t, "b t c h w -> (b t) c h w")

        lr, own = fold_time(lrs), fold_time(x)
        out_next = self.from_next(lr, flow_warp(fold_time(nxt), fold_time(to_next)), own)
        out_prev = self.from_prev(lr, flow_warp(fold_time(prev), fold_time(to_prev)), own)
        out = lrelu(self.fuse(torch.cat([out_next, out_prev], dim=1)))
        return rearrange(out, "(b t) c h w -> b t c h w", b=b)


class TransformerBlock(nn.Module):
    """Pre-norm STCSA then pre-norm BOFF, each with the official residuals.

    Attention: ``x + LN(x) + STCSA(LN(x))`` (the official attention adds its own input, and the
    residual wrapper adds ``x`` again). Feed-forward: ``x + BOFF(LN(x), lrs, flows)``.
    """

    def __init__(self, config: VSRTConfig) -> None:
        super().__init__()
        self.attn_norm = _make_norm(config)
        self.attn = STCSA(config)
        self.ff_norm = _make_norm(config)
        self.ff = BOFF(config)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The attention sub-layer, ``[B, T, C, H, W]`` -> same."""
        y = self.attn_norm(x)
        return x + (y + self.attn(y))

    def feed_forward(
        self, x: torch.Tensor, lrs: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor],
        keep: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """The feed-forward sub-layer, ``[B, T, C, H, W]`` -> same (``[B, len(keep), ...]``
        with ``keep``: the last layer computes only the frames that are kept)."""
        out = self.ff(self.ff_norm(x), lrs, flows, keep)
        return (x if keep is None else x[:, keep]) + out

    def forward(
        self, x: torch.Tensor, lrs: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        return self.feed_forward(self.attend(x), lrs, flows)


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
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.depth))
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
            return self._blended(x, flows, keep, quant_tensor(quant, b, x.device))
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
        quant: torch.Tensor,
    ) -> torch.Tensor:
        """The forward pass with each item's weights ``W + s * delta``, ``s = blend_scale(quant)``
        (items sharing ``s`` go together; the flow, unblended, is computed once)."""
        if flows is None:
            flows = self.compute_flows(x)
        parts, order = [], []
        for value, idx in blend_groups(blend_scale(quant)):
            weights = {n: p + value * self.delta[delta_key(n)] if value else p for n, p in self.blended_parameters()}
            args = (x[idx], (flows[0][idx], flows[1][idx]))
            kwargs = {"keep": keep, "quant": quant[idx], "blend": False}
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
