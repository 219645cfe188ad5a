"""The output size a user asks for, and the resize of the model's x4 frames to it on the device.

The model always computes x4; ``--scale S`` (``1 < S <= 4``), ``--width W``, ``--height H`` or
``--size WxH`` then resize its frames with an antialiased filter before they are encoded.
``--scale`` scales the stored frame and keeps its pixel shape (SAR); ``--width``, ``--height``
and ``--size`` name the picture in square pixels (SAR 1:1), the missing side from the display
aspect (SAR included), so a 720x480 SAR 8:9 DVD to ``--height 1080`` is 1440x1080. Video sizes
are even (4:2:0). :func:`target` is pure geometry; :func:`resize` is the torch part.

Which filter: ``benchmarks/resize.py`` measured the model's x4 output resized to x2 and x3
against the ground truth resized alike (docs/PERFORMANCE.md); :data:`DEFAULT_FILTER` kept most
of the model's gain over bicubic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F

from vsrt_cli.errors import ConfigError

SCALE = 4  # what the model computes (vsrt_cli.model.vsrt.SCALE; not imported: this stays light)
FILTERS = ("bicubic", "bilinear", "area", "lanczos")
DEFAULT_FILTER = "bicubic"
ASPECT_TOLERANCE = 0.01  # --size may change the display aspect by this much without --stretch


@dataclass(frozen=True)
class OutputSize:
    """What the user asked for (at most one of ``scale``, ``width``/``height``, ``size``)."""

    scale: float | None = None
    width: int | None = None
    height: int | None = None
    size: tuple[int, int] | None = None  # (width, height)
    stretch: bool = False
    filter: str = DEFAULT_FILTER

    @classmethod
    def parse(cls, *, scale: float | None = None, width: int | None = None, height: int | None = None,
              size: str | None = None, stretch: bool = False, filter: str = DEFAULT_FILTER) -> OutputSize | None:
        """The request the options make (None: the model's own x4), refusing contradictions."""
        given = [name for name, value in (("--scale", scale), ("--width/--height", width or height), ("--size", size))
                 if value is not None]
        if len(given) > 1:
            raise ConfigError(f"give one of --scale, --width/--height or --size, not {' and '.join(given)}")
        if filter not in FILTERS:
            raise ConfigError(f"--resize-filter {filter}: use one of {', '.join(FILTERS)}")
        if stretch and size is None:
            raise ConfigError("--stretch goes with --size WxH")
        if filter != DEFAULT_FILTER and scale is None and width is None and height is None and size is None:
            raise ConfigError(f"--resize-filter {filter}: nothing is resized at x4; it goes with --scale, "
                              "--width/--height or --size")
        if scale is not None:
            if not (1 < scale <= SCALE) or not math.isfinite(scale):
                above = " (the model computes x4; above it, use another resizer)" if scale > SCALE else ""
                raise ConfigError(f"--scale {scale:g}: must be above 1 and at most {SCALE}{above}")
            if scale == SCALE:  # the model's own size: nothing is resized
                return None
            return cls(scale=scale, filter=filter)
        for name, value in (("--width", width), ("--height", height)):
            if value is not None and value < 2:
                raise ConfigError(f"{name} {value}: must be at least 2 pixels")
        parsed = None
        if size is not None:
            try:
                w, h = (int(part) for part in size.lower().split("x"))
            except ValueError:
                raise ConfigError(f"--size {size}: give WIDTHxHEIGHT, e.g. 1920x1080") from None
            if min(w, h) < 2:
                raise ConfigError(f"--size {size}: both sides must be at least 2 pixels")
            parsed = (w, h)
        if width is None and height is None and parsed is None:
            return None
        return cls(width=width, height=height, size=parsed, stretch=stretch, filter=filter)

    def describe(self) -> str:
        if self.scale is not None:
            return f"--scale {self.scale:g}"
        if self.size is not None:
            return f"--size {self.size[0]}x{self.size[1]}" + (" --stretch" if self.stretch else "")
        return " ".join(f"--{k} {v}" for k, v in (("width", self.width), ("height", self.height)) if v is not None)


@dataclass(frozen=True)
class Target:
    """The output frame: ``width`` x ``height`` stored pixels of ``sample_aspect``."""

    width: int
    height: int
    sample_aspect: Fraction


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def target(ask: OutputSize | None, width: int, height: int, sample_aspect: Fraction = Fraction(1), *,
           even: bool = True) -> Target:
    """The output frame for an input of ``width`` x ``height`` stored pixels (display
    orientation) of ``sample_aspect``: x4 with the same pixel shape when ``ask`` is None.
    ``even``: sizes rounded to even (4:2:0 video; given odd sides are refused). More than x4 the
    display size in either direction is refused, as is a ``--size`` that changes the display
    aspect by more than 1% without ``stretch``."""
    sar = Fraction(sample_aspect or 1)
    if ask is None:
        return Target(width * SCALE, height * SCALE, sar)
    fit = _even if even else (lambda value: max(1, round(value)))
    if ask.scale is not None:
        return Target(fit(width * ask.scale), fit(height * ask.scale), sar)
    display_w, display_h = float(width * sar), float(height)  # the picture in square pixels
    aspect = display_w / display_h
    if even:
        for name, value in (("--width", ask.width), ("--height", ask.height)):
            if value is not None and value % 2:
                raise ConfigError(f"{name} {value}: 4:2:0 video needs even sizes; use {value - 1} or {value + 1}")
        if ask.size is not None and (ask.size[0] % 2 or ask.size[1] % 2):
            raise ConfigError(f"--size {ask.size[0]}x{ask.size[1]}: 4:2:0 video needs even sizes")
    if ask.size is not None:
        w, h = ask.size
        change = (w / h) / aspect - 1
        if abs(change) > ASPECT_TOLERANCE and not ask.stretch:
            raise ConfigError(
                f"--size {w}x{h} changes the picture's shape by {change:+.1%} (the input displays at "
                f"{display_w:.0f}x{display_h:.0f}); keep it by giving --width or --height alone, or add --stretch"
            )
    elif ask.width is not None and ask.height is not None:
        raise ConfigError("give --width or --height (the other follows the picture's shape), or --size WxH for both")
    elif ask.width is not None:
        w, h = ask.width, fit(ask.width / aspect)
    else:
        assert ask.height is not None
        w, h = fit(ask.height * aspect), ask.height
    limit_w, limit_h = display_w * SCALE + 2, display_h * SCALE + 2  # + rounding to even
    if w > limit_w or h > limit_h:
        raise ConfigError(
            f"{ask.describe()}: {w}x{h} is more than x{SCALE} the input's {display_w:.0f}x{display_h:.0f} "
            f"(the model computes x{SCALE}; at most {_even(display_w * SCALE)}x{_even(display_h * SCALE)})"
        )
    return Target(w, h, Fraction(1))


# --- the resize itself ----------------------------------------------------------------------------


def _lanczos_matrix(n_in: int, n_out: int, device: torch.device, taps: int = 3) -> torch.Tensor:
    """``[n_out, n_in]`` Lanczos-``taps`` weights (pixel centres aligned, kernel widened by the
    reduction when downscaling: antialiased), rows summing to 1, edges clamped."""
    ratio = n_in / n_out
    support = taps * max(ratio, 1.0)
    centres = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * ratio - 0.5
    first = torch.floor(centres - support).long() + 1
    span = int(math.ceil(2 * support)) + 1
    index = first[:, None] + torch.arange(span, device=device)[None]
    x = (index.double() - centres[:, None]) / max(ratio, 1.0)
    weights = torch.sinc(x) * torch.sinc(x / taps) * (x.abs() < taps)
    weights = weights / weights.sum(dim=1, keepdim=True)
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64, device=device)
    matrix.scatter_add_(1, index.clamp(0, n_in - 1), weights)
    return matrix.float()


def resize(frames: torch.Tensor, height: int, width: int, filter: str = DEFAULT_FILTER) -> torch.Tensor:
    """``[N, 3, H, W]`` float in [0, 1] -> ``[N, 3, height, width]``, antialiased when it
    shrinks, on ``frames``' device, clamped to [0, 1]. ``filter``: one of :data:`FILTERS`."""
    if frames.shape[-2:] == (height, width):
        return frames
    frames = frames.float()
    if filter == "lanczos":
        rows = _lanczos_matrix(frames.shape[-2], height, frames.device)
        cols = _lanczos_matrix(frames.shape[-1], width, frames.device)
        out = torch.einsum("oh,nchw,pw->ncop", rows, frames, cols)
    elif filter == "area":
        out = F.interpolate(frames, size=(height, width), mode="area")
    elif filter in ("bicubic", "bilinear"):
        out = F.interpolate(frames, size=(height, width), mode=filter, align_corners=False, antialias=True)
    else:
        raise ConfigError(f"resize filter {filter!r}: use one of {', '.join(FILTERS)}")
    return out.clamp_(0, 1)
