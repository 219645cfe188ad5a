"""``vsrt compare``: several videos (or frame folders) in one labelled, frame-synchronised view.

Frames are matched by presentation time, not by index: the first input is the clock, and at
each of its frames every other input shows the frame on screen at that moment (the last one
whose timestamp is not later), so a variable-frame-rate input, a clip with a dropped frame or a
different rate stays in sync. Every input is zoomed to the largest input's size with
nearest-neighbour sampling (a crop or a low-resolution input shows its real pixels, not an
interpolation) and letterboxed if its shape differs; ``crop`` then cuts the same region, in
pixels of that common size, from every input. Work yields events; the CLI draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from vsrt_cli.errors import ConfigError, InputError, OutputError
from vsrt_cli.io.excerpt import Crop
from vsrt_cli.io.frames import encode_png, iter_folder, list_frames
from vsrt_cli.io.outputs import check_output
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import Frame, VideoReader
from vsrt_cli.io.writer import EncodeSettings, VideoWriter
from vsrt_cli.inspect.labels import label

Mode = Literal["side", "wipe", "diff", "grid"]
MODES: tuple[str, ...] = ("side", "wipe", "diff", "grid")
DIFF_GAIN = 4
EPSILON = 1e-4  # seconds: timestamps this close count as the same moment


@dataclass(frozen=True)
class Timed:
    """One frame at a moment: ``time`` in seconds, ``image`` ``[H, W, 3]`` uint8 RGB."""

    time: float
    pts: int
    time_base: Fraction
    image: np.ndarray


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float64) / 257.0).astype(np.uint8)
    return image


def frames_of(path: Path, fps: Fraction = Fraction(25)) -> Iterator[Timed]:
    """The frames of a video (its own timestamps) or an image folder (``i / fps``)."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        source: Iterator[Frame] = iter_folder(list_frames(path), fps)
        for frame in source:
            yield Timed(float(frame.pts * frame.time_base), frame.pts, frame.time_base, _as_uint8(frame.image))
        return
    with VideoReader(probe(path)) as reader:
        for frame in reader:
            pts = frame.pts if frame.pts is not None else frame.index
            yield Timed(float(pts * frame.time_base), pts, frame.time_base, _as_uint8(frame.image))


def synchronised(streams: list[Iterator[Timed]]) -> Iterator[list[Timed]]:
    """At each frame of ``streams[0]``, the frame each stream shows at that moment. Moments
    before another stream's first frame show its first frame."""
    clock, others = streams[0], streams[1:]
    current: list[Timed | None] = [next(s, None) for s in others]
    upcoming: list[Timed | None] = [next(s, None) for s in others]
    for k, frame in enumerate(current):
        if frame is None:
            raise InputError(f"input {k + 2} holds no frames")
    for master in clock:
        for k, stream in enumerate(others):
            while upcoming[k] is not None and upcoming[k].time <= master.time + EPSILON:  # type: ignore[union-attr]
                current[k], upcoming[k] = upcoming[k], next(stream, None)
        yield [master, *current]  # type: ignore[list-item]


def common_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """``(height, width)`` every input is shown at: the largest of each."""
    return max(h for h, _ in sizes), max(w for _, w in sizes)


def fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` zoomed with nearest-neighbour sampling to fit ``height`` x ``width``, its shape
    kept, centred on black."""
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.minimum((np.arange(nh) + 0.5) * h / nh, h - 1).astype(int)
    cols = np.minimum((np.arange(nw) + 0.5) * w / nw, w - 1).astype(int)
    zoomed = image[rows][:, cols]
    if (nh, nw) == (height, width):
        return np.ascontiguousarray(zoomed)
    canvas = np.zeros((height, width, 3), np.uint8)
    y, x = (height - nh) // 2, (width - nw) // 2
    canvas[y : y + nh, x : x + nw] = zoomed
    return canvas


def shown(group: list[Timed], height: int, width: int, crop: Crop | None) -> list[np.ndarray]:
    """Each frame of ``group`` at the common size, cut to ``crop`` (in pixels of that size)."""
    images = [fit(t.image, height, width) for t in group]
    return images if crop is None else [np.ascontiguousarray(crop.apply(img)) for img in images]


def compose(images: list[np.ndarray], labels: list[str], mode: Mode) -> np.ndarray:
    """One picture of ``images`` (each already at the common size), labelled.

    side: in a row; grid: in a near-square grid; wipe: one picture cut into vertical bands, the
    k-th from the k-th input, white lines between; diff: the first input, then |input - first|
    amplified x4 for each other."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode}: use one of {', '.join(MODES)}")
    panels = [img.copy() for img in images]
    names = list(labels)
    if mode == "diff":
        ref = images[0].astype(np.int16)
        panels = [panels[0]] + [np.clip(np.abs(img.astype(np.int16) - ref) * DIFF_GAIN, 0, 255).astype(np.uint8)
                                for img in images[1:]]
        names = [labels[0]] + [f"|{n} - {labels[0]}| x{DIFF_GAIN}" for n in labels[1:]]
    if mode == "wipe":
        h, w = panels[0].shape[:2]
        out = panels[0].copy()
        edges = [round(w * k / len(panels)) for k in range(len(panels) + 1)]
        for k, img in enumerate(panels):
            out[:, edges[k] : edges[k + 1]] = img[:, edges[k] : edges[k + 1]]
            band = out[:, edges[k] : edges[k + 1]]
            label(band, names[k])
            if k:
                out[:, edges[k]] = 255
        return out
    for panel, name in zip(panels, names):
        label(panel, name)
    if mode in ("side", "diff"):
        return np.concatenate(panels, axis=1)
    cols = math.ceil(math.sqrt(len(panels)))
    rows = math.ceil(len(panels) / cols)
    blank = np.zeros_like(panels[0])
    panels += [blank] * (rows * cols - len(panels))
    return np.concatenate([np.concatenate(panels[r * cols : (r + 1) * cols], axis=1) for r in range(rows)], axis=0)


def _even(image: np.ndarray) -> np.ndarray:
    """Pad to even width and height (4:2:0 video needs them)."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)))


@dataclass(frozen=True)
class CompareDone:
    output: Path
    frames: int
    width: int
    height: int


def compare(
    inputs: list[Path], output: Path, *, mode: Mode = "side", labels: list[str] | None = None,
    frame: int | None = None, fps: Fraction = Fraction(25), overwrite: bool = False, crf: int = 18,
    crop: Crop | None = None,
) -> Iterator[int | CompareDone]:
    """Write the comparison of ``inputs`` to ``output`` (a video; a PNG with ``frame``, the
    0-based index of the first input's frame), each input cut to ``crop`` (in pixels of the
    common size) if given. Yields the number of frames done, then :class:`CompareDone`."""
    if len(inputs) < 2:
        raise ConfigError("vsrt compare needs at least two inputs")
    if mode not in MODES:
        raise ConfigError(f"--mode {mode}: use one of {', '.join(MODES)}")
    labels = labels or [p.stem if p.is_file() else p.name for p in inputs]
    if len(labels) != len(inputs):
        raise ConfigError(f"{len(labels)} --label for {len(inputs)} inputs; give one per input or none")
    for p in inputs:
        check_output(output, p, overwrite=overwrite, folder=False)
    if not output.parent.is_dir():
        raise OutputError(f"folder {output.parent} does not exist; create it first")
    png = frame is not None or output.suffix.lower() == ".png"
    if png and output.suffix.lower() != ".png":
        raise ConfigError(f"--frame writes one PNG; name the output .png (not {output.name})")
    sizes = [_first_size(p, fps) for p in inputs]
    height, width = common_size(sizes)
    if crop is not None:
        crop.check_inside(width, height, "compared frame (every input zoomed to the largest input's size)")
    streams = [frames_of(p, fps) for p in inputs]
    try:
        moments = synchronised(streams)
        if png:
            wanted = frame or 0
            count = 0
            for group in moments:
                if count == wanted:
                    picture = compose(shown(group, height, width, crop), labels, mode)
                    output.write_bytes(encode_png(picture))
                    yield CompareDone(output, 1, picture.shape[1], picture.shape[0])
                    return
                count += 1
            raise InputError(f"--frame {wanted}: {inputs[0]} has only {count} frames (they count from 0)")
        yield from _write_video(moments, output, labels, mode, height, width, crop, overwrite, crf)
    finally:
        for s in streams:
            s.close()  # type: ignore[attr-defined]


def _write_video(
    moments: Iterator[list[Timed]], output: Path, labels: list[str], mode: Mode, height: int, width: int,
    crop: Crop | None, overwrite: bool, crf: int,
) -> Iterator[int | CompareDone]:
    first = next(moments, None)
    if first is None:
        raise InputError("the first input holds no frames")
    picture = _even(compose(shown(first, height, width, crop), labels, mode))
    clock = first[0]
    writer = VideoWriter(output, width=picture.shape[1], height=picture.shape[0], time_base=clock.time_base,
                         rate=None, bit_depth=8, settings=EncodeSettings(crf=crf, preset="veryfast", copy_streams=False),
                         overwrite=overwrite)
    done = 0
    with writer:
        writer.write(picture, clock.pts)
        done += 1
        yield done
        for group in moments:
            picture = _even(compose(shown(group, height, width, crop), labels, mode))
            writer.write(picture, group[0].pts)
            done += 1
            yield done
    yield CompareDone(output, done, picture.shape[1], picture.shape[0])


def _first_size(path: Path, fps: Fraction) -> tuple[int, int]:
    if path.is_dir():
        first = next(frames_of(path, fps))
        return first.image.shape[0], first.image.shape[1]
    info = probe(path)
    return info.height, info.width
