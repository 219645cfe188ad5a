"""The ``real`` degradation: what a phone, a download or a DVD does to a window of frames.

``bi`` (:func:`vsrt_cli.train.degrade.bi_degrade`) is the benchmark protocol. ``real`` makes the
LR window of a GT window ``[T, 4h, 4w, 3]`` uint8 through, in a random order and strength:

- **blur** at HR: a Gaussian, isotropic or not, rotated (sigma 0.2-2.0 HR px), probability 0.6;
- **resize** to LR by one of MATLAB bicubic (antialiased), bilinear or area averaging, sometimes
  through an intermediate size (down too far, then up);
- **noise** at LR: Gaussian (sigma 1-10 grey levels), colour or grey, probability 0.5;
- **compression** of the whole LR window as one video: libx264 or libx265 at a random CRF,
  preset and GOP, or mpeg2video / mpeg4 at a random bitrate, always yuv420p, decoded back. The
  frames share one encoder, so the artefacts move with the scene as a real codec's do.

Blur and resize come first, noise and compression after (a camera blurs before it samples, a
codec sees the noisy frames), and each stage is skipped at random. Every choice comes from the
caller's ``numpy`` Generator: a window is degraded the same way for the same seed. The GT is not
touched.
"""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import torch
import torch.nn.functional as F

from vsrt_cli.train.degrade import SCALE, bi_degrade

CODECS = ("libx264", "libx265", "mpeg2video", "mpeg4")
X264_PRESETS = ("ultrafast", "veryfast", "fast", "medium")
MIN_CODEC_SIDE = 64  # smaller frames are padded (edge) for the encoder, then cropped back


def gaussian_kernel(rng: np.random.Generator) -> np.ndarray:
    """A random 2-D Gaussian ``[k, k]`` (sum 1): sigmas 0.2-2.0 px, rotated."""
    sx, sy = rng.uniform(0.2, 2.0, size=2)
    if rng.random() < 0.5:
        sy = sx
    theta = rng.uniform(0, math.pi)
    radius = int(math.ceil(3 * max(sx, sy)))
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xs + s * ys, -s * xs + c * ys
    k = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return k / k.sum()


def blur(frames: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """``[T, 3, H, W]`` float convolved with ``kernel`` per channel (reflect padding)."""
    k = torch.from_numpy(kernel).to(frames.dtype)
    r = k.shape[0] // 2
    padded = F.pad(frames, (r, r, r, r), mode="reflect") if min(frames.shape[-2:]) > r else F.pad(frames, (r, r, r, r), mode="replicate")
    return F.conv2d(padded, k[None, None].expand(3, 1, -1, -1).contiguous(), groups=3)


def resize_down(gt: np.ndarray, frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """HR ``[T, 3, 4h, 4w]`` float (0-255) -> LR ``[T, 3, h, w]`` by a random kernel."""
    h, w = frames.shape[-2] // SCALE, frames.shape[-1] // SCALE
    kind = rng.choice(["bicubic", "bilinear", "area", "two-step"])
    if kind == "bicubic":
        x = frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return torch.from_numpy(bi_degrade(x)).permute(0, 3, 1, 2).float()
    if kind == "area":
        return F.avg_pool2d(frames, SCALE)
    if kind == "bilinear":
        return F.interpolate(frames, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    # too small first (0.6-0.95 of the LR size), then up to it: a soft, aliased look
    s = rng.uniform(0.6, 0.95)
    mid = F.interpolate(frames, size=(max(2, round(h * s)), max(2, round(w * s))), mode="area")
    return F.interpolate(mid, size=(h, w), mode=str(rng.choice(["bilinear", "bicubic"])), align_corners=False)


def add_noise(lr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian noise (sigma 1-10 grey levels), the same on all channels or per channel."""
    sigma = rng.uniform(1, 10)
    shape = (lr.shape[0], 1, *lr.shape[2:]) if rng.random() < 0.4 else tuple(lr.shape)
    noise = torch.from_numpy(rng.normal(0, sigma, size=shape).astype(np.float32))
    return lr + noise


def compress(lr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``[T, h, w, 3]`` uint8 through a random codec as one clip, decoded back (same shape)."""
    t, h, w, _ = lr.shape
    ph, pw = max(MIN_CODEC_SIDE, h + h % 2), max(MIN_CODEC_SIDE, w + w % 2)
    padded = np.pad(lr, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    name = str(rng.choice(CODECS))
    codec = av.CodecContext.create(name, "w")
    codec.width, codec.height, codec.pix_fmt = pw, ph, "yuv420p"
    codec.time_base = Fraction(1, 25)
    codec.framerate = Fraction(25, 1)
    gop = int(rng.integers(1, 13))
    codec.gop_size = gop
    if name == "libx264":
        codec.options = {"crf": str(int(rng.integers(18, 39))), "preset": str(rng.choice(X264_PRESETS)),
                         "bf": str(int(rng.integers(0, 3)))}
    elif name == "libx265":
        codec.options = {"crf": str(int(rng.integers(20, 39))), "preset": "ultrafast",
                         "x265-params": f"log-level=none:keyint={gop}:min-keyint=1"}
    else:  # bits per pixel 0.05-0.5 at 25 fps
        codec.bit_rate = int(rng.uniform(0.05, 0.5) * pw * ph * 25)
        codec.options = {"qmax": "31"}
    packets = []
    for i, image in enumerate(padded):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += codec.encode(frame)
    packets += codec.encode(None)
    decoder = av.CodecContext.create(name.replace("lib", "").replace("x264", "h264").replace("x265", "hevc"), "r")
    decoder.extradata = codec.extradata
    out = []
    for packet in packets:
        out += [f.to_ndarray(format="rgb24") for f in decoder.decode(packet)]
    out += [f.to_ndarray(format="rgb24") for f in decoder.decode(None)]
    if len(out) != t:
        raise RuntimeError(f"{name} gave {len(out)} frames for {t}")
    return np.stack(out)[:, :h, :w]


def real_degrade(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """GT window ``[T, 4h, 4w, 3]`` uint8 -> LR ``[T, h, w, 3]`` uint8 (the module docstring)."""
    frames = torch.from_numpy(np.ascontiguousarray(gt)).permute(0, 3, 1, 2).float()
    if rng.random() < 0.6:
        frames = blur(frames, gaussian_kernel(rng))
    lr = resize_down(gt, frames, rng)
    if rng.random() < 0.5:
        lr = add_noise(lr, rng)
    out = lr.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    if rng.random() < 0.9:
        out = compress(out, rng)
    return out
