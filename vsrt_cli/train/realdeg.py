"""The ``real`` degradation: what a phone, a download or a DVD does to a window of frames.

``bi`` (:func:`vsrt_cli.train.degrade.bi_degrade`) is the benchmark protocol. ``real`` makes the
LR window of a GT window ``[T, 4h, 4w, 3]`` uint8 in one of two ways:

- with probability ``clean_share`` (a run setting, ``CLEAN_SHARE`` by default), the BI protocol itself: a model for real footage must not
  lose what it does on clean input (the compression-aware default may lose at most 0.3 dB there);
- otherwise through, each stage with its own probability and a random strength:

  - **blur** at HR (probability 0.15): a mild Gaussian, isotropic or not, rotated (sigma
    0.2-0.8 HR px);
  - **resize** to LR by MATLAB bicubic (antialiased, 80% of the time), bilinear, area averaging,
    or through an intermediate size (down too far, then up);
  - **noise** at LR (probability 0.2): Gaussian (sigma 1-4 grey levels), colour or grey;
  - **compression** of the whole LR window as one video (probability 0.95): libx264 most often,
    libx265, mpeg2video or mpeg4, at a random CRF (x264 18-35, x265 20-35) or fixed qscale
    (MPEG: 2-16), preset and GOP, always yuv420p, decoded back. The frames share one encoder, so
    the artefacts move with the scene as a real codec's do. Until session 9 the MPEG codecs were
    given a bitrate, which their rate control cannot reach in a 5-frame clip: every MPEG window
    came out near qscale 2 whatever the bitrate. Until session 10 the decoded window was
    converted to RGB by swscale's direct path (each chroma sample repeated, and 0.6-1.4 code
    values brighter than the reader's conversion on held-out clips), so the networks learnt to
    correct colours a user's video never has (about 0.2 dB of their CRF 28 gain, measured by
    ``benchmarks/quality.py`` with the reader patched to decode that way).

Blur and resize come first, noise and compression after (a camera blurs before it samples, a
codec sees the noisy frames). Measured from the clean 5-frame state (validation after 10
compute-min, clean BI / x264 CRF 28): with 30% BI windows and blur on 40% of the others (sigma up
to 1.2) 37.56 -> 37.13 / 31.79 -> 32.06; with 20% BI windows, this blur and noise and CRFs up
to 38: 36.99 / 32.13. So what costs the clean input is learning the codec, not the blur; from
session 8 the BI share is 30% and the CRFs stop at 35 (the issue allows the clean input 0.3 dB,
and CRFs past 35 are rarer in real files than that cost). Every choice comes from the caller's ``numpy``
Generator: a window is degraded the same way for the same seed. The GT is not touched.
"""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import torch
import torch.nn.functional as F

from vsrt_cli.io.convert import to_rgb
from vsrt_cli.io.quant import EXPORT_OPTIONS, decoded_quant, mean_qp
from vsrt_cli.train.degrade import SCALE, bi_degrade
from vsrt_cli.train.validate import ValWindow, to_tensor

CODEC_ODDS = {"libx264": 0.6, "libx265": 0.2, "mpeg2video": 0.1, "mpeg4": 0.1}  # H.264 is most video
CODECS = tuple(CODEC_ODDS)
CLEAN_SHARE = 0.3
# A network told the quantiser (``quant_film``) trains without it on this share of the windows,
# so it also serves a video whose codec does not report one (AV1, HEVC but x265's) and raw frames.
UNKNOWN_SHARE = 0.2
X264_PRESETS = ("ultrafast", "veryfast", "fast", "medium")
MIN_CODEC_SIDE = 64  # smaller frames are padded (edge) for the encoder, then cropped back


def gaussian_kernel(rng: np.random.Generator) -> np.ndarray:
    """A random 2-D Gaussian ``[k, k]`` (sum 1): sigmas 0.2-0.8 px, rotated."""
    sx, sy = rng.uniform(0.2, 0.8, size=2)
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
    kind = rng.choice(["bicubic", "bilinear", "area", "two-step"], p=[0.8, 0.2 / 3, 0.2 / 3, 0.2 / 3])
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
    """Gaussian noise (sigma 1-4 grey levels), the same on all channels or per channel."""
    sigma = rng.uniform(1, 4)
    shape = (lr.shape[0], 1, *lr.shape[2:]) if rng.random() < 0.4 else tuple(lr.shape)
    noise = torch.from_numpy(rng.normal(0, sigma, size=shape).astype(np.float32))
    return lr + noise


def compress(lr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """``[T, h, w, 3]`` uint8 through a random codec as one clip, decoded back (same shape), and
    the clip's quantiser as a user's video is read (:func:`vsrt_cli.io.quant.decoded_quant`;
    NaN where the codec reports none)."""
    odds = np.array([CODEC_ODDS[c] for c in CODECS])  # CODECS: a subset when a test narrows it
    name = str(rng.choice(CODECS, p=odds / odds.sum()))
    gop = int(rng.integers(1, 13))
    qscale = None
    if name == "libx264":
        options = {"crf": str(int(rng.integers(18, 36))), "preset": str(rng.choice(X264_PRESETS)),
                   "bf": str(int(rng.integers(0, 3)))}
    elif name == "libx265":
        options = {"crf": str(int(rng.integers(20, 36))), "preset": "ultrafast",
                   "x265-params": f"log-level=none:keyint={gop}:min-keyint=1"}
    else:  # a fixed qscale 2-16 (H.264 QP 22-40 in distortion; rate control cannot settle in 5 frames)
        options, qscale = {}, int(round(2 ** ((rng.uniform(22, 40) - 16) / 6)))
    return round_trip(lr, name, options, gop, qscale)


def h264(lr: np.ndarray, crf: int) -> tuple[np.ndarray, float]:
    """``[T, h, w, 3]`` uint8 through libx264 at ``crf``, preset medium, one GOP: what
    ``benchmarks/quality.py --compressed`` does to a held-out clip (for validation); and its QP."""
    return round_trip(lr, "libx264", {"crf": str(crf), "preset": "medium"}, 250, None)


def compressed_windows(windows: list[ValWindow], crf: int) -> list[ValWindow]:
    """The validation ``windows`` with their LR through :func:`h264` at ``crf`` and the QP its
    decoder reports (same GT; no flows: the model finds its own in the compressed frames, as it
    does in a user's video)."""
    out = []
    for window in windows:
        lr, qp = h264(window.lr.movedim(-3, -1).mul(255).round().to(torch.uint8).numpy(), crf)
        out.append(ValWindow(window.name, to_tensor(lr), window.gt, quant=qp))
    return out


def round_trip(
    lr: np.ndarray, name: str, options: dict[str, str], gop: int, qscale: int | None
) -> tuple[np.ndarray, float]:
    """``[T, h, w, 3]`` uint8 encoded by codec ``name`` (at a fixed ``qscale`` if given) as one
    yuv420p clip (padded to an even size of at least ``MIN_CODEC_SIDE``) and decoded back,
    cropped to the same shape, converted to RGB as :class:`vsrt_cli.io.reader.VideoReader` does
    (bilinear chroma: the network must see the colours it will see in a user's video); and the
    clip's mean H.264-equivalent QP over the frame's own blocks (NaN if the decoder exports
    none)."""
    t, h, w, _ = lr.shape
    ph, pw = max(MIN_CODEC_SIDE, h + h % 2), max(MIN_CODEC_SIDE, w + w % 2)
    padded = np.pad(lr, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    codec = av.CodecContext.create(name, "w")
    codec.width, codec.height, codec.pix_fmt = pw, ph, "yuv420p"
    codec.time_base = Fraction(1, 25)
    codec.framerate = Fraction(25, 1)
    codec.gop_size = gop
    if qscale is not None:
        codec.qmin = codec.qmax = qscale
    codec.options = options
    packets = []
    for i, image in enumerate(padded):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += codec.encode(frame)
    packets += codec.encode(None)
    decoder = av.CodecContext.create(name.replace("lib", "").replace("x264", "h264").replace("x265", "hevc"), "r")
    decoder.extradata = codec.extradata
    decoder.options = dict(EXPORT_OPTIONS)
    decoded = []
    for packet in [*packets, None]:
        decoded += decoder.decode(packet)
    if len(decoded) != t:
        raise RuntimeError(f"{name} gave {len(decoded)} frames for {t}")
    read = decoded_quant(decoder.name, decoder.extradata)
    qp = mean_qp([read(f, (h, w)) for f in decoded])
    return np.stack([to_rgb(f, 8, 0) for f in decoded])[:, :h, :w], qp


def real_degrade(gt: np.ndarray, rng: np.random.Generator, clean_share: float = CLEAN_SHARE) -> tuple[np.ndarray, float]:
    """GT window ``[T, 4h, 4w, 3]`` uint8 -> LR ``[T, h, w, 3]`` uint8 (the module docstring);
    ``clean_share`` of the windows keep the BI protocol (a run's ``--clean-share``). With it
    the window's ``quant``: 0 for BI, the codec's QP, or NaN (unknown: none reported, or not compressed
    but blurred or noisy)."""
    if rng.random() < clean_share:
        return bi_degrade(gt), 0.0
    frames = torch.from_numpy(np.ascontiguousarray(gt)).permute(0, 3, 1, 2).float()
    if rng.random() < 0.15:
        frames = blur(frames, gaussian_kernel(rng))
    lr = resize_down(gt, frames, rng)
    if rng.random() < 0.2:
        lr = add_noise(lr, rng)
    out = lr.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    if rng.random() < 0.95:
        return compress(out, rng)
    return out, float("nan")
