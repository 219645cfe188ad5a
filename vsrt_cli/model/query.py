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
# Scores (query tokens x keys) above which attention runs in the fused kernels: 2M fp32 numbers,
# 8 MB a tile (128 px tiles: 195 x 975 tokens; 256 px: 1024 x 5120, fused).
FUSED_ABOVE = 1 << 21


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


def flows_read(t: int, keep: Sequence[int]) -> tuple[set[int], set[int]]:
    """The window positions whose ``to_prev`` and ``to_next`` flows the pass for queries ``keep``
    of a ``t``-frame window reads: each query's own pair of flows (a window end's is its self
    pair), and the adjacent one that composes the path to a neighbour two frames away
    (:class:`EarlyFusion`). The other flows of the window are never read."""
    prev, nxt = set(), set()
    for p in (j % t for j in keep):
        prev.add(p)
        nxt.add(p)
        if p - 2 >= 0:
            prev.add(p - 1)
        if p + 2 < t:
            nxt.add(p + 1)
    return prev, nxt


def _tokens(feat: torch.Tensor, heads: int, patch: int) -> torch.Tensor:
    """``[N, T, C, H, W]`` -> ``[N, heads, T * patches, C / heads * patch * patch]`` (the layout
    of :class:`~vsrt_cli.model.blocks.STCSA`'s tokens)."""
    return rearrange(feat, "n t (g c) (y p1) (x p2) -> n g (t y x) (c p1 p2)", g=heads, p1=patch, p2=patch)


def _others(t: int, keep: list[int]) -> tuple[list[int], list[list[int]] | None]:
    """The frames that are some query's context (``used``), and for each query the positions of
    its own context frames within ``used`` (None when that is every query's ``used`` in order)."""
    rows = [[j for j in range(t) if j != p] for p in keep]
    used = sorted({j for row in rows for j in row})
    pick = [[used.index(j) for j in row] for row in rows]
    return used, None if all(row == list(range(len(used))) for row in pick) else pick


def _fold(x: torch.Tensor, keep: list[int]) -> torch.Tensor:
    """``[B, T, ...]`` -> ``[B * len(keep), ...]``, the queries' own entries."""
    return rearrange(x[:, keep], "b q ... -> (b q) ...")


def _softmax_parts(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Attention of ``q [..., L, D]`` over ``k, v [..., M, D]`` left unnormalised: ``(a, z, m)``,
    ``softmax(qk^T / sqrt(D)) v = a / z`` with ``m`` the scores' row maximum (fp32)."""
    scale = q.shape[-1] ** -0.5
    if q.dtype == torch.float16:  # scaled before the product: 2048-number dot products can pass fp16's range
        scores = torch.matmul(q * scale, k.transpose(-1, -2)).float()
    else:
        scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale
    m = scores.detach().amax(dim=-1, keepdim=True)  # for range only: its gradient cancels
    e = (scores - m).exp()
    return torch.matmul(e.to(v.dtype), v).float(), e.sum(dim=-1, keepdim=True), m


def _attention(
    qt: torch.Tensor, kt: torch.Tensor, vt: torch.Tensor,
    context: tuple[torch.Tensor, torch.Tensor] | None, gate: torch.Tensor | None,
) -> torch.Tensor:
    """``own + gate * (every - own)``: ``own`` the queries' tokens attending to their own frame's
    tokens ``kt, vt``, ``every`` to those and the ``context`` frames' tokens together. Each part
    is one score matrix and the two softmaxes are merged through their sums, so the own tokens
    are scored once and nothing is concatenated: on this CPU 2.3x faster than two fused-kernel
    calls on the joined keys (its tiles fit small heads; these tokens hold 2048 numbers). The
    score matrices are held whole, so above :data:`FUSED_ABOVE` scores per query row set (tiles
    past about 200 px) the fused kernels run instead, which never hold them."""
    if qt.shape[-2] * (kt.shape[-2] + (0 if context is None else context[0].shape[-2])) > FUSED_ABOVE:
        own = F.scaled_dot_product_attention(qt, kt, vt)
        if context is None:
            return own
        every = F.scaled_dot_product_attention(qt, torch.cat([kt, context[0]], dim=2), torch.cat([vt, context[1]], dim=2))
        return own + gate.to(own.dtype) * (every - own)
    a, z, m = _softmax_parts(qt, kt, vt)
    own = a / z
    if context is None:
        return own.to(vt.dtype)
    ac, zc, mc = _softmax_parts(qt, *context)
    top = torch.maximum(m, mc)
    w, wc = (m - top).exp(), (mc - top).exp()
    every = (a * w + ac * wc) / (z * w + zc * wc)
    return (own + gate.float() * (every - own)).to(vt.dtype)


def _attend(block: TransformerBlock, xq: torch.Tensor, ctx: torch.Tensor, keep: list[int]) -> torch.Tensor:
    """The attention sub-layer for queries ``xq [N, C, H, W]`` and the window's context
    ``ctx [B, T, C, H, W]``: each query attends to its own tokens and the other frames'. Only
    frames some query reads as context get keys and values (not the centre, for one centred
    query)."""
    attn = block.attn
    y = block.attn_norm(xq)
    q, k, v = attn.q(y), attn.k(y), attn.v(y)
    heads, p = attn.heads, attn.patch
    qt, kt, vt = (_tokens(f[:, None], heads, p) for f in (q, k, v))
    b, t = ctx.shape[:2]
    context = None
    if t > 1 and attn.cross_gate is not None:
        used, pick = _others(t, keep)
        yc = rearrange(block.attn_norm(ctx.flatten(0, 1)), "(b t) c h w -> b t c h w", b=b)[:, used].flatten(0, 1)
        context = []
        for conv in (attn.k, attn.v):
            kv = rearrange(conv(yc), "(b t) c h w -> b t c h w", b=b)
            if pick is not None:  # several queries: each its own others
                kv = rearrange(torch.stack([kv[:, row] for row in pick], dim=1), "b q t ... -> (b q) t ...")
            context.append(_tokens(kv, heads, p))
        context = tuple(context)
    out = _attention(qt, kt, vt, context, attn.cross_gate)
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
