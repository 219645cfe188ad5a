"""Flows of whole LR frames, computed once per training sequence by a frozen flow estimator (SPyNet or DIS) and cached.

A video-model training step then crops them with its window instead of running SPyNet on the
crop, as the upscale pipeline does at inference (flows of whole frames, cut per tile).

Layout: ``[N, h, w, 4]`` float16 per sequence, channels ``(to_prev x, to_prev y, to_next x,
to_next y)`` in LR pixels: ``to_prev[j]`` is flow(f_j -> f_{j-1}), ``to_next[j]`` is
flow(f_j -> f_{j+1}); where a neighbour is missing (the sequence's ends) the flow is zero.
Windows use the same layout, so the image augmentations apply to flows with
:func:`augment_flow`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from vsrt_cli.model.spynet import SPyNet

PAIRS_PER_CALL = 8


def flow_digest(estimator: torch.nn.Module) -> str:
    """What names a flow estimator's cached flows: DIS's version tag, or a short hash of
    SPyNet's weights."""
    tag = getattr(estimator, "digest", None)
    return tag if isinstance(tag, str) else spynet_digest(estimator)


def spynet_digest(spynet: SPyNet) -> str:
    """A short hash of SPyNet's weights."""
    h = hashlib.sha256()
    for key, value in sorted(spynet.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _pairs(n: int) -> Iterator[tuple[int, int, int]]:
    """``(frame, neighbour, channel offset)`` of every flow a sequence of ``n`` frames needs."""
    for j in range(n):
        if j > 0:
            yield j, j - 1, 0
        if j < n - 1:
            yield j, j + 1, 2


@torch.no_grad()
def sequence_flows(spynet: torch.nn.Module, lr: np.ndarray) -> np.ndarray:
    """``lr [N, h, w, 3]`` uint8 -> ``[N, h, w, 4]`` float16 flows (layout: module docstring)."""
    n, h, w, _ = lr.shape
    out = np.zeros((n, h, w, 4), dtype=np.float16)
    spynet.eval()
    pairs = list(_pairs(n))
    for start in range(0, len(pairs), PAIRS_PER_CALL):
        chunk = pairs[start : start + PAIRS_PER_CALL]
        ref = torch.from_numpy(np.stack([lr[j] for j, _, _ in chunk])).permute(0, 3, 1, 2).float() / 255
        supp = torch.from_numpy(np.stack([lr[k] for _, k, _ in chunk])).permute(0, 3, 1, 2).float() / 255
        flows = spynet(ref, supp).permute(0, 2, 3, 1).numpy()
        for (j, _, ch), flow in zip(chunk, flows):
            out[j, :, :, ch : ch + 2] = flow
    return out


def cached_flows(spynet: torch.nn.Module, lr: np.ndarray, file: Path) -> np.ndarray:
    """The flows of ``lr`` from ``file`` (memory-mapped), computed and written first if absent."""
    if not file.exists():
        tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp.npy")  # processes sharing a cache
        np.save(tmp, sequence_flows(spynet, np.asarray(lr)))
        tmp.replace(file)
    return np.load(file, mmap_mode="r")


def window_ends_still(flow: np.ndarray) -> np.ndarray:
    """A window's ``[T, h, w, 4]`` flows cut from a sequence: the first frame has no previous
    and the last no next neighbour inside the window (the model uses the frame itself there,
    whose flow to itself is ~0)."""
    flow = np.array(flow, dtype=np.float32)
    flow[0, ..., 0:2] = 0.0
    flow[-1, ..., 2:4] = 0.0
    return flow


def pan_flows(offsets: np.ndarray, height: int, width: int) -> np.ndarray:
    """The exact flows ``[T, h, w, 4]`` of a camera-motion window whose frame ``k`` shows the
    scene moved by ``offsets[k]`` (LR px, see :mod:`vsrt_cli.train.motion`): flow(f_j -> f_k)
    is ``offsets[j] - offsets[k]`` everywhere; zero at the window ends."""
    t = len(offsets)
    flow = np.zeros((t, height, width, 4), dtype=np.float32)
    for j in range(t):
        if j > 0:
            flow[j, ..., 0:2] = offsets[j] - offsets[j - 1]
        if j < t - 1:
            flow[j, ..., 2:4] = offsets[j] - offsets[j + 1]
    return flow


def augment_flow(
    flow: np.ndarray, hflip: int, vflip: int, transpose: int, reverse: int
) -> np.ndarray:
    """The flows of a window after the image augmentation ``(hflip, vflip, transpose, reverse)``
    of :func:`vsrt_cli.train.data.augment` (applied in that order): flips negate a component
    and mirror the field, a transpose swaps x and y, time reversal swaps previous and next."""
    if hflip:
        flow = flow[:, :, ::-1] * np.array([-1, 1, -1, 1], dtype=flow.dtype)
    if vflip:
        flow = flow[:, ::-1] * np.array([1, -1, 1, -1], dtype=flow.dtype)
    if transpose:
        flow = flow.transpose(0, 2, 1, 3)[..., [1, 0, 3, 2]]
    if reverse:
        flow = flow[::-1][..., [2, 3, 0, 1]]
    return flow


def to_flow_tensors(flow: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``[..., T, h, w, 4]`` -> ``(to_prev, to_next)``, each ``[..., T, 2, h, w]`` float32."""
    t = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).movedim(-1, -3)
    return t[..., 0:2, :, :].contiguous(), t[..., 2:4, :, :].contiguous()
