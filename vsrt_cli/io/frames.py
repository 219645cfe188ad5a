"""Folders of image frames: natural-order reading and lossless PNG writing, renamed into place."""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsrt_cli.errors import InputError, OutputError
from vsrt_cli.io.outputs import aside_path, frame_name, partial_path, refuse_replace, remove_own_output
from vsrt_cli.io.probe import has_alpha, probe
from vsrt_cli.io.convert import to_rgb
from vsrt_cli.io.reader import Frame
from vsrt_cli.io.writer import write_failure

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def natural_key(path: Path) -> list[object]:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path) -> list[Path]:
    """The PNG/JPEG files directly in ``folder``, in natural order; raises if there are none."""
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=natural_key)
    if not files:
        raise InputError(f"{folder} holds no PNG or JPEG frames; give a video file or a folder of images")
    return files


def frame_size(source: Path) -> tuple[int, int]:
    """``(height, width)`` of a clip (as displayed) or of the first image of a frame folder."""
    if source.is_dir():
        image = read_image(list_frames(source)[0])[0]
        return image.shape[0], image.shape[1]
    info = probe(source)
    return info.height, info.width


def read_image(path: Path) -> tuple[np.ndarray, int, bool]:
    """``(rgb, bit_depth, had_alpha)`` of one image file."""
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
    except (av.FFmpegError, StopIteration) as exc:
        raise InputError(f"{path} cannot be read as an image ({exc}); is it a PNG or JPEG?") from exc
    depth = max(c.bits for c in frame.format.components)
    return to_rgb(frame, depth, 0), depth, has_alpha(frame.format)


def iter_folder(files: list[Path], rate: Fraction) -> Iterator[Frame]:
    """Frames of an image folder with timestamps ``i / rate`` (time base ``1 / rate``)."""
    time_base = 1 / rate
    shape = None
    for index, path in enumerate(files):
        image, _, _ = read_image(path)
        if shape is None:
            shape = image.shape
        elif image.shape != shape:
            raise InputError(f"{path} is {image.shape[1]}x{image.shape[0]}, the first frame is {shape[1]}x{shape[0]}; all frames must have one size")
        # a PNG frame is known clean (quantiser 0); a JPEG's compression is not read (unknown)
        yield Frame(index, index, time_base, image, 0.0 if path.suffix.lower() == ".png" else None)


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of ``[H, W, 3]`` RGB uint8 (8-bit PNG) or uint16 (16-bit PNG)."""
    deep = image.dtype == np.uint16
    frame = av.VideoFrame.from_ndarray(image, format="rgb48le" if deep else "rgb24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height = image.shape[1], image.shape[0]
    codec.pix_fmt = "rgb48be" if deep else "rgb24"
    codec.time_base = Fraction(1, 1)
    frame.pts = 0
    packets = codec.encode(frame.reformat(format=codec.pix_fmt)) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)


class FolderWriter:
    """Writes ``frame_000001.png`` ... into a hidden sibling folder, renamed into place on success.

    An existing folder is replaced only with ``overwrite`` and only while it holds nothing but
    vsrt's frames (:func:`~vsrt_cli.io.outputs.refuse_replace`, checked again at the swap)."""

    def __init__(self, folder: Path, *, overwrite: bool) -> None:
        self.folder = folder
        self.tmp = partial_path(folder, folder=True)
        self.overwrite = overwrite
        self.frames_written = 0

    def __enter__(self) -> FolderWriter:
        if self.tmp.exists():  # this host and PID: left by a dead process that had our PID
            shutil.rmtree(self.tmp)
        try:
            self.tmp.mkdir(parents=False)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC):
                raise write_failure(self.folder, exc) from exc
            raise OutputError(f"cannot create {self.folder}: {exc}; check the parent folder exists and is writable") from exc
        return self

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        self.frames_written += 1
        path = self.tmp / frame_name(self.frames_written)
        try:
            path.write_bytes(encode_png(image))
        except OSError as exc:
            raise write_failure(self.folder, exc) from exc

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:  # again: files may have appeared in the output while the frames were computed
            refuse_replace(self.folder, overwrite=self.overwrite, folder=True)
        except OutputError:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        old = None
        try:
            if self.folder.exists() or self.folder.is_symlink():
                old = aside_path(self.folder)
                os.replace(self.folder, old)
            os.replace(self.tmp, self.folder)
        except OSError as failure:
            if old is not None and not self.folder.exists():
                os.replace(old, self.folder)  # put the previous output back
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise write_failure(self.folder, failure) from failure
        if old is not None:
            remove_own_output(old)
