"""How much fits on the device: the model's peak memory per call, as a formula of its config, and
the default tile and tiles-per-call chosen from free device memory. Pure arithmetic over the
config and integers (plus :class:`LiveTensorBytes`, the meter the formula was measured with);
nothing here allocates on a device, reads files or prints.

The formula (docs/PERFORMANCE.md, "Memory per tile"): with ``C = num_feat``, ``T`` frames in the
window and ``K`` of them kept (reconstructed), one model call on ``P`` LR pixels of tiles
(tiles per call x tile height x tile width) holds at its peak, in elements per LR pixel,

- joint networks (the paper's): ``max(T * (11C + 3), K * (37C + 3))``: either all frames'
  features inside a layer, or the kept frames' HR reconstruction (the x2 pixel shuffle of 16C
  channels per LR pixel, its input, and the shuffled 4C);
- ``per_frame_queries`` networks: ``2TC + K * (38C + 3)``: the window's context features, then
  each query's layers and reconstruction (the queries of a call run as one batch).

Measured on the CPU in fp32 with :class:`LiveTensorBytes` (every tensor the forward allocates,
in inference mode) for vsrt-cpu-small-1f, vsrt-cpu-small and vsrt-cpu-small-5f, exact to 0.1% at
32 and 64 px tiles (tests/test_budget.py). Under fp16/bf16 autocast (measured in bf16) some stay
fp32: per kept frame ``C + 3`` of the reconstruction (``4C + 3`` with ``per_frame_queries``), and
in the joint layers all but ``C`` per frame (norms and the residual stream); the rest takes the
precision's bytes. Depth and block counts do not change it: inference frees each layer's activations.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from vsrt_cli.model.vsrt import SCALE, VSRTConfig
from vsrt_cli.engine.runtime import MIN_TILE
from vsrt_cli.engine.schedule import TileGrid, plan_tiles, round_up

SHARE = 0.65  # of free device memory planned for; the rest: cuDNN workspaces, allocator rounding
# Every device's largest default tile side. Attention is global over a tile's patches, so its
# cost per pixel grows with the tile, and quality falls with it (the models were trained on
# 32-64 px patches): at 320x180, 64..512 px tiles and the whole frame on the held-out clips,
# PSNR-Y fell monotonically from 64 px (+0.03 dB over 128) to the whole frame (-0.02..-0.04 dB),
# and the CPU's time per frame was flat from 128 up while 64 cost 1.6x (docs/PERFORMANCE.md,
# "The tile table"; `python benchmarks/tiles.py`).
TILE = 128
CPU_TILE, CPU_BATCH = TILE, 4  # the CPU's defaults
FP32 = 4


@dataclass(frozen=True)
class Tiling:
    tile: int  # LR pixels, 0 = whole frame
    batch: int  # tiles per model call


def call_bytes(config: VSRTConfig, *, frames: int, kept: int, pixels: int, element_bytes: int) -> int:
    """Peak bytes of one forward (inference mode) over ``pixels`` LR pixels of tiles (all tiles
    of the call together), ``frames`` in the window, ``kept`` of them reconstructed, activations
    of ``element_bytes`` (4 fp32, 2 fp16/bf16). The formula of the module docstring."""
    c, t, k, e = config.num_feat, frames, kept, element_bytes
    if config.per_frame_queries:
        exact = k * (4 * c + 3)  # fp32 under autocast too: the queries' residual stream
        return ((2 * t * c + k * (38 * c + 3) - exact) * e + exact * FP32) * pixels
    layers = t * (c * e + (10 * c + 3) * FP32)  # in the layers, norms and the residual stay fp32
    hr = k * (36 * c * e + (c + 3) * FP32)  # the HR tensors, beside the fp32 LR features and frame
    return max(layers, hr) * pixels


def resident_bytes(grid: TileGrid, *, frames: int, kept: int) -> int:
    """What stays on the device beside a call, for one window (all fp32): the frames it reads
    (held for the next window too, padded copies) and their flows, the call's tiles, the HR
    accumulator of the kept frames, and each tile's blend weights."""
    frame_px = grid.padded[0] * grid.padded[1]
    tile_px = grid.tile[0] * grid.tile[1]
    lr = frame_px * frames * (3 * 3 + 2 * 2 * 2)  # frames x3 (buffer, next window, padded), 2 flows
    hr = kept * 3 * SCALE**2 * frame_px + len(grid.origins) * SCALE**2 * tile_px
    return FP32 * (lr + hr)


def default_tiling(
    config: VSRTConfig, *, frames: int, kept: int | None = None, size: tuple[int, int] | None,
    element_bytes: int, free_bytes: int | None, overlap: int | None = None, share: float = SHARE, tile: int | None = None,
) -> Tiling:
    """The default tile and tiles per call for ``frames``-frame windows (``kept`` of them
    reconstructed per call: at most all, at a clip's end) of ``size`` = (height, width) LR frames.

    ``free_bytes`` None (the CPU): :data:`CPU_TILE`, :data:`CPU_BATCH`. On a device: the largest
    tile up to :data:`TILE` whose call and :func:`resident_bytes` fit in ``share`` of
    ``free_bytes`` (a multiple of the model's ``size_multiple``, at least :data:`MIN_TILE`; a
    frame smaller than the tile gets one tile just covering it), then as many tiles per call as
    fit, at most a frame's tiles. Never the whole of a larger frame: attention over all its
    patches costs more per pixel and scores lower. Fixed-tile models (``norm="tile"``) keep
    their tile. ``size`` None: clips of several sizes, the same rule.
    ``tile`` given (``--tile``): only the tiles per call are chosen, for that tile.
    At worst the smallest tile, one per call: the out-of-memory back-off takes over from there.
    """
    fixed = config.norm == "tile"
    overlap = config.default_overlap if overlap is None else overlap
    if free_bytes is None:
        return Tiling(config.tile if fixed else CPU_TILE, CPU_BATCH)
    kept = frames if kept is None else kept
    m = config.size_multiple
    budget = free_bytes * share

    def grid(tile: int) -> TileGrid:
        h, w = size if size is not None else (tile, tile)
        side = tile or max(h, w)
        return plan_tiles(h, w, tile=tile, overlap=min(overlap, side // 4) if tile else 0, multiple=m, fixed=fixed)

    def most_tiles(g: TileGrid) -> int:
        """Most tiles per call that fit on grid ``g`` (0: not even one)."""
        px, spare = g.tile[0] * g.tile[1], budget - resident_bytes(g, frames=frames, kept=kept)
        per_tile = call_bytes(config, frames=frames, kept=kept, pixels=px, element_bytes=element_bytes)
        return max(0, min(len(g.origins), int(spare // per_tile)))

    if fixed or tile is not None:
        tile = config.tile if fixed else tile
        if tile == 0 and size is None:
            return Tiling(0, 1)
        return Tiling(tile, max(1, most_tiles(grid(tile))))
    floor = max(round_up(MIN_TILE, m), m)
    top = max(round_up(TILE, m), floor)
    for side in range(top, floor - 1, -m):
        if (fit := most_tiles(grid(side))) >= 1:
            return Tiling(side, fit)
    return Tiling(floor, 1)


def tiling_for(
    config: VSRTConfig, device: torch.device, precision: str, *, window: int, stride: int, overlap: int,
    size: tuple[int, int] | None = None, tile: int | None = None, batch: int | None = None,
) -> tuple[Tiling, int | None]:
    """The tiling ``vsrt upscale`` runs with on ``device`` (``tile``/``batch`` where given; the
    rest by :func:`default_tiling`, on CUDA for the card's free memory now, with the model
    already there) and that free memory (None on the CPU). ``size`` ``(H, W)``: the one clip's
    frame size, None for clips of several sizes. The one place the rule is applied: the job
    builder, the Ray workers and ``benchmarks/device_check.py`` call it."""
    from vsrt_cli.engine import runtime

    if tile is not None and batch is not None:
        return Tiling(tile, batch), None
    free = runtime.free_memory(device)
    chosen = default_tiling(
        config, frames=window, kept=1 if stride == 1 else window,  # a clip's end keeps the whole window
        size=size if free is not None else None, element_bytes=4 if precision == "fp32" else 2,
        free_bytes=free, overlap=overlap, tile=tile,
    )
    return Tiling(chosen.tile if tile is None else tile, chosen.batch if batch is None else batch), free


class LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of the tensors created while it is active and still alive, and their
    peak: what a caching device allocator must hold for the same ops (less kernels' own
    scratch). A tensor's storage counts once however many views share it, until the last one
    is gone. Use around a forward in inference mode; tensors made before do not count."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._refs: dict[int, list[int]] = {}  # storage address -> [views alive, bytes]

    def _release(self, key: int) -> None:
        entry = self._refs[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key == 0:
                continue
            if key not in self._refs:
                self._refs[key] = [0, storage.nbytes()]
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            self._refs[key][0] += 1
            weakref.finalize(tensor, self._release, key)
        return out
