"""Quality of an upscaled result against ground truth: PSNR and SSIM on RGB and on Y, and how
steady it is in time.

Both sides may be a video or a folder of frames; frames are compared in order and scored as
8-bit images (16-bit sources are rounded to 8 bits first, as the usual protocol does).

Temporal scores (when a reference flow is given, see :mod:`vsrt_cli.engine.temporal`): the warping
error of each consecutive pair along the ground truth's own motion
(:func:`~vsrt_cli.inspect.metrics.warping_error`), and the seam ratio, the warping error of pairs made by
two different model calls over that of pairs made by one (:func:`~vsrt_cli.inspect.metrics.seam_ratio`).
Both are also computed for the ground truth itself, the value a perfect output would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from vsrt_cli.errors import InputError
from vsrt_cli.io.frames import IMAGE_SUFFIXES, iter_folder, list_frames
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.inspect.metrics import SSIM_WINDOW, psnr, seam_ratio, ssim, trusted_motion, warping_error

Flow = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
Calls = Callable[[int], list[int]]  # frame count -> the model call that made each frame


@dataclass(frozen=True)
class ClipScore:
    name: str
    frames: int
    psnr_rgb: float
    psnr_y: float
    ssim_rgb: float
    ssim_y: float
    warp_error: float | None = None  # mean over pairs; Y levels (lower = steadier)
    warp_error_truth: float | None = None  # the ground truth's own value
    seam: float | None = None  # across-call / within-call warping error (1 = no seam)
    seam_truth: float | None = None
    psnr_y_frames: list[float] = field(default_factory=list)  # per frame
    warp_frames: list[float | None] = field(default_factory=list)  # per frame; None for the first
    warp_frames_truth: list[float | None] = field(default_factory=list)


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


def score_clip(
    pred: Path, truth: Path, *, crop_border: int = 0, name: str | None = None,
    flow: Flow | None = None, calls: Callable[[int], list[int]] | None = None,
) -> ClipScore:
    """Mean per-frame scores of ``pred`` against ``truth`` (same frame count and size). With
    ``flow`` (the truth's motion between two frames) also the temporal scores; with ``calls``
    (frame count -> model call of each frame) also the seam ratio."""
    return score_clips([pred], truth, crop_border=crop_border, names=[name or pred.stem], flow=flow, calls=calls)[0]


def score_clips(
    preds: list[Path], truth: Path, *, crop_border: int = 0, names: list[str] | None = None,
    flow: Flow | None = None, calls: Calls | Sequence[Calls | None] | None = None, fidelity: bool = True,
) -> list[ClipScore]:
    """:func:`score_clip` of several outputs against one ground truth, in one pass over it (the
    truth's motion is computed once for all of them); ``calls`` one for all, or one per output.
    ``fidelity=False`` skips PSNR/SSIM (left NaN) where only the temporal scores are wanted."""
    names = names or [p.stem for p in preds]
    rows: list[list[tuple[float, ...]]] = [[] for _ in preds]
    warps: list[list[tuple[float, float]]] = [[] for _ in preds]  # (output, truth) per pair
    previous: tuple[list[np.ndarray], np.ndarray] | None = None
    streams = [iter_images(p) for p in preds]
    index = 0
    for b in iter_images(truth):
        frames = [next(s, None) for s in streams]
        for pred, a in zip(preds, frames):
            if a is None:
                raise InputError(f"{truth} has more frames than {pred} ({index + 1}+ vs {index}); compare matching clips")
            _check_pair(pred, truth, a, b, index, crop_border)
        for k, a in enumerate(frames):
            if not fidelity:
                rows[k].append((float("nan"),) * 4)
                continue
            rows[k].append((psnr(a, b, crop_border=crop_border), psnr(a, b, y=True, crop_border=crop_border),
                            ssim(a, b, crop_border=crop_border), ssim(a, b, y=True, crop_border=crop_border)))
        if flow is not None:
            if previous is not None:
                mask, to_prev = _truth_motion(previous[1], b, flow, crop_border)
                truth_err = warping_error(previous[1], b, to_prev, mask)
                for k, a in enumerate(frames):
                    warps[k].append((warping_error(previous[0][k], a, to_prev, mask), truth_err))
            previous = (frames, b)  # type: ignore[assignment]
        index += 1
    for pred, s in zip(preds, streams):
        if next(s, None) is not None:
            raise InputError(f"{pred} has more frames than {truth} ({index + 1}+ vs {index}); compare matching clips")
    if not index:
        raise InputError(f"{truth} holds no frames")
    per_output = list(calls) if isinstance(calls, Sequence) else [calls] * len(preds)
    return [_summary(name, r, w, c) for name, r, w, c in zip(names, rows, warps, per_output)]


def _check_pair(pred: Path, truth: Path, a: np.ndarray, b: np.ndarray, index: int, crop_border: int) -> None:
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


def _summary(
    name: str, rows: list[tuple[float, ...]], warps: list[tuple[float, float]], calls: Callable[[int], list[int]] | None,
) -> ClipScore:
    table = np.array(rows, dtype=np.float64)
    mean = np.mean(table, axis=0)
    temporal: dict[str, object] = {}
    if warps:
        out_err, truth_err = (np.array(col) for col in zip(*warps))
        temporal = {"warp_error": _mean(out_err), "warp_error_truth": _mean(truth_err),
                    "warp_frames": _per_frame(out_err), "warp_frames_truth": _per_frame(truth_err)}
        if calls is not None:
            ids = calls(len(rows))
            boundary = [ids[t] != ids[t + 1] for t in range(len(rows) - 1)]
            temporal.update(seam=seam_ratio(list(out_err), boundary), seam_truth=seam_ratio(list(truth_err), boundary))
    return ClipScore(name, len(rows), *map(float, mean), psnr_y_frames=[float(v) for v in table[:, 1]],
                     **temporal)  # type: ignore[arg-type]


def _per_frame(errors: np.ndarray) -> list[float | None]:
    """Per frame: None for the first (no predecessor) and where no pixel could be trusted."""
    return [None, *(None if np.isnan(e) else float(e) for e in errors)]


def _mean(values: np.ndarray) -> float | None:
    ok = values[np.isfinite(values)]
    return float(ok.mean()) if len(ok) else None


def _truth_motion(prev: np.ndarray, cur: np.ndarray, flow: Flow, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, to_prev)``: where the truth's motion from ``cur`` back to ``prev`` is trusted."""
    to_prev, to_cur = flow(prev, cur)
    mask = trusted_motion(to_prev, to_cur)
    if crop_border:
        mask[:crop_border] = mask[-crop_border:] = False
        mask[:, :crop_border] = mask[:, -crop_border:] = False
    return mask, to_prev


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
