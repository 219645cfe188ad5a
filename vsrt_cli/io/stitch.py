"""The I/O of chunked runs: a demux-only scan that numbers the frames, a reader for one range
of frames (seeking to the keyframe before it), and the stitch that remuxes the chunks' video
packets in order with the source's audio and subtitles copied once.

Nothing here decodes more than a chunk needs, and nothing re-encodes: the stitched video is
the chunks' packets, the audio and subtitles are the source's packets, all at their own
timestamps. The output appears under its final name only when complete (temp file + rename).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vsrt_cli.errors import DecodeError, InputError
from vsrt_cli.io.carry import Carry, main_video
from vsrt_cli.io.outputs import partial_path, refuse_replace
from vsrt_cli.io.probe import VideoInfo, open_input
from vsrt_cli.io.quant import quant_reader
from vsrt_cli.io.convert import FrameConverter
from vsrt_cli.io.reader import Frame
from vsrt_cli.io.span import Cut
from vsrt_cli.io.writer import write_failure


@dataclass(frozen=True)
class Scan:
    """Every video frame's timestamp in display order (``times[i]`` is frame ``i``'s), and
    which of them are keyframes; read from packets alone, nothing decoded."""

    times: tuple[int, ...]
    keyframes: frozenset[int]

    @property
    def frames(self) -> int:
        return len(self.times)


def scan(info: VideoInfo) -> Scan:
    """Number the frames of ``info``'s first video stream by their packets' timestamps."""
    if not info.timestamps:
        raise InputError(f"{info.path}: a raw stream without timestamps cannot be cut into chunks; run it without --chunks")
    times, keys = [], set()
    with open_input(info.path) as container:
        for packet in container.demux(main_video(container)):
            if packet.size and packet.pts is not None and not packet.is_discard:
                times.append(packet.pts)
                if packet.is_keyframe:
                    keys.add(packet.pts)
    if not times:
        raise InputError(f"{info.path}: no video packet with a timestamp; run it without --chunks")
    times.sort()
    if len(set(times)) != len(times):
        raise InputError(f"{info.path}: two video frames share a timestamp; run it without --chunks")
    return Scan(tuple(times), frozenset(keys))


def read_range(info: VideoInfo, frames: Scan, start: int, end: int, *, yuv: bool = False) -> Iterator[Frame]:
    """Frames ``start`` to ``end - 1`` (global indices, source timestamps), decoded from the
    keyframe at or before ``start``: the same pictures a decode from the beginning gives
    (as planes where ``yuv`` and the frame allows, like :class:`~vsrt_cli.io.reader.VideoReader`)."""
    index = {pts: i for i, pts in enumerate(frames.times)}
    rotated = info.rotation in (90, 270)
    size = (info.height, info.width) if rotated else (info.width, info.height)  # coded
    expected = start
    convert = FrameConverter(info, size, yuv)
    with open_input(info.path) as container:
        stream = main_video(container)
        stream.thread_type = "AUTO"
        quant = quant_reader(stream)
        if start > 0:
            container.seek(frames.times[start], stream=stream, backward=True, any_frame=False)
        try:
            for frame in container.decode(stream):
                i = index.get(frame.pts)  # type: ignore[arg-type]
                if i is None or i < start:
                    continue
                if i >= end:
                    break
                if i != expected:
                    raise DecodeError(f"{info.path}: frame {expected} could not be decoded in its chunk; run it without --chunks")
                yield Frame(i, frame.pts, frame.time_base or stream.time_base, convert(frame), quant(frame))
                expected += 1
        except av.FFmpegError as exc:
            raise DecodeError(f"{info.path}: decoding frame {expected} failed ({exc}); run it without --chunks") from exc
    if expected != end:
        raise DecodeError(f"{info.path}: frames {expected} to {end - 1} could not be decoded in their chunk; run it without --chunks")


def _stamps(parts: list[Path], starts: list[Fraction] | None) -> tuple[list[int], list[int]]:
    """Per part, the shift that puts its first picture at ``starts[k]`` seconds (a muxer may
    have moved a whole chunk: NUT shifts one whose first decode time would be negative by the
    encoder's reorder delay); and decode timestamps for the video packets of all parts taken in
    order as one stream, in the chunks' time base (the packets' own are not kept by every
    container: NUT drops the first ones of each chunk). Packet ``k`` decodes at the
    ``(k - D)``-th smallest timestamp, ``D`` the least reorder delay that keeps every decode time
    at or before its display time; the first ``D`` packets one frame apart before the first
    picture."""
    stamps: list[int] = []
    shifts: list[int] = []
    for k, part in enumerate(parts):
        with av.open(str(part)) as container:
            stream = container.streams.video[0]
            own = [p.pts for p in container.demux(stream) if p.size]
            shift = 0
            if starts is not None and own:
                shift = round((starts[k] - min(own) * stream.time_base) / stream.time_base)
            shifts.append(shift)
            stamps += [pts + shift for pts in own]
    order = sorted(stamps)
    if len(set(order)) != len(order):
        raise DecodeError(f"{parts[0].parent}: the chunks' frames overlap in time; delete the hidden chunk files and run again")
    rank = {pts: r for r, pts in enumerate(order)}
    delay = max([0] + [k - rank[pts] for k, pts in enumerate(stamps)])
    step = order[1] - order[0] if len(order) > 1 else 1
    return shifts, [order[k - delay] if k >= delay else order[0] - (delay - k) * step for k in range(len(stamps))]


def _video_packets(parts: list[Path], out_stream: av.stream.Stream, starts: list[Fraction] | None) -> Iterator[av.Packet]:
    """The video packets of ``parts`` in order, each part at its start time, with decode
    timestamps for the whole stream."""
    shifts, dts = _stamps(parts, starts)
    stamps = iter(dts)
    for part, shift in zip(parts, shifts):
        with av.open(str(part)) as container:
            for packet in container.demux(container.streams.video[0]):
                if not packet.size:
                    continue
                packet.pts += shift
                packet.dts = next(stamps)
                packet.stream = out_stream
                yield packet


def stitch(
    parts: list[Path], output: Path, *, source: Path | None, overwrite: bool, metadata: dict[str, str] | None = None,
    starts: list[Fraction] | None = None, copy_streams: bool = True, cut: Cut | None = None,
) -> list[str]:
    """Remux the video of ``parts`` (chunk files, in order) into ``output`` with everything else
    of ``source`` (None: nothing) carried once (:class:`~vsrt_cli.io.carry.Carry`); returns what
    the container could not hold (left out, as the video writer does). ``metadata``: vsrt's
    container tags, beside the source's.
    ``starts``: each part's first frame's time in seconds (the source's), restored wherever a
    muxer moved it; None keeps the parts' own. ``copy_streams`` False (``--no-audio``): the
    source's tags and chapters only. ``cut``: a span's (:class:`~vsrt_cli.io.span.Cut`, its
    start set): the copied packets are those in the span, moved as the video is."""
    tmp = partial_path(output)
    dropped: list[str] = []
    try:
        with av.open(str(parts[0])) as first, av.open(str(tmp), "w") as out:
            template = first.streams.video[0]
            video = out.add_stream_from_template(template)
            video.time_base = template.time_base
            src = av.open(str(source), metadata_errors="ignore") if source is not None else None
            try:
                if src is not None:
                    carry = Carry(src, out, main_video(src), video, copy_streams=copy_streams)
                    carry.finish_header(metadata or {})
                    dropped += carry.dropped
                    extra = carry.packets(cut.packets if cut is not None else None)
                else:
                    out.metadata.update(metadata or {})
                    extra = iter(())
                pending = next(extra, None)
                for packet in _video_packets(parts, video, starts):
                    stamp = packet.dts if packet.dts is not None else packet.pts
                    until = float(stamp * packet.time_base) if stamp is not None else None
                    while pending is not None and (until is None or _time(pending) <= until):
                        _copy(out, pending, carry)
                        pending = next(extra, None)
                    out.mux(packet)
                while pending is not None:
                    _copy(out, pending, carry)
                    pending = next(extra, None)
            finally:
                if src is not None:
                    src.close()
        refuse_replace(output, overwrite=overwrite, folder=False)
        os.replace(tmp, output)
    except (OSError, av.FFmpegError) as exc:
        tmp.unlink(missing_ok=True)
        raise write_failure(output, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dropped


def container_comment(path: Path) -> str | None:
    """The container's ``comment`` tag (None if it has none; Matroska may spell it
    ``COMMENT``). Raises ``av.FFmpegError`` or ``OSError`` if ``path`` is no media file."""
    with av.open(str(path), metadata_errors="ignore") as container:
        return next((v for k, v in container.metadata.items() if k.lower() == "comment"), None)


def _time(packet: av.Packet) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base) if stamp is not None else float("-inf")


def _copy(out: av.container.OutputContainer, packet: av.Packet, carry: Carry) -> None:
    if carry.route(packet):
        out.mux(packet)
