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
