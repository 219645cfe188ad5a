"""Quality of an upscaled result against ground truth: PSNR and SSIM on RGB and on Y.

Both sides may be a video or a folder of frames; frames are compared in order and scored as
8-bit images (16-bit sources are rounded to 8 bits first, as the usual protocol does).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vsrt_cli.errors import InputError
from vsrt_cli.io.frames import IMAGE_SUFFIXES, iter_folder, list_frames
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.metrics import SSIM_WINDOW, psnr, ssim


@dataclass(frozen=True)
class ClipScore:
    name: str
    frames: int
    psnr_rgb: float
    psnr_y: float
    ssim_rgb: float
    ssim_y: float


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float64) / 257.0).astype(np.uint8)
    return image


def iter_images(path: Path) -> Iterator[np.ndarray]:
    """uint8 RGB frames of a video or an image folder, in order."""
    if path.is_dir():
        for frame in iter_folder(list_frames(path), Fraction(1)):
            yield _as_uint8(frame.image)
        return
    with VideoReader(probe(path)) as reader:
        for frame in reader:
            yield _as_uint8(frame.image)


def score_clip(pred: Path, truth: Path, *, crop_border: int = 0, name: str | None = None) -> ClipScore:
    """Mean per-frame scores of ``pred`` against ``truth`` (same frame count and size)."""
    rows = []
    truth_frames = iter_images(truth)
    for index, a in enumerate(iter_images(pred)):
        b = next(truth_frames, None)
        if b is None:
            raise InputError(f"{pred} has more frames than {truth} ({index + 1}+ vs {index}); compare matching clips")
        if a.shape != b.shape:
            raise InputError(
                f"frame {index}: {pred} is {a.shape[1]}x{a.shape[0]} but {truth} is {b.shape[1]}x{b.shape[0]}; "
                "compare an output with ground truth of the same size"
            )
        if min(a.shape[:2]) - 2 * crop_border < SSIM_WINDOW:
            raise InputError(
                f"{pred}: frames of {a.shape[1]}x{a.shape[0]} are too small to score; SSIM needs "
                f"{SSIM_WINDOW}x{SSIM_WINDOW} pixels after the {crop_border}-pixel border crop"
            )
        rows.append((psnr(a, b, crop_border=crop_border), psnr(a, b, y=True, crop_border=crop_border),
                     ssim(a, b, crop_border=crop_border), ssim(a, b, y=True, crop_border=crop_border)))
    if next(truth_frames, None) is not None:
        raise InputError(f"{truth} has more frames than {pred} ({len(rows)}); compare matching clips")
    if not rows:
        raise InputError(f"{pred} holds no frames")
    mean = np.mean(np.array(rows, dtype=np.float64), axis=0)
    return ClipScore(name or pred.stem, len(rows), *map(float, mean))


def clip_pairs(pred: Path, truth: Path) -> list[tuple[str, Path, Path]]:
    """``(name, pred, truth)`` pairs: one pair for two clips, or one per matching name when both
    are folders of clips (videos or frame folders, matched by name without extension)."""

    def is_clip_folder(p: Path) -> bool:
        return p.is_dir() and any(c.suffix.lower() in IMAGE_SUFFIXES for c in p.iterdir())

    if not pred.exists() or not truth.exists():
        missing = pred if not pred.exists() else truth
        raise InputError(f"{missing}: no such file or folder")
    if not pred.is_dir() or not truth.is_dir() or is_clip_folder(pred) or is_clip_folder(truth):
        return [(pred.stem, pred, truth)]
    truths = {p.stem: p for p in truth.iterdir() if not p.name.startswith(".")}
    pairs = [(p.stem, p, truths[p.stem]) for p in sorted(pred.iterdir()) if p.stem in truths and not p.name.startswith(".")]
    if not pairs:
        raise InputError(f"no clip in {pred} has a namesake in {truth}; name outputs after their ground truth")
    return pairs
