"""What the temporal metrics need beyond pixels: the reference's motion and which model call made
each output frame.

The motion is dense inverse search optical flow (:mod:`vsrt_cli.model.dis`, no weights).
Why a dense flow rather than one global shift or block matching: real clips hold parallax, objects
moving against the camera and zooms; a single shift calls all of that "flicker", and block
matching is blocky exactly at the motion edges where super-resolution flickers most. Why not the
SPyNet of the bundled 5-frame model: the project has no pretrained SPyNet, and the one it trained
warped real footage worse than no flow at all. The flow is computed on the *reference* (ground
truth, or a bicubic upscale when there is none), so every output is judged along the same
motion and a model cannot lower its score by being blurry enough to confuse the flow. It is
computed at a working size of at most ``max_side`` pixels (area-downscaled, flows scaled back
up): the metric looks at flicker, not at sub-pixel detail, and a 4K pair costs ~1/40 the time.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vsrt_cli.model.dis import DISFlow
from vsrt_cli.engine.schedule import WindowPlanner


class ReferenceFlow:
    """``flow(prev, cur)`` -> ``(to_prev, to_cur)``: ``[H, W, 2]`` float flows of frame t to
    t-1 and of t-1 to t (pixels, x first), for ``[H, W, 3]`` uint8 frames."""

    def __init__(self, estimator: torch.nn.Module | None = None, *, max_side: int = 512) -> None:
        self.estimator = (estimator if estimator is not None else DISFlow()).eval()
        self.max_side = max_side

    @torch.inference_mode()
    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = cur.shape[:2]
        frames = torch.from_numpy(np.stack([cur, prev])).permute(0, 3, 1, 2).float() / 255.0  # [2, 3, H, W]
        factor = max(1, -(-max(h, w) // self.max_side))
        small = F.interpolate(frames, scale_factor=1 / factor, mode="area") if factor > 1 else frames
        # one batched call: (ref cur, supp prev) and (ref prev, supp cur)
        flows = self.estimator(small, small.flip(0))  # [2, 2, h', w']
        if factor > 1:
            size = flows.shape[-2:]
            flows = F.interpolate(flows, size=(h, w), mode="bilinear", align_corners=False)
            flows = flows * torch.tensor([w / size[1], h / size[0]]).view(1, 2, 1, 1)
        flows = flows.permute(0, 2, 3, 1).numpy().astype(np.float64)
        return flows[0], flows[1]


def call_ids(frames: int, window: int, stride: int, chunk_starts: tuple[int, ...] = ()) -> list[int]:
    """For each of ``frames`` output frames, the number of the model call that produced it, as
    the pipeline schedules calls (:class:`~vsrt_cli.engine.schedule.WindowPlanner`); a chunk start
    (a separate run whose outputs were stitched) always begins a new call."""
    planner = WindowPlanner(window, stride)
    ids = [0] * frames
    for number, win in enumerate(planner.ready(frames, eof=True)):
        for _, index in win.outputs:
            ids[index] = number
    bump = 0
    starts = set(chunk_starts)
    for index in range(frames):
        if index in starts and index > 0:
            bump += frames  # distinct from every call number of the previous chunk
        ids[index] += bump
    return ids
