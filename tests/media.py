"""Small clips built for tests, including broken ones (truncated, corrupted)."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_clip(
    path: Path, *, frames: int = 12, size: tuple[int, int] = (64, 48), rate: int = 24,
    codec: str = "libx264", pix_fmt: str = "yuv420p", gop: int = 6, faststart: bool = False,
) -> Path:
    """A clip of moving bars over noise (noise, so every packet carries real data)."""
    width, height = size
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"g": str(gop), "preset": "ultrafast"}
        for i in range(frames):
            rng = np.random.default_rng(i)
            image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            image[:, (3 * i) % width : (3 * i) % width + 4] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def packet_spans(path: Path) -> list[tuple[int, int, int]]:
    """``(pts, byte offset, size)`` of each video packet."""
    with av.open(str(path)) as container:
        return [(p.pts, p.pos, p.size) for p in container.demux(video=0) if p.size]


def corrupt_packet(path: Path, out: Path, which: int) -> Path:
    """A copy of ``path`` with the payload of video packet ``which`` overwritten by junk."""
    data = bytearray(path.read_bytes())
    _, pos, size = packet_spans(path)[which]
    data[pos : pos + size] = bytes(np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8))
    out.write_bytes(bytes(data))
    return out


def truncate(path: Path, out: Path, fraction: float) -> Path:
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def timestamps(path: Path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return [f.pts * f.time_base for f in container.decode(video=0)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_video(
    path: Path, images: list[np.ndarray], *, codec: str = "libx264", pix_fmt: str = "yuv420p", rate: int = 24,
    options: dict[str, str] | None = None, tags: tuple[int, int, int, int] | None = None,
    sar: Fraction | None = None, fmt: str | None = None, first_pts: int = 0,
) -> Path:
    """``images`` (RGB uint8/uint16, or ``(Y, U, V)`` planes) encoded as given. ``tags``:
    ``(primaries, transfer, matrix, range)`` code points; the RGB -> YUV conversion uses that
    matrix and range. ``fmt`` forces the container (``h264`` for a raw elementary stream)."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        first = images[0]
        height, width = first[0].shape if isinstance(first, tuple) else first.shape[:2]
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        cc = stream.codec_context
        if tags is not None:
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = tags
        if sar is not None:
            cc.sample_aspect_ratio = sar
        cc.options = {"preset": "ultrafast"} if codec == "libx264" else {}
        cc.options = {**cc.options, **(options or {})}
        for i, image in enumerate(images):
            if isinstance(image, tuple):
                frame = av.VideoFrame(width, height, pix_fmt)
                for plane, values in zip(frame.planes, image):
                    rows = np.zeros((values.shape[0], plane.line_size // values.itemsize), values.dtype)
                    rows[:, : values.shape[1]] = values
                    plane.update(rows.tobytes())
            else:
                rgb = av.VideoFrame.from_ndarray(image, format="rgb48le" if image.dtype == np.uint16 else "rgb24")
                matrix = tags[2] if tags and tags[2] not in (0, 2) else 1  # untagged: made as BT.709
                levels = "JPEG" if tags and tags[3] == 2 else "MPEG"
                frame = rgb.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range=levels)
            frame.pts = first_pts + i
            frame.time_base = Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def noise(height: int, width: int, seed: int, deep: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if deep:
        return rng.integers(0, 65535, (height, width, 3), dtype=np.uint16)
    return rng.integers(0, 255, (height, width, 3), dtype=np.uint8)


def first_decoded(path: Path) -> av.VideoFrame:
    with av.open(str(path)) as container:
        return next(container.decode(video=0))
