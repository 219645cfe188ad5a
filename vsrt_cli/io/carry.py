"""Everything of an input besides the upscaled video, added to an output container: audio,
subtitles, cover art, further video streams, data streams, Matroska attachments, chapters,
container and stream tags (:mod:`vsrt_cli.io.metadata`). Used by the video writer and by the
stitch of chunked runs, so both outputs hold the same.

What the output container cannot hold is listed in :attr:`Carry.dropped`, one line each, for
the caller to say; nothing is dropped without a word. A camera's timecode track (``tmcd``) is
not copied as a stream: its start timecode rides on the video stream's ``timecode`` tag, from
which the MOV/MP4 muxer writes a new ``tmcd`` track (Matroska keeps it as a tag).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain

import av

from vsrt_cli.io.metadata import container_tags, copy_chapters, copy_stream_tags

Cut = Callable[[av.container.InputContainer, list], Iterator[av.Packet]]  # what a span keeps

__all__ = ["Carry", "is_cover", "main_video"]

_ATTACHMENTS = ("matroska",)  # muxers that hold attachments (WebM does not)
_PICTURES = {"png": ("png", "image/png"), "mjpeg": ("jpg", "image/jpeg")}  # cover codecs as attachments


def is_cover(stream: av.stream.Stream) -> bool:
    """A picture stream (cover art, ``attached_pic``): one image, not a video to upscale."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def main_video(container: av.container.Container) -> av.VideoStream:
    """The video stream vsrt upscales: the first that is not cover art (the first of all if
    every one is)."""
    videos = list(container.streams.video)
    return next((s for s in videos if not is_cover(s)), videos[0])


def _is_timecode(stream: av.stream.Stream) -> bool:
    tag = stream.codec_context.codec_tag if stream.codec_context is not None else ""
    return stream.type == "data" and (tag == "tmcd" or "timecode" in stream.metadata)


class Carry:
    """The streams of ``src`` (all but ``video``, the upscaled one) added to ``out`` next to
    ``video_out``; then :meth:`finish_header` before the header is written, and the packets
    from :meth:`packets` muxed through :meth:`route`.

    ``copy_streams`` False (``--no-audio``) copies no other stream, but tags and chapters
    still come along."""

    def __init__(self, src: av.container.InputContainer, out: av.container.OutputContainer,
                 video: av.stream.Stream, video_out: av.stream.Stream, *, copy_streams: bool = True) -> None:
        self.src, self.out = src, out
        self.video = video
        self.dropped: list[str] = []
        self._map: dict[int, av.stream.Stream] = {}
        self._covers: set[int] = set()
        copy_stream_tags(video, video_out, reencoded=True)
        if not copy_streams:
            return
        for stream in src.streams:
            if stream.index == video.index:
                continue
            if stream.type == "attachment":
                self._attach(stream)
            elif is_cover(stream) and self.out.format.name in _ATTACHMENTS:
                self._attach_cover(stream)
            elif stream.type == "data" and _is_timecode(stream):
                if "timecode" not in video_out.metadata and stream.metadata.get("timecode"):
                    video_out.metadata["timecode"] = stream.metadata["timecode"]
            else:
                self._copy(stream)

    def _what(self, stream: av.stream.Stream) -> str:
        kind = "cover picture" if is_cover(stream) else f"{stream.type} stream"
        name = stream.codec_context.name if stream.codec_context is not None else "unknown codec"
        language = stream.metadata.get("language")
        return f"{kind} {stream.index} ({name}{', ' + language if language and language != 'und' else ''})"

    def _copy(self, stream: av.stream.Stream) -> None:
        if stream.type not in ("audio", "subtitle", "video", "data"):
            self.dropped.append(f"{self._what(stream)}: vsrt cannot copy {stream.type} streams")
            return
        try:
            out_stream = self.out.add_stream_from_template(stream)
        except (av.FFmpegError, ValueError, TypeError) as exc:
            self.dropped.append(f"{self._what(stream)}: {exc}")
            return
        copy_stream_tags(stream, out_stream)
        self._map[stream.index] = out_stream
        if is_cover(stream):
            self._covers.add(stream.index)

    def _attach(self, stream: av.stream.Stream) -> None:
        name = getattr(stream, "name", None) or stream.metadata.get("filename") or f"attachment {stream.index}"
        mimetype = getattr(stream, "mimetype", None) or stream.metadata.get("mimetype") or "application/octet-stream"
        if self.out.format.name not in _ATTACHMENTS:
            self.dropped.append(f"attachment {name} ({mimetype}): {self.out.format.name} holds no attachments "
                                "(write .mkv to keep it)")
            return
        try:
            self.out.add_attachment(name, mimetype, bytes(stream.data))
        except (av.FFmpegError, ValueError, TypeError) as exc:
            self.dropped.append(f"attachment {name} ({mimetype}): {exc}")

    def _attach_cover(self, stream: av.stream.Stream) -> None:
        """Matroska holds cover art as an attachment named ``cover.*`` (as mkvmerge writes it;
        FFmpeg's demuxer shows it as an attached picture again)."""
        codec = stream.codec_context.name if stream.codec_context is not None else ""
        kind = _PICTURES.get(codec)
        if kind is None:
            self.dropped.append(f"{self._what(stream)}: Matroska holds cover art as a PNG or JPEG attachment only")
            return
        with av.open(self.src.name, metadata_errors="ignore") as again:  # its one packet, read apart
            data = next((bytes(p) for p in again.demux(again.streams[stream.index]) if p.size), b"")
        if not data:
            self.dropped.append(f"{self._what(stream)}: the picture is empty")
            return
        self.out.add_attachment(f"cover.{kind[0]}", kind[1], data)

    def finish_header(self, ours: dict[str, str]) -> None:
        """The container's tags (the input's with ``ours`` beside them) and chapters."""
        self.out.metadata.update(container_tags(dict(self.src.metadata), ours))
        failed = copy_chapters(self.src, self.out)
        if failed is not None:
            self.dropped.append(failed)

    def packets(self, cut: Cut | None = None) -> Iterator[av.Packet]:
        """The packets of every copied stream, in the input's order (none if nothing is copied);
        ``cut`` (a span's :meth:`vsrt_cli.io.span.Cut.packets`) keeps those in the span, moved,
        and a cover's one picture first."""
        if not self._map:
            return iter(())
        streams = [self.src.streams[i] for i in self._map]
        if cut is None:
            return iter(self.src.demux(*streams))
        rest = [s for s in streams if s.index not in self._covers]
        return chain(self._pictures([s for s in streams if s.index in self._covers]),
                     cut(self.src, rest) if rest else ())

    def _pictures(self, covers: list[av.stream.Stream]) -> Iterator[av.Packet]:
        """Each cover's picture: the demuxer hands it over first, before any other packet."""
        for stream in covers:
            for packet in self.src.demux(stream):
                if packet.size:
                    yield packet
                    break

    def route(self, packet: av.Packet) -> bool:
        """Point ``packet`` at its output stream; False for one to leave out (no timestamp and
        no picture, or a demuxer's empty end-of-stream packet)."""
        index = packet.stream.index
        if index in self._covers:  # a cover's one packet carries no timestamp
            if not packet.size:
                return False
            packet.pts = packet.dts = 0
        elif packet.dts is None and packet.pts is None:
            return False
        packet.stream = self._map[index]
        return True
