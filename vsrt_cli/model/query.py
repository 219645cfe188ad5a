"""The forward pass of a ``per_frame_queries`` network: each output frame is computed by its own
pass, which reads the window's other frames as context.

In the paper's network every frame of the window is updated together through every layer, so a
5-frame window costs five single-frame networks and more (6.1x per training step on this CPU).
Here only the frame being computed (the *query*) goes through the layers; the window's frames
enter as their embedded features (stem, extraction blocks, positional encoding), once per window:
- attention: the query's tokens attend to its own tokens and to the other frames' tokens, through
  the same gate as :class:`~vsrt_cli.model.blocks.STCSA` (``own + g * (all - own)``);
- input: the neighbours' pixels, aligned by the flow, minus the query's own, through a
  zero-initialised two-conv fusion added to the query's embedding (:class:`EarlyFusion`): with
  the body frozen, on camera pans, this raised the held-out score where the feed-forward path
  alone lowered it;
- feed-forward: each direction's branch reads the query's own features (as a single-frame
  network does) plus, through its zero-initialised ``conv_neighbour``, the previous / next
  frame's context warped onto the query *minus the query's own context*: what the neighbour
  adds, not what the query already has (the redundant part only adds gradient noise).
At initialisation (gates and neighbour convs zero) it computes exactly what the single-frame
network does. The parameters are the paper network's (same names and shapes) plus the early
fusion's, so weights move between the two; the outputs differ once the neighbour paths are open.

One pass per output frame costs about 1.4x a single-frame network (the context embedding and the
fusion are the rest), so training at a fixed compute gets about 4x the steps of the joint network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vsrt_cli.model.blocks import TransformerBlock
from vsrt_cli.model.config import VSRTConfig
from vsrt_cli.model.layers import add_positional_encoding, flow_warp, lrelu
from vsrt_cli.model.quant import modulate


NEIGHBOURS = (-2, -1, 1, 2)  # offsets whose aligned pixels the early fusion reads


class EarlyFusion(nn.Module):
    """The neighbours' pixels, aligned: ``[query frame (3), warped(neighbour) - query frame
    (3 per neighbour)]`` -> conv, LeakyReLU, conv (zero-initialised) -> added to the query's
    embedding. Warping is bicubic: what a neighbour adds lives near the sampling limit, where
    bilinear interpolation removes most of it. A neighbour two frames away is warped along the
    two adjacent flows composed; one outside the window adds nothing."""

    def __init__(self, channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3 * (1 + len(NEIGHBOURS)), hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor], keep: list[int]) -> torch.Tensor:
        """``x [B, T, 3, H, W]``, flows ``[B, T, 2, H, W]`` -> ``[B * len(keep), C, H, W]``."""
        to_prev, to_next = flows
        rows = []
        for p in keep:
            own = x[:, p].float()
            parts = [own]
            for d in NEIGHBOURS:
                parts.append(self._aligned(x, to_prev, to_next, p, d) - own)
            rows.append(torch.cat(parts, dim=1))
        inp = rearrange(torch.stack(rows, dim=1), "b q c h w -> (b q) c h w")
        return self.conv2(lrelu(self.conv1(inp.to(self.conv1.weight.dtype))))

    @staticmethod
    def _aligned(x: torch.Tensor, to_prev: torch.Tensor, to_next: torch.Tensor, p: int, d: int) -> torch.Tensor:
        t = x.shape[1]
        if not 0 <= p + d < t:
            return x[:, p].float()
        step = to_next if d > 0 else to_prev
        flow = step[:, p].float()
        for j in range(p + (1 if d > 0 else -1), p + d, 1 if d > 0 else -1):  # compose: p -> j -> ...
            flow = flow + flow_warp(step[:, j].float(), flow)
        return flow_warp(x[:, p + d].float(), flow, mode="bicubic")


def _tokens(feat: torch.Tensor, heads: int, patch: int) -> torch.Tensor:
    """``[N, T, C, H, W]`` -> ``[N, heads, T * patches, C / heads * patch * patch]`` (the layout
    of :class:`~vsrt_cli.model.blocks.STCSA`'s tokens)."""
    return rearrange(feat, "n t (g c) (y p1) (x p2) -> n g (t y x) (c p1 p2)", g=heads, p1=patch, p2=patch)


def _context_of(ctx: torch.Tensor, keep: list[int]) -> torch.Tensor:
    """``[B, T, ...]`` -> ``[B * len(keep), T - 1, ...]``: for each query, the other frames."""
    t = ctx.shape[1]
    picked = [ctx[:, [j for j in range(t) if j != p]] for p in keep]
    return rearrange(torch.stack(picked, dim=1), "b q t ... -> (b q) t ...")


def _fold(x: torch.Tensor, keep: list[int]) -> torch.Tensor:
    """``[B, T, ...]`` -> ``[B * len(keep), ...]``, the queries' own entries."""
    return rearrange(x[:, keep], "b q ... -> (b q) ...")


def _attend(block: TransformerBlock, xq: torch.Tensor, ctx: torch.Tensor, keep: list[int]) -> torch.Tensor:
    """The attention sub-layer for queries ``xq [N, C, H, W]`` and the window's context
    ``ctx [B, T, C, H, W]``: each query attends to its own tokens and the other frames'."""
    attn = block.attn
    y = block.attn_norm(xq)
    q, k, v = attn.q(y), attn.k(y), attn.v(y)
    heads, p = attn.heads, attn.patch
    qt, kt, vt = (_tokens(f[:, None], heads, p) for f in (q, k, v))
    out = F.scaled_dot_product_attention(qt, kt, vt)
    b, t = ctx.shape[:2]
    if t > 1 and attn.cross_gate is not None:
        yc = block.attn_norm(ctx.flatten(0, 1))
        kc = _context_of(rearrange(attn.k(yc), "(b t) c h w -> b t c h w", b=b), keep)
        vc = _context_of(rearrange(attn.v(yc), "(b t) c h w -> b t c h w", b=b), keep)
        every = F.scaled_dot_product_attention(
            qt, torch.cat([kt, _tokens(kc, heads, p)], dim=2), torch.cat([vt, _tokens(vc, heads, p)], dim=2)
        )
        out = out + attn.cross_gate.to(out.dtype) * (every - out)
    h = xq.shape[-2]
    out = rearrange(out, "n g (y x) (c p1 p2) -> n (g c) (y p1) (x p2)", y=h // p, p1=p, p2=p)
    return xq + block.gated(y + attn.proj(out))


def _feed_forward(
    block: TransformerBlock, xq: torch.Tensor, lr: torch.Tensor, ctx: torch.Tensor,
    keep: list[int], flows: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """The feed-forward sub-layer for queries ``xq [N, C, H, W]`` (``lr [N, 3, H, W]``), the
    window's context ``ctx [B, T, C, H, W]`` and flows ``[B, T, 2, H, W]``."""
    ff = block.ff
    y = block.ff_norm(xq)
    b, t = ctx.shape[:2]
    normed = rearrange(block.ff_norm(ctx.flatten(0, 1)), "(b t) c h w -> b t c h w", b=b)
    own = _fold(normed, keep)
    to_prev, to_next = flows
    nxt = [min(p + 1, t - 1) for p in keep]
    prv = [max(p - 1, 0) for p in keep]
    from_next = flow_warp(rearrange(normed[:, nxt], "b q ... -> (b q) ..."), _fold(to_next, keep)) - own
    from_prev = flow_warp(rearrange(normed[:, prv], "b q ... -> (b q) ..."), _fold(to_prev, keep)) - own
    out_next = ff.from_next(lr, from_next, y)
    out_prev = ff.from_prev(lr, from_prev, y)
    return xq + block.gated(lrelu(ff.fuse(torch.cat([out_next, out_prev], dim=1))))


class QueryNet(Protocol):
    """What the query pass reads of the network (:class:`vsrt_cli.model.vsrt.VSRT`)."""

    config: VSRTConfig
    early_fusion: EarlyFusion | None
    blocks: nn.ModuleList

    def features(self, x: torch.Tensor, film: torch.Tensor | None = None) -> torch.Tensor: ...

    def encoding_order(self, t: int) -> list[int]: ...

    def reconstruct_frames(self, feat: torch.Tensor, frames: torch.Tensor) -> torch.Tensor: ...


def query_forward(
    net: QueryNet, x: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor], keep: Sequence[int] | None,
    film: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x [B, T, 3, H, W]`` -> ``[B, len(keep), 3, 4H, 4W]`` (all T frames if ``keep`` is None),
    each kept frame the query of its own pass (see the module docstring)."""
    b, t = x.shape[:2]
    keep = list(range(t)) if keep is None else list(keep)
    feat = net.features(x, film)
    query = add_positional_encoding(feat[:, keep], net.config.num_frame, [0] * len(keep))
    if net.early_fusion is not None:
        query = query + rearrange(net.early_fusion(x, flows, keep), "(b q) c h w -> b q c h w", b=b).to(query.dtype)
    ctx = add_positional_encoding(feat.clone(), net.config.num_frame, net.encoding_order(t))
    xq = rearrange(query, "b q c h w -> (b q) c h w")
    lr = _fold(x, keep)
    for i, block in enumerate(net.blocks):
        xq = _attend(block, xq, ctx, keep)
        xq = modulate(_feed_forward(block, xq, lr, ctx, keep, flows), film, 1 + i)
    return rearrange(net.reconstruct_frames(xq, lr), "(b q) c h w -> b q c h w", b=b)
