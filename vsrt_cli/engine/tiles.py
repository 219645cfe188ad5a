"""The model over one temporal window: flows cached across windows, tiles batched through the
model, HR tiles blended back, and the out-of-memory back-off. Torch only (no video I/O), so
benchmarks/device_check.py runs it where PyAV is not installed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import torch
import torch.nn.functional as F

from vsrt_cli.errors import NumericError, ResourceError
from vsrt_cli.model.quant import describe as describe_quant
from vsrt_cli.model.dis import DISFlow, dis_flow, grey_u8
from vsrt_cli.model.spynet import neighbours
from vsrt_cli.model.vsrt import SCALE, VSRT
from vsrt_cli.engine.runtime import (
    MIN_TILE,
    Precision,
    autocast,
    channels_last_wins,
    is_out_of_memory,
    release_memory,
)
from vsrt_cli.engine.schedule import TileGrid, normalised_weights, plan_tiles, smaller_tile

class FlowCache:
    """Flows (SPyNet or DIS) between source frames, computed once per frame pair on whole (padded) frames
    and reused by every window and tile that needs them.

    ``ahead``: each DIS pair computed for a window also starts its reverse pair on a worker thread
    (the host's OpenCV, which releases the GIL), while the model runs the window: with centred
    windows the pass reads both directions of each neighbour pair, one window apart, so each
    window then waits on one new pair instead of two. The frames are made grey on the calling
    thread, so the worker never touches the device."""

    def __init__(self, model: VSRT, chunk: int = 4, *, ahead: bool = False) -> None:
        self.model = model
        self.chunk = chunk
        self.ahead = ahead
        self.flows: dict[tuple[int, int], torch.Tensor | Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._device = torch.device("cpu")  # where the frames (and so the flows) are

    def window(
        self, frames: torch.Tensor, indices: tuple[int, ...], read: tuple[set[int], set[int]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames`` ``[T, 3, H, W]`` holding source frames ``indices`` -> ``(to_prev, to_next)``
        ``[1, T, 2, H, W]``, as :func:`~vsrt_cli.model.spynet.window_flows` computes them.
        ``read``: the positions whose ``(to_prev, to_next)`` flows the model will read (the
        model's ``flows_read``); the others are not computed and hold NaN, so a model that read
        one after all would make a non-finite frame, refused, never a silently wrong one."""
        t, _, h, w = frames.shape
        if not self.model.config.use_flow:
            zeros = frames.new_zeros(1, t, 2, h, w)
            return zeros, zeros
        self._device = frames.device
        prev, nxt = neighbours(t)
        read_prev, read_next = read if read is not None else (set(range(t)), set(range(t)))
        position = {index: j for j, index in enumerate(indices)}
        wanted = [(indices[j], indices[k]) if j in read_prev else None for j, k in zip(range(t), prev)]
        wanted += [(indices[j], indices[k]) if j in read_next else None for j, k in zip(range(t), nxt)]
        missing = [pair for pair in dict.fromkeys(wanted) if pair is not None and pair not in self.flows]
        for start in range(0, len(missing), self.chunk):
            pairs = missing[start : start + self.chunk]
            ref = torch.stack([frames[position[a]] for a, _ in pairs])
            supp = torch.stack([frames[position[b]] for _, b in pairs])
            for pair, flow in zip(pairs, self.model.flow_net(ref, supp)):
                self.flows[pair] = flow
        if self.ahead and isinstance(self.model.flow_net, DISFlow):
            self._start_reverses(frames, position, missing)
        got = {pair: self._get(pair) for pair in wanted if pair is not None}
        unread = None
        if None in wanted:
            unread = torch.full_like(next(iter(got.values())), float("nan"))
        stacked = torch.stack([got[pair] if pair is not None else unread for pair in wanted]).unsqueeze(0)
        return stacked[:, :t], stacked[:, t:]

    def _start_reverses(self, frames: torch.Tensor, position: dict[int, int], done: list[tuple[int, int]]) -> None:
        starts = [(b, a) for a, b in done if a != b and (b, a) not in self.flows]
        if not starts:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vsrt-flow")
        for ref, supp in starts:
            grey = grey_u8(torch.stack([frames[position[ref]], frames[position[supp]]]))
            self.flows[(ref, supp)] = self._pool.submit(dis_flow, grey[0], grey[1])

    def _get(self, pair: tuple[int, int]) -> torch.Tensor:
        """The flow of ``pair``, waiting for the worker if it is still computing it."""
        flow = self.flows[pair]
        if isinstance(flow, Future):
            host = torch.from_numpy(flow.result()).permute(2, 0, 1)
            flow = self.flows[pair] = host.to(device=self._device, dtype=torch.float32)
        return flow

    def forget_before(self, first: int) -> None:
        """Drop flows whose reference frame is before ``first`` (no window needs them again)."""
        for pair in [p for p in self.flows if p[0] < first]:
            flow = self.flows.pop(pair)
            if isinstance(flow, Future):
                flow.cancel()

    def clear(self) -> None:
        """Drop every flow (the frames were padded for another grid), waiting for none."""
        for flow in self.flows.values():
            if isinstance(flow, Future):
                flow.cancel()
        self.flows.clear()

    def close(self) -> None:
        """Stop the worker thread, if one was started."""
        self.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class TileRunner:
    """Runs the model over the tiles of one window and blends the HR tiles back together.

    The model is switched to channels-last weights where that is faster (see
    :func:`~vsrt_cli.engine.runtime.channels_last_wins`), and asked only for the kept frames.

    Out of memory (torch's ``OutOfMemoryError``, or cuDNN/cuBLAS allocation failures), it frees
    the failed call's memory and retries the same window using less, one step at a time: fewer
    tiles per call; fewer frame pairs per flow call, then flows per tile instead of on whole
    frames; then tiles of about half the side, never below
    :data:`~vsrt_cli.engine.runtime.MIN_TILE`; only then (or when the accumulator itself does not
    fit) the blend accumulator on the host, where every tile comes back synchronously. Each
    change is said once in :attr:`notices`; no frame is ever dropped.
    """

    def __init__(self, model: VSRT, grid: TileGrid, *, batch: int, device: torch.device, precision: Precision) -> None:
        self.model = model
        self.batch = batch
        self.device = device
        self.precision = precision
        # DIS reverse pairs on a worker thread where the model runs on a card; on the CPU, whose
        # cores the model already holds, it measured no faster (docs/PERFORMANCE.md)
        self.flow_cache = FlowCache(model, ahead=device.type == "cuda")
        self.whole_frame_flows = True
        self.accumulate_on = device
        self.notices: list[str] = []
        self.notes: list[str] = []  # information for the user, not problems
        self.defer_check = device.type == "cuda"  # finiteness read with the download (take_check)
        self._unchecked: tuple[torch.Tensor, list[int]] | None = None
        self._stage = "tiles"
        accepts = inspect.signature(model.forward if isinstance(model, torch.nn.Module) else model).parameters
        self._takes_keep = "keep" in accepts
        self._takes_quant = "quant" in accepts
        self._told: bool = getattr(model, "quant", None) is None  # said what a quant_film network is told
        self.describe = describe_quant  # the note on what it is told (the pipeline may say more)
        if isinstance(model, torch.nn.Module) and channels_last_wins(device):
            model.to(memory_format=torch.channels_last)
        self.set_grid(grid)

    def set_grid(self, grid: TileGrid) -> None:
        self.grid = grid
        self._blend_weights()
        self.flow_cache.clear()  # computed on frames padded for the old grid

    def _blend_weights(self) -> None:
        """The grid's blend weights, made once where the tiles are blended (the accumulator's
        memory), never copied between host and device in the middle of a window."""
        self.weights = [torch.from_numpy(w).to(self.accumulate_on) for w in normalised_weights(self.grid, SCALE)]

    def shrink(self, stage: str) -> bool:
        """Use less memory where ``stage`` (``flows``, ``tiles`` or ``accumulator``) failed.
        False if nothing is left to try."""
        def say(what: str) -> bool:
            self.notices.append(f"out of memory: retrying with {what}")
            return True

        if stage == "flows":
            if self.flow_cache.chunk > 1:
                old, self.flow_cache.chunk = self.flow_cache.chunk, max(1, self.flow_cache.chunk // 2)
                return say(f"{self.flow_cache.chunk} frame pair(s) per flow call (was {old})")
            if self.whole_frame_flows:
                self.whole_frame_flows = False
                self.flow_cache.clear()
                return say("flows computed per tile (was on whole frames)")
            return False
        if stage == "tiles" and self.batch > 1:
            old, self.batch = self.batch, max(1, self.batch // 2)
            return say(f"{self.batch} tile(s) per call (was {old})")
        if stage == "tiles":
            config, grid = self.model.config, self.grid
            smaller = smaller_tile(max(grid.tile), grid.height, grid.width, multiple=config.size_multiple,
                                   fixed=config.norm == "tile", minimum=MIN_TILE)
            if smaller is not None:
                overlap = min(grid.overlap or 16, smaller // 4)  # a whole-frame grid had none: seams need some
                self.set_grid(plan_tiles(grid.height, grid.width, tile=smaller, overlap=overlap, multiple=config.size_multiple))
                (h, w), (was_h, was_w) = self.grid.tile, grid.tile
                return say(f"{h}x{w} tiles, overlap {overlap} (was {was_h}x{was_w})")
        if self.accumulate_on.type != "cpu":  # the last resort: every tile then comes back synchronously
            self.accumulate_on = torch.device("cpu")
            self._blend_weights()
            return say("the tiles blended in host memory (was on the device)")
        return False

    def __call__(
        self, frames: torch.Tensor, positions: list[int], indices: tuple[int, ...] | None = None,
        quant: float | None = None,
    ) -> torch.Tensor:
        """``frames`` ``[T, 3, H, W]`` float in [0,1] -> HR ``[len(positions), 3, 4H, 4W]`` in [0,1]
        (on the device, or on the host once the accumulator has moved there).

        ``indices`` name the source frames so their flows are cached across windows; ``quant``
        is the window's quantiser (:func:`vsrt_cli.io.quant.mean_qp`, NaN/None unknown), for a
        network that reads it."""
        self._settle()
        while True:
            try:
                return self._window(frames, positions, indices, quant)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            # Outside the except block: the traceback, which held the failed call's tensors, is gone.
            release_memory(self.device)
            if not self.shrink(self._stage):
                tile = max(self.grid.tile)
                raise ResourceError(
                    f"out of {self.device.type.upper()} memory even with one {tile}x{tile} tile per call "
                    f"({reason}); free memory, use a smaller model or --device cpu"
                )

    def pad(self, frames: torch.Tensor) -> torch.Tensor:
        """``[T, 3, H, W]`` -> ``[T, 3, Hp, Wp]``, mirrored where the frame is big enough."""
        ph, pw = self.grid.padded[0] - frames.shape[-2], self.grid.padded[1] - frames.shape[-1]
        if ph == 0 and pw == 0:
            return frames
        mode = "reflect" if ph < frames.shape[-2] and pw < frames.shape[-1] else "replicate"
        return F.pad(frames, (0, pw, 0, ph), mode=mode)

    def _call(
        self, tiles: torch.Tensor, flows: tuple[torch.Tensor, ...] | None, positions: list[int], quant: float | None
    ) -> torch.Tensor:
        told = {"quant": quant} if self._takes_quant else {}
        if not self._told:
            self._told = True
            self.notes.append(self.describe(quant))
        if self._takes_keep:
            return self.model(tiles, flows, keep=positions, **told)
        return self.model(tiles, flows, **told)[:, positions]

    @torch.inference_mode()
    def _window(
        self, frames: torch.Tensor, positions: list[int], indices: tuple[int, ...] | None, quant: float | None
    ) -> torch.Tensor:
        h, w = frames.shape[-2:]
        padded = self.pad(frames.to(self.device))
        th, tw = self.grid.tile
        self._stage = "accumulator"
        out = torch.zeros(len(positions), 3, self.grid.padded[0] * SCALE, self.grid.padded[1] * SCALE, device=self.accumulate_on)
        origins = self.grid.origins
        if indices is None:  # no cache: number the window's frames afresh
            self.flow_cache.clear()
            indices = tuple(range(len(frames)))
        flows = None
        if self.whole_frame_flows:
            self._stage = "flows"
            with autocast(self.device, self.precision):
                # Flows on the whole (padded) frames, then cropped per tile: more context for SPyNet
                # and no repeated work in tile overlaps or overlapping windows.
                read = self.model.flows_read(len(frames), positions) if hasattr(self.model, "flows_read") else None
                flows = self.flow_cache.window(padded, indices, read)
        self._stage = "tiles"
        for start in range(0, len(origins), self.batch):
            chunk = origins[start : start + self.batch]
            tiles = torch.stack([padded[:, :, y : y + th, x : x + tw] for y, x in chunk])
            tile_flows = None if flows is None else tuple(
                torch.cat([f[:, :, :, y : y + th, x : x + tw] for y, x in chunk]) for f in flows
            )
            with autocast(self.device, self.precision):
                hr = self._call(tiles, tile_flows, positions, quant).float().to(self.accumulate_on)
            for i, (y, x) in enumerate(chunk):
                region = out[:, :, y * SCALE : (y + th) * SCALE, x * SCALE : (x + tw) * SCALE]
                region += hr[i] * self.weights[start + i]
        out = out[:, :, : h * SCALE, : w * SCALE]
        ids = [indices[p] for p in positions]
        if self.defer_check:
            self._unchecked = (torch.isfinite(out).flatten(1).all(1), ids)  # read with the frames
        else:
            self.check_finite(out, ids)
        return out.clamp_(0, 1)

    def take_check(self) -> tuple[torch.Tensor, Callable[[list[bool]], None]] | None:
        """The last window's finiteness, not yet read: ``(flags, refuse)``, ``flags`` ``[K]`` bool
        on the device and ``refuse(flags as a list)`` raising as :meth:`check_finite` does. Hand
        it to the window's :class:`~vsrt_cli.engine.runtime.Download`, which reads it with the
        frames, so the device is not waited for here. None when it was checked already."""
        if self._unchecked is None:
            return None
        flags, ids = self._unchecked
        self._unchecked = None
        return flags, lambda ok: self._refuse(ok, ids)

    def _settle(self) -> None:
        """A window check nobody took: read it now (a synchronisation), never skip it."""
        taken = self.take_check()
        if taken is not None:
            taken[1](taken[0].tolist())

    def check_finite(self, out: torch.Tensor, frames: list[int]) -> None:
        """Refuse a window whose blended HR frames ``out`` ``[K, 3, H, W]`` (source frames
        ``frames``) hold NaN or infinity: clamped, they would be written as black or white
        garbage. A NaN tile poisons its blend even where its weight is 0. One reduction per window.
        On CUDA (:attr:`defer_check`) the flags stay on the device and are read a window late,
        with the frames' download (:meth:`take_check`), not here."""
        if torch.isfinite(out).all():
            return
        self._refuse(torch.isfinite(out).flatten(1).all(1).tolist(), frames)

    def _refuse(self, ok: list[bool], frames: list[int]) -> None:
        bad = [f for f, fine in zip(frames, ok) if not fine]
        if not bad:
            return
        why = ("most likely an fp16 overflow; rerun with --precision bf16 or fp32" if self.precision == "fp16"
               else f"in {self.precision}, so the weights are probably broken; check them (`vsrt models info`)")
        more = f" (and {len(bad) - 1} more in this window)" if len(bad) > 1 else ""
        raise NumericError(f"the model's output for frame {bad[0]} (counting from 0) is not finite (NaN or infinite){more}: {why}")
