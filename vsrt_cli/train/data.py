"""Training data: which clips, decoding, the cleaned GT / BI LR cache, and sampling.

Every sequence is decoded once (PyAV, RGB24), downscaled by ``gt_scale`` with the antialiased
MATLAB bicubic to get cleaner ground truth (the sources are lossy), cropped to a multiple of 4,
and degraded with the BI protocol. GT and LR are cached as uint8 ``.npy`` under the cache dir
and memory-mapped, so a resumed run starts in seconds. Samples are aligned random crops with
flips, transposes and temporal reversal, drawn from a numpy Generator the caller seeds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from vsrt_cli.model.spynet import SPyNet
from vsrt_cli.train.degrade import SCALE, bi_degrade, crop_to_multiple, resize_uint8
from vsrt_cli.train.flowcache import (
    augment_flow, cached_flows, flow_digest, pan_flows, sequence_flows, to_flow_tensors, window_ends_still,
)
from vsrt_cli.train.motion import film, margin_for, motion_window
from vsrt_cli.train.realdeg import CLEAN_SHARE, real_degrade
from vsrt_cli.train.sources import DATA_LICENCES, TRAIN_SOURCES, VAL_SOURCES  # noqa: F401
from vsrt_cli.train.validate import ValWindow, to_tensor

REAL_CONTEXT = 5  # frames a ``real`` window is degraded with (see WindowSampler)
# LR px on each side of the patch that a window degraded for flows from its own frames carries:
# the flow estimator needs surroundings, and a 32 px patch then fills the codec's 64 px minimum.
FLOW_CONTEXT = 16
MAX_FRAMES = 480  # per sequence; the long static surveillance clips would otherwise dominate


@dataclass(frozen=True)
class Sequence:
    """One decoded sequence: ``gt [N, 4h, 4w, 3]`` and ``lr [N, h, w, 3]``, both uint8, and
    optionally the flows of its whole LR frames, ``[N, h, w, 4]`` (see ``flowcache``)."""

    name: str
    gt: np.ndarray
    lr: np.ndarray
    flows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.gt)


def decode_video(path: Path, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """The first ``max_frames`` frames of a video as ``[N, H, W, 3]`` uint8 RGB."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= max_frames:
                break
    return np.stack(frames)


def decode_sequence(path: Path, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """A video file, or a folder of PNG frames in name order, as ``[N, H, W, 3]`` uint8 RGB."""
    if path.is_dir():
        files = sorted(path.glob("*.png"))[:max_frames]
        return np.stack([decode_video(f, 1)[0] for f in files])
    return decode_video(path, max_frames)


def sequence_paths(root: Path, sources: dict[str, tuple[str, ...]]) -> list[tuple[str, Path]]:
    """``(name, path)`` of every sequence of ``sources`` under ``root`` (a PNG folder is one)."""
    out = []
    for source, patterns in sources.items():
        for pattern in patterns:
            if pattern == "*.png":
                out.append((source, root / source))
                continue
            matches = sorted((root / source).glob(pattern))
            if not matches:
                raise FileNotFoundError(f"no {pattern} in {root / source}")
            out.extend((f"{source}/{m.stem}", m) for m in matches)
    return out


def prepare(frames: np.ndarray, gt_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Decoded frames -> (GT, LR): optional cleaning downscale, crop to a multiple of 4, BI."""
    gt = frames if gt_scale == 1.0 else resize_uint8(frames, gt_scale)
    gt = np.ascontiguousarray(crop_to_multiple(gt))
    return gt, bi_degrade(gt)


def load_sequences(
    root: Path, sources: dict[str, tuple[str, ...]], cache: Path, gt_scale: float,
    max_frames: int = MAX_FRAMES, spynet: SPyNet | None = None,
) -> list[Sequence]:
    """Decode (or read from ``cache``) every sequence of ``sources``, memory-mapped; with
    ``spynet``, also the flows of its whole LR frames (computed once, cached beside them)."""
    cache.mkdir(parents=True, exist_ok=True)
    seqs = []
    for name, path in sequence_paths(root, sources):
        stem = cache / f"{name.replace('/', '__')}_gt{gt_scale:g}_n{max_frames}"
        gt_file, lr_file = stem.with_name(stem.name + ".gt.npy"), stem.with_name(stem.name + ".lr.npy")
        if not (gt_file.exists() and lr_file.exists()):
            gt, lr = prepare(decode_sequence(path, max_frames), gt_scale)
            for file, arr in ((gt_file, gt), (lr_file, lr)):
                tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp.npy")  # processes sharing a cache
                np.save(tmp, arr)
                tmp.replace(file)
        lr = np.load(lr_file, mmap_mode="r")
        flows = None
        if spynet is not None:
            flow_file = stem.with_name(f"{stem.name}.flow-{flow_digest(spynet)}.npy")
            flows = cached_flows(spynet, lr, flow_file)
        seqs.append(Sequence(name, np.load(gt_file, mmap_mode="r"), lr, flows))
    return seqs


def source_of(name: str) -> str:
    return name.split("/")[0]


@dataclass(frozen=True)
class Motion:
    """Camera-motion windows (see :mod:`vsrt_cli.train.motion`): the share of samples that are
    one real frame filmed by a panning, shaking camera instead of a real window."""

    share: float = 0.0
    max_speed: float = 1.5  # LR px per frame
    jitter: float = 0.35  # LR px
    reference_frames: int = 5  # the margin is sized for this window length (or T if longer)

    def margin(self, frames: int) -> int:
        return margin_for(self.max_speed, self.jitter, max(self.reference_frames, frames))


class WindowSampler:
    """Random aligned ``(lr [T, 3, p, p], gt [T, 3, 4p, 4p])`` float windows in [0, 1], and
    with ``flows`` their cached whole-frame flows (exact ones for motion windows).

    Each source (folder) is equally likely; within a source a sequence is picked in proportion
    to its length. With ``motion.share > 0`` that share of samples is a motion window made from
    one frame of the picked sequence, when its frames are large enough (for windows of up to 5
    frames neither that choice nor the crop's place depends on T, so a single-frame run draws
    its centre frames from the same distribution as a 5-frame one).
    With ``flow_net`` (a ``real`` run's frozen estimator) the flows are not cut from the cache
    but estimated on the degraded window, which is drawn ``FLOW_CONTEXT`` px larger on every side
    (as far as the frames allow) and cropped after: the network trains on the flows it will get
    from a compressed video, not on the clean frames' flows it never sees at inference.
    Augmentation: horizontal/vertical flips, transpose, temporal reversal.
    """

    def __init__(
        self, seqs: list[Sequence], frames: int, patch: int, motion: Motion = Motion(),
        *, flows: bool = False, degradation: str = "bi", clean_share: float = CLEAN_SHARE, hide_quant: float = 0.0,
        flow_net: torch.nn.Module | None = None,
    ) -> None:
        if flow_net is not None and not (flows and degradation == "real"):
            raise ValueError("flows estimated on degraded windows need flows=True and degradation='real'")
        self.frames, self.patch, self.motion, self.flows, self.flow_net = frames, patch, motion, flows, flow_net
        self.degradation, self.clean_share, self.hide_quant = degradation, clean_share, hide_quant
        # ``real`` degrades a whole 5-frame window (a codec's frame depends on its neighbours)
        # and keeps its centre ``frames``: a single-frame twin sees the same artefacts.
        self.drawn = max(frames, REAL_CONTEXT) if degradation == "real" else frames
        if flows and any(s.flows is None for s in seqs):
            raise ValueError("flows=True needs sequences loaded with their flows (spynet=...)")
        usable = [s for s in seqs if len(s) >= self.drawn and min(s.lr.shape[1:3]) >= patch]
        if not usable:
            raise ValueError(f"no sequence has {self.drawn} frames of at least {patch}x{patch} LR")
        self.sources = sorted({source_of(s.name) for s in usable})
        self.by_source = {k: [s for s in usable if source_of(s.name) == k] for k in self.sources}
        self.margin = motion.margin(self.drawn)
        self.movable = {s.name for s in usable if min(s.lr.shape[1:3]) >= patch + 2 * self.margin}

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
        """``(lr [T, p, p, 3], gt [T, 4p, 4p, 3], flows [T, p, p, 4] or None, quant)``: ``quant``
        how hard the LR was compressed (0 for BI; see :func:`real_degrade`), NaN (unknown) for a
        ``hide_quant`` share of the windows (drawn only when that share is not 0)."""
        group = self.by_source[self.sources[rng.integers(len(self.sources))]]
        lengths = np.array([len(s) for s in group], dtype=np.float64)
        seq = group[rng.choice(len(group), p=lengths / lengths.sum())]
        p, n = self.patch, self.drawn
        side = min(seq.lr.shape[1:3])
        if self.motion.share > 0 and rng.random() < self.motion.share and seq.name in self.movable:
            m = self.motion
            c = self.context(side - 2 * self.margin)
            p += 2 * c
            frame = np.asarray(seq.gt[rng.integers(len(seq))])
            lr, gt, offsets = motion_window(frame, rng, n, p, self.margin, m.max_speed, m.jitter)
            flow = pan_flows(offsets, p, p) if self.flows and self.flow_net is None else None
        else:
            c = self.context(side)
            p += 2 * c
            t0 = rng.integers(len(seq) - n + 1)
            y = rng.integers(seq.lr.shape[1] - p + 1)
            x = rng.integers(seq.lr.shape[2] - p + 1)
            window = slice(t0, t0 + n)
            lr = np.asarray(seq.lr[window, y : y + p, x : x + p])
            s = SCALE
            gt = np.asarray(seq.gt[window, s * y : s * (y + p), s * x : s * (x + p)])
            cut = self.flows and self.flow_net is None
            flow = window_ends_still(seq.flows[window, y : y + p, x : x + p]) if cut else None
        quant = 0.0
        if self.degradation == "real":
            lr, quant = real_degrade(gt, rng, self.clean_share)
            keep = slice((n - self.frames) // 2, (n - self.frames) // 2 + self.frames)
            lr, gt = lr[keep], gt[keep]
            if self.flow_net is not None:  # on the frames kept: the ends have no neighbour
                flow = sequence_flows(self.flow_net, np.ascontiguousarray(lr))
            elif flow is not None:
                flow = window_ends_still(flow[keep])
        if c:
            s, inner = SCALE, slice(c, c + self.patch)
            lr, gt = lr[:, inner, inner], gt[:, s * c : s * (c + self.patch), s * c : s * (c + self.patch)]
            flow = flow[:, inner, inner] if flow is not None else None
        lr, gt, flow = augment(lr, gt, rng, flow)
        if self.hide_quant > 0 and rng.random() < self.hide_quant:  # after every other draw
            quant = float("nan")
        return lr, gt, flow, quant

    def context(self, side: int) -> int:
        """LR px drawn around the patch on each side, in frames whose smaller side is ``side``."""
        return min(FLOW_CONTEXT, (side - self.patch) // 2) if self.flow_net is not None else 0

    def batch(
        self, rng: np.random.Generator, size: int
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor]:
        """``(lr [B, T, 3, p, p], gt [B, T, 3, 4p, 4p])`` float32 in [0, 1], with ``flows``
        the window's ``(to_prev, to_next)`` ``[B, T, 2, p, p]`` (else None), and ``quant [B]``."""
        samples = [self.sample(rng) for _ in range(size)]
        lr = np.stack([s[0] for s in samples])
        gt = np.stack([s[1] for s in samples])
        flows = to_flow_tensors(np.stack([s[2] for s in samples])) if self.flows else None
        return to_tensor(lr), to_tensor(gt), flows, torch.tensor([s[3] for s in samples], dtype=torch.float32)


def augment(
    lr: np.ndarray, gt: np.ndarray, rng: np.random.Generator, flow: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The same random flips / transpose / time reversal on ``[T, H, W, 3]`` LR and GT, and on
    the window's flows ``[T, h, w, 4]`` if given (the draws do not depend on it)."""
    hflip, vflip, transpose, reverse = rng.integers(2, size=4)
    if flow is not None:
        flow = augment_flow(flow, hflip, vflip, transpose, reverse)
    out = []
    for a in (lr, gt):
        if hflip:
            a = a[:, :, ::-1]
        if vflip:
            a = a[:, ::-1]
        if transpose:
            a = a.transpose(0, 2, 1, 3)
        if reverse:
            a = a[::-1]
        out.append(a)
    return out[0], out[1], flow


def val_windows(
    seqs: list[Sequence], frames: int, count: int, size: tuple[int, int], multiple: int
) -> list[ValWindow]:
    """``count`` evenly spaced ``frames``-long windows per sequence, centre-cropped LR ``size``
    (each side rounded down to ``multiple``, and to the frame)."""
    out = []
    for seq in seqs:
        h = min(size[0], seq.lr.shape[1]) // multiple * multiple
        w = min(size[1], seq.lr.shape[2]) // multiple * multiple
        y, x = (seq.lr.shape[1] - h) // 2, (seq.lr.shape[2] - w) // 2
        starts = np.linspace(0, len(seq) - frames, count).round().astype(int)
        for t0 in starts:
            lr = seq.lr[t0 : t0 + frames, y : y + h, x : x + w]
            gt = seq.gt[t0 : t0 + frames, SCALE * y : SCALE * (y + h), SCALE * x : SCALE * (x + w)]
            flows = None
            if seq.flows is not None:
                flows = to_flow_tensors(window_ends_still(seq.flows[t0 : t0 + frames, y : y + h, x : x + w]))
            out.append(ValWindow(f"{seq.name}@{t0}", to_tensor(np.asarray(lr)), to_tensor(np.asarray(gt)), None, flows))
    return out


# Pans of the held-out frames for validation: fixed speeds (LR px/frame) and directions, no
# jitter (a camera pan, not the training mix of pan and shake).
VAL_PAN_SPEEDS = (0.25, 0.5, 0.75, 1.0, 1.25)


def panned_val_windows(
    seqs: list[Sequence], frames: int, count: int, size: tuple[int, int], multiple: int
) -> list[ValWindow]:
    """``count`` windows per sequence, each one real frame (evenly spaced) filmed by a camera
    panning at ``VAL_PAN_SPEEDS`` (cycled) in directions a golden angle apart; LR ``size``
    centre crops (rounded down to ``multiple``). Deterministic: no random numbers."""
    out = []
    margin = margin_for(max(VAL_PAN_SPEEDS), 0.0, frames)
    for seq in seqs:
        lh, lw = seq.lr.shape[1:3]
        h = min(size[0], lh - 2 * margin) // multiple * multiple
        w = min(size[1], lw - 2 * margin) // multiple * multiple
        if h < multiple or w < multiple:
            continue
        y, x = (lh - h) // 2 - margin, (lw - w) // 2 - margin
        for i, t in enumerate(np.linspace(0, len(seq) - 1, count).round().astype(int)):
            speed = VAL_PAN_SPEEDS[i % len(VAL_PAN_SPEEDS)]
            angle = i * math.pi * (3 - math.sqrt(5))
            velocity = speed * np.array([math.cos(angle), math.sin(angle)])
            offsets = (np.arange(frames)[:, None] - frames // 2) * velocity
            crop = seq.gt[t, SCALE * y : SCALE * (y + h + 2 * margin), SCALE * x : SCALE * (x + w + 2 * margin)]
            lr, gt = film(np.asarray(crop), offsets, margin)
            pan = (float(velocity[0]), float(velocity[1]))
            out.append(ValWindow(f"{seq.name}@{t}+pan{speed:g}", to_tensor(lr), to_tensor(gt), pan))
    return out
