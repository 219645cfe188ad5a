"""What each video encoder takes: its quality and speed options (``--preset`` translated into
its own scale), the pixel formats it can write, and whether it can keep HDR and non-square
pixels. Refusals are one line, raised before any frame is computed."""

from __future__ import annotations

import os
from fractions import Fraction

import av

from vsrt_cli.errors import ConfigError, OutputError
from vsrt_cli.io.colour import Colour

CODEC_ALIASES = {"h264": "libx264", "hevc": "libx265", "h265": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
# The encoders vsrt knows how to drive, best first; the help lists those this PyAV has.
KNOWN_ENCODERS = ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "libaom-av1", "ffv1", "prores_ks")

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
# --preset on each encoder's own scale (lower = slower and better for all three).
_SVT = dict(zip(X264_PRESETS, (12, 11, 10, 9, 8, 7, 5, 4, 2, 1)))
_CPU_USED = dict(zip(X264_PRESETS, (8, 7, 6, 5, 4, 3, 2, 1, 0, 0)))  # libvpx-vp9, libaom-av1
_PRESET_RANGE = {"libsvtav1": (-1, 13), "libvpx-vp9": (-8, 8), "libaom-av1": (0, 8)}

# Encoders that write the input's mastering-display and content-light metadata (HDR10).
HDR10_ENCODERS = {"libx265", "libsvtav1"}
# Encoders whose bitstream records the pixel aspect ratio; others rely on the container, and
# only MP4/MOV take it from PyAV (Matroska reads it from a field PyAV cannot set).
SAR_IN_BITSTREAM = {"libx264", "libx265", "mpeg4", "mpeg2video"}
SAR_CONTAINERS = {".mp4", ".mov", ".m4v"}
# libx265 leaves the decode time (DTS) of an encode of this many frames or fewer unset: it sets
# its B-frame delay only when frame number ``bframe delay`` (0-based, 2 with b-pyramid) arrives
# and reads the member uninitialised before (x265 Encoder::encode), so packets came out with a
# DTS far before zero (.mp4: "pts/dts pair unsupported", ENOSYS) or past their PTS (EINVAL).
X265_UNSET_DTS_FRAMES = 2


def encoder_choices() -> list[str]:
    """The encoders vsrt drives that the installed PyAV has (for the help and messages)."""
    return [c for c in KNOWN_ENCODERS if c in av.codecs_available]


def resolve_codec(codec: str | None, suffix: str, colour: Colour) -> str:
    """The encoder to use: the given one (aliases resolved), else libx264 (libvpx-vp9 for
    .webm); HDR input gets libx265 (libsvtav1 for .webm), which keep HDR10 metadata."""
    if codec is not None:
        return CODEC_ALIASES.get(codec, codec)
    webm = suffix.lower() == ".webm"
    if colour.hdr:
        return "libsvtav1" if webm else "libx265"
    return "libvpx-vp9" if webm else "libx264"


def pixel_formats(codec: str) -> list[str] | None:
    try:
        formats = av.codec.Codec(codec, "w").video_formats
    except (av.FFmpegError, ValueError):
        return None
    return [f.name for f in formats] if formats else None


def bits(pix_fmt: str) -> int:
    return max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8)


def choose_pix_fmt(codec: str, wanted: str, explicit: bool) -> str:
    """``wanted`` if the encoder takes it; a default it cannot take falls back to 8-bit 4:2:0
    (libvpx-vp9 builds without high bit depth); an explicit one is refused naming the choices."""
    formats = pixel_formats(codec)
    if formats is None or wanted in formats:
        return wanted
    if not explicit and "yuv420p" in formats:
        return "yuv420p"
    raise OutputError(f"{codec} here cannot encode {wanted} (it takes {', '.join(formats)}); choose one with --pix-fmt")


def check_keeps(codec: str, pix_fmt: str, colour: Colour, sample_aspect: Fraction, suffix: str, name: str) -> None:
    """Refuse an output that would lose the input's HDR or its pixel shape."""
    if colour.hdr:
        what = f"{name} is {colour.describe()}"
        if bits(pix_fmt) < 10:
            formats = pixel_formats(codec) or []
            if not any(f.endswith("10le") for f in formats):
                raise OutputError(f"{what}; {codec} here cannot write 10-bit video, and 8 bits would wash it out; "
                                  "use --codec libx265 (or libsvtav1)")
            raise OutputError(f"{what}; --pix-fmt {pix_fmt} has 8 bits and would wash it out; use --pix-fmt yuv420p10le")
        if colour.has_static_metadata and codec not in HDR10_ENCODERS:
            raise OutputError(f"{what} with mastering-display/content-light metadata, which {codec} cannot carry; "
                              "use --codec libx265 (or libsvtav1)")
    if sample_aspect != 1 and codec not in SAR_IN_BITSTREAM and suffix.lower() not in SAR_CONTAINERS:
        raise OutputError(
            f"{name} has non-square pixels (aspect {sample_aspect.numerator}:{sample_aspect.denominator}), which "
            f"{codec} in {suffix or 'this container'} cannot record; write .mp4/.mov, or use --codec libx264/libx265"
        )


def _scale(codec: str, preset: str, table: dict[str, int]) -> str:
    if preset in table:
        return str(table[preset])
    low, high = _PRESET_RANGE[codec]
    try:
        number = int(preset)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ConfigError(f"--preset {preset}: {codec} takes {', '.join(X264_PRESETS)} or a number {low} to {high}")
    return str(number)


def encoder_options(codec: str, *, crf: int, preset: str, colour: Colour) -> dict[str, str]:
    """The encoder's own options for ``--crf``/``--preset`` and the HDR10 metadata."""
    options: dict[str, str] = {}
    if codec in ("libx264", "libx265"):
        options.update(crf=str(crf), preset=preset)
    if codec == "libx265":
        params = ["log-level=error"]
        if colour.hdr and colour.mastering is not None:
            params.append(f"master-display={colour.mastering.x265()}")
        if colour.hdr and colour.light is not None:
            params.append(f"max-cll={colour.light[0]},{colour.light[1]}")
        options["x265-params"] = ":".join(params)
    elif codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT prints its banner to stderr otherwise
        options.update(crf=str(crf), preset=_scale(codec, preset, _SVT))
        params = []
        if colour.hdr and colour.mastering is not None:
            params.append(f"mastering-display={colour.mastering.svtav1()}")
        if colour.hdr and colour.light is not None:
            params.append(f"content-light={colour.light[0]},{colour.light[1]}")
        if params:
            options["svtav1-params"] = ":".join(params)
    elif codec == "libvpx-vp9":
        options.update(crf=str(crf), b="0", deadline="good", **{"cpu-used": _scale(codec, preset, _CPU_USED), "row-mt": "1"})
    elif codec == "libaom-av1":
        options.update(crf=str(crf), b="0", **{"cpu-used": _scale(codec, preset, _CPU_USED), "row-mt": "1"})
    return options


def open_failure(codec: str, name: str, exc: BaseException, logs: list[tuple[int, str, str]]) -> OutputError:
    """The error for an encoder that refused to open, with the encoder's own words."""
    said = [msg.strip() for level, _, msg in logs if level <= av.logging.ERROR and msg.strip()]
    cause = "; ".join(said[-2:]) or str(getattr(exc, "strerror", None) or exc)
    return OutputError(
        f"cannot write {codec} video into {name} ({cause}); try another --codec ({', '.join(encoder_choices())}), "
        "other --preset/--pix-fmt, or another extension"
    )
