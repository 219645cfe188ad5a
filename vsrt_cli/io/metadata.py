"""Tags, dispositions and chapters of an input, carried to its output as ``ffmpeg -map 0
-map_metadata 0 -c copy`` carries them.

- Container tags (title, artist, ``creation_time``, ...) are copied; vsrt's own tags (the
  provenance line under ``comment``) go beside the user's: where the input already has a
  different value under the same key, vsrt's is appended on a line of its own, never over it.
- Each copied stream keeps its tags (``language``, ``title``, ``handler_name``, ...) and its
  dispositions (default, forced, comment, attached picture, ...); so does the upscaled video
  stream (its ``language``, its ``timecode``, from which the MOV/MP4 muxer writes a ``tmcd``
  track and Matroska a tag), except what described the old encode.
- Chapters keep their titles and times.

Tags that describe the input's muxer or encoder (``encoder``, the brands, per-track
``DURATION``) are not copied: the output's muxer writes its own.
"""

from __future__ import annotations

from typing import Any

import av

__all__ = ["OWN_LINE", "container_tags", "copy_chapters", "copy_stream_tags", "own_line"]

OWN_LINE = "vsrt "  # how vsrt's provenance line starts (vsrt_cli.io.sidecar.TAG_PREFIX)
_MUXER_TAGS = frozenset({"encoder", "major_brand", "minor_version", "compatible_brands", "duration"})


def _keep(key: str) -> bool:
    return key.lower() not in _MUXER_TAGS


def container_tags(source: dict[str, str], ours: dict[str, str]) -> dict[str, str]:
    """The output container's tags: the input's (``source``, keys as the input spells them)
    and vsrt's (``ours``). Where both have a key (in any case: Matroska writes ``COMMENT``) with
    different values, the input's value comes first and vsrt's follows on its own line."""
    tags = {key: value for key, value in source.items() if _keep(key)}
    for key, value in ours.items():
        same = next((k for k in tags if k.lower() == key.lower()), None)
        if same is None:
            tags[key] = value
            continue
        theirs = tags.pop(same)
        lines = theirs.splitlines()
        tags[key] = theirs if value in lines else f"{theirs}\n{value}"
    return tags


def own_line(value: str | None) -> str | None:
    """vsrt's line in a tag's value (the last one starting with ``vsrt ``), or None."""
    if not value:
        return None
    return next((line for line in reversed(value.splitlines()) if line.startswith(OWN_LINE)), None)


def copy_stream_tags(src: av.stream.Stream, dst: av.stream.Stream, *, reencoded: bool = False) -> None:
    """``src``'s tags and dispositions onto ``dst`` (before the header is written). A
    ``reencoded`` stream (the upscaled video) drops what described the old encode and is no
    attached picture."""
    tags = {k: v for k, v in src.metadata.items() if k.lower() != "duration" and not (reencoded and not _keep(k))}
    if "name" in tags and not any(k.lower() == "title" for k in tags):
        tags["title"] = tags.pop("name")  # an MP4 track's title reads back as "name" (its udta box)
    dst.metadata.update(tags)
    disposition = src.disposition
    if reencoded:
        disposition &= ~av.stream.Disposition.attached_pic
    dst.disposition = disposition.value  # an int: PyAV 17's Disposition is a Flag its setter cannot int()


def copy_chapters(src: av.container.InputContainer, out: av.container.OutputContainer) -> str | None:
    """``src``'s chapters into ``out`` (titles and times); the reason if ``out`` cannot take them."""
    chapters: list[dict[str, Any]] = src.chapters()
    if not chapters:
        return None
    try:
        out.set_chapters(chapters)
    except (av.FFmpegError, ValueError, TypeError) as exc:
        return f"{len(chapters)} chapter(s): {exc}"
    return None
