"""A short piece of a clip, optionally cropped, written losslessly (FFV1) for ``vsrt preview``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from vsrt_cli.errors import ConfigError, InputError
from vsrt_cli.io.probe import VideoInfo, probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.io.writer import EncodeSettings, VideoWriter


@dataclass(frozen=True)
class Crop:
    width: int
    height: int
    x: int
    y: int

    @classmethod
    def parse(cls, spec: str) -> Crop:
        """``WxH+X+Y`` (as ImageMagick writes it), e.g. ``128x96+40+20``."""
        try:
            size, x, y = spec.split("+")
            w, h = size.lower().split("x")
            crop = cls(int(w), int(h), int(x), int(y))
        except ValueError:
            raise ConfigError(f"--crop {spec}: give WIDTHxHEIGHT+X+Y, e.g. 128x96+40+20") from None
        if min(crop.width, crop.height) < 1 or min(crop.x, crop.y) < 0:
            raise ConfigError(f"--crop {spec}: the size must be positive and the offset not negative")
        return crop

    def __str__(self) -> str:
        return f"{self.width}x{self.height}+{self.x}+{self.y}"

    def check_inside(self, width: int, height: int, frame: str) -> None:
        """Raise unless the region lies inside a ``width`` x ``height`` frame; ``frame`` says
        which frame, for the message (e.g. "frame of clip.mp4")."""
        if self.x + self.width > width or self.y + self.height > height:
            raise ConfigError(f"--crop {self} reaches outside the {width}x{height} {frame}")

    def check(self, info: VideoInfo) -> None:
        self.check_inside(info.width, info.height, f"frame of {info.path}")

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The region of ``image`` ``[H, W, C]`` (a view)."""
        return image[self.y : self.y + self.height, self.x : self.x + self.width]


@dataclass(frozen=True)
class Excerpt:
    path: Path
    frames: int
    start: float  # seconds, of the first frame taken
    width: int
    height: int
    info: VideoInfo  # of the whole source


def duration(info: VideoInfo) -> float | None:
    """Seconds of the clip as its header tells (frames / rate), None if it does not."""
    if info.frames and info.rate:
        return float(info.frames / info.rate)
    return None


def write_excerpt(
    source: Path, dest: Path, *, start: float | None, seconds: float, crop: Crop | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Excerpt:
    """Frames of ``source`` from ``start`` (default: centred in the clip) for ``seconds``, cropped,
    into ``dest`` (a lossless ``.mkv``) at their own timestamps. ``transform`` may change each
    frame (an upscale) before it is written."""
    info = probe(source)
    if crop is not None:
        crop.check(info)
    if start is None:
        total = duration(info)
        start = max(0.0, (total - seconds) / 2) if total is not None else 0.0
    width = crop.width if crop else info.width
    height = crop.height if crop else info.height
    writer: VideoWriter | None = None
    taken, first = 0, None
    # the writer opens at the first frame (its size may change with ``transform``); the stack
    # closes it after the reader, finishing the file, or removing it if anything failed
    with contextlib.ExitStack() as stack, VideoReader(info) as reader:
        for frame in reader:
            time = frame.time if frame.time is not None else frame.index / float(info.rate or 25)
            if time < start - 1e-6:
                continue
            if first is None:
                first = time
            if time >= first + seconds - 1e-6 and taken:
                break
            image = frame.image
            if crop is not None:
                image = crop.apply(image)
            if transform is not None:
                image = transform(image)
            if writer is None:
                writer = stack.enter_context(VideoWriter(
                    dest, width=image.shape[1], height=image.shape[0], time_base=info.time_base, rate=info.rate,
                    bit_depth=info.bit_depth, settings=EncodeSettings(codec="ffv1", copy_streams=False), overwrite=True,
                    # tags kept; FFV1-in-MKV holds no HDR10 metadata or pixel shape
                    colour=replace(info.colour, mastering=None, light=None), sample_aspect=Fraction(1),
                ))
            writer.write(np.ascontiguousarray(image), frame.pts)
            taken += 1
    if writer is None:
        raise InputError(f"{source} has no frame at or after {start:.2f} s; choose an earlier --start")
    return Excerpt(dest, taken, first or 0.0, width, height, info)
