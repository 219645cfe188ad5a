"""A video's colour description (primaries, transfer, matrix, range, HDR metadata): read from
the input, guessed where it is untagged the way players guess, and carried to the output.

Values are FFmpeg's (ISO/IEC 23091-2 code points): the same numbers in the codec context, the
bitstream's VUI and the container's colour boxes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction

import av

# AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace code points used here.
BT709, UNSPECIFIED, BT470BG, SMPTE170M, BT2020 = 1, 2, 5, 6, 9
BT2020_NCL, BT2020_CL = 9, 10
PQ, HLG = 16, 18  # SMPTE ST 2084, ARIB STD-B67
RANGE_LIMITED, RANGE_FULL = 1, 2
# Matrices swscale converts with directly; anything else (unspecified, reserved) is guessed.
KNOWN_MATRICES = {1, 4, 5, 6, 7, 9, 10}
_NAMES = {PQ: "PQ", HLG: "HLG"}


def is_hd(width: int, height: int) -> bool:
    """What players take for HD when nothing is tagged (mpv, VLC, FFmpeg's colour guessing)."""
    return width >= 1280 or height > 576


def guess_matrix(colorspace: int, width: int, height: int) -> int:
    """The YUV->RGB matrix to decode with: the tagged one, else BT.709 for HD, BT.601 below."""
    if colorspace in KNOWN_MATRICES:
        return colorspace
    return BT709 if is_hd(width, height) else SMPTE170M


@dataclass(frozen=True)
class Mastering:
    """SMPTE ST 2086 mastering display: CIE 1931 xy of the red, green and blue primaries and
    the white point; luminance in cd/m2."""

    red: tuple[Fraction, Fraction]
    green: tuple[Fraction, Fraction]
    blue: tuple[Fraction, Fraction]
    white: tuple[Fraction, Fraction]
    min_luminance: Fraction
    max_luminance: Fraction

    @classmethod
    def from_side_data(cls, data: bytes) -> Mastering | None:
        """From FFmpeg's ``AVMasteringDisplayMetadata`` (10 rationals, two flags); None when
        the primaries or the luminance are absent."""
        if len(data) < 88:
            return None
        v = struct.unpack_from("<20i2i", data)
        if not (v[20] and v[21]):
            return None
        r = [Fraction(v[i], v[i + 1]) if v[i + 1] else Fraction(0) for i in range(0, 20, 2)]
        return cls((r[0], r[1]), (r[2], r[3]), (r[4], r[5]), (r[6], r[7]), r[8], r[9])

    def x265(self) -> str:
        """x265's ``master-display`` (chromaticity in 1/50000, luminance in 1/10000 cd/m2)."""
        def xy(p: tuple[Fraction, Fraction]) -> str:
            return f"{round(p[0] * 50000)},{round(p[1] * 50000)}"

        return (f"G({xy(self.green)})B({xy(self.blue)})R({xy(self.red)})WP({xy(self.white)})"
                f"L({round(self.max_luminance * 10000)},{round(self.min_luminance * 10000)})")

    def svtav1(self) -> str:
        """SVT-AV1's ``mastering-display`` (decimal chromaticity and cd/m2)."""
        def xy(p: tuple[Fraction, Fraction]) -> str:
            return f"{float(p[0]):.5f},{float(p[1]):.5f}"

        return (f"G({xy(self.green)})B({xy(self.blue)})R({xy(self.red)})WP({xy(self.white)})"
                f"L({float(self.max_luminance):.4f},{float(self.min_luminance):.4f})")


def light_level(data: bytes) -> tuple[int, int] | None:
    """``(MaxCLL, MaxFALL)`` from FFmpeg's ``AVContentLightMetadata``."""
    return struct.unpack_from("<2I", data) if len(data) >= 8 else None


@dataclass(frozen=True)
class Colour:
    """How to turn a video's code values into light. ``guessed`` names what was not tagged."""

    primaries: int = BT709
    transfer: int = BT709
    matrix: int = BT709
    full_range: bool = False
    mastering: Mastering | None = None
    light: tuple[int, int] | None = None  # MaxCLL, MaxFALL in cd/m2
    guessed: bool = False

    @property
    def hdr(self) -> bool:
        return self.transfer in (PQ, HLG)

    @property
    def has_static_metadata(self) -> bool:
        return self.mastering is not None or self.light is not None

    def describe(self) -> str:
        """``HDR (PQ, BT.2020)`` and the like, for messages."""
        kind = _NAMES.get(self.transfer, "SDR")
        prim = "BT.2020" if self.primaries == BT2020 else f"primaries {self.primaries}"
        return f"HDR ({kind}, {prim})" if self.hdr else f"SDR ({prim})"


SDR_BT709 = Colour()


# Codecs whose 4:2:0 chroma sits on the even luma columns by default (MPEG-2's siting, which
# FFmpeg's decoders report and players assume); the others' sits between two columns (VP8/9,
# AV1, MPEG-1, H.263, JPEG). Decoder and encoder names.
_CHROMA_LEFT = frozenset({"h264", "hevc", "vvc", "mpeg2video", "mpeg4", "vc1", "wmv3",
                          "libx264", "libx265", "libxvid", "libvvenc", "h264_nvenc", "hevc_nvenc"})


def chroma_left(codec: str) -> bool:
    """Whether ``codec``'s 4:2:0 chroma sits on the even luma columns unless tagged otherwise."""
    return codec in _CHROMA_LEFT


def full_range(frame: av.VideoFrame) -> bool:
    """Whether the frame's code values span 0-255 (JPEG levels), not 16-235 (MPEG)."""
    return frame.color_range == RANGE_FULL or frame.format.name.startswith("yuvj")


def read_colour(frame: av.VideoFrame) -> Colour:
    """The colour description of a decoded frame, untagged parts guessed as players do: the
    matrix by size (BT.709 for HD, BT.601 below); primaries and transfer alike (BT.709 for
    HD; SMPTE 170M for 525-line, BT.470BG for 625-line SD)."""
    w, h = frame.width, frame.height
    hd = is_hd(w, h)
    sd_primaries = BT470BG if h > 480 else SMPTE170M
    matrix = guess_matrix(frame.colorspace, w, h)
    primaries = frame.color_primaries if frame.color_primaries not in (0, UNSPECIFIED) else (BT709 if hd else sd_primaries)
    transfer = frame.color_trc if frame.color_trc not in (0, UNSPECIFIED) else (BT709 if hd else SMPTE170M)
    guessed = matrix != frame.colorspace or primaries != frame.color_primaries or transfer != frame.color_trc
    mastering = light = None
    for side in frame.side_data:
        name = side.type.name
        if name == "MASTERING_DISPLAY_METADATA":
            mastering = Mastering.from_side_data(bytes(side))
        elif name == "CONTENT_LIGHT_LEVEL":
            light = light_level(bytes(side))
    return Colour(primaries, transfer, matrix, full_range(frame), mastering, light, guessed)
