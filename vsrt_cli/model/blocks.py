"""The layers of the Video Super-Resolution Transformer (Cao, Li, Zhang, Van Gool 2021,
arXiv:2106.06847) as the official code builds them: spatial-temporal convolutional
self-attention (STCSA), the bidirectional optical-flow feed-forward (BOFF) and the pre-norm
block of the two. :mod:`vsrt_cli.model.vsrt` stacks them into the network and
:mod:`vsrt_cli.model.query` runs them one output frame at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vsrt_cli.model.config import VSRTConfig
from vsrt_cli.model.layers import ChannelLayerNorm, flow_warp, lrelu, residual_stack


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
    residual wrapper adds ``x`` again). Feed-forward: ``x + BOFF(LN(x), lrs, flows)``. A
    ``gated`` block (grown into a trained network) adds both through ``gate`` instead, a scalar
    that starts at zero: ``x + gate * sublayer``, the identity until it trains.
    """

    def __init__(self, config: VSRTConfig, *, gated: bool = False) -> None:
        super().__init__()
        self.attn_norm = _make_norm(config)
        self.attn = STCSA(config)
        self.ff_norm = _make_norm(config)
        self.ff = BOFF(config)
        self.gate = nn.Parameter(torch.zeros(())) if gated else None

    def gated(self, sublayer: torch.Tensor) -> torch.Tensor:
        """What the block adds to its input: ``sublayer``, through the gate if it has one."""
        return sublayer if self.gate is None else self.gate.to(sublayer.dtype) * sublayer

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The attention sub-layer, ``[B, T, C, H, W]`` -> same."""
        y = self.attn_norm(x)
        return x + self.gated(y + self.attn(y))

    def feed_forward(
        self, x: torch.Tensor, lrs: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor],
        keep: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """The feed-forward sub-layer, ``[B, T, C, H, W]`` -> same (``[B, len(keep), ...]``
        with ``keep``: the last layer computes only the frames that are kept)."""
        out = self.ff(self.ff_norm(x), lrs, flows, keep)
        return (x if keep is None else x[:, keep]) + self.gated(out)

    def forward(
        self, x: torch.Tensor, lrs: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        return self.feed_forward(self.attend(x), lrs, flows)
