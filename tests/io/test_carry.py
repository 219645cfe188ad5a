"""Everything of a user's file besides the upscaled pictures survives as ``ffmpeg -map 0
-map_metadata 0 -c copy`` carries it (issue #29): tracks with their languages, titles and
dispositions, attachments, chapters, container tags, cover art, a camera's timecode, other video
streams, and a phone clip's edit list. Each input is made here with the ffmpeg binary."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import pytest

from vsrt_cli.io.metadata import container_tags, own_line
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.io.sidecar import read_container_tag
from vsrt_cli.io.writer import EncodeSettings, VideoWriter

TAG = "vsrt 0.1.0 model=test"
LAVFI = ["-f", "lavfi", "-i", "testsrc=s=64x48:d=1:r=24"]
X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast"]


def ffmpeg(*args: str | Path) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


def upscale_like(source: Path, out: Path, **settings) -> VideoWriter:
    """What the pipeline does around the model: every decoded frame written with its timestamp."""
    info = probe(source)
    with VideoWriter(out, width=info.width, height=info.height, time_base=info.time_base, rate=info.rate, bit_depth=8,
                     settings=EncodeSettings(preset="ultrafast", **settings), source=source,
                     metadata={"comment": TAG}) as writer, VideoReader(info) as frames:
        for frame in frames:
            writer.write(frame.image, frame.pts)
    return writer


def streams(path: Path) -> list[tuple[str, str | None, str | None, int]]:
    """``(type, language, title, disposition)`` of each stream (an MP4 track's title reads back as ``name``)."""
    with av.open(str(path)) as c:
        return [(s.type, s.metadata.get("language"), s.metadata.get("title") or s.metadata.get("name"), s.disposition.value)
                for s in c.streams]


def tags(path: Path) -> dict[str, str]:
    with av.open(str(path)) as c:
        return {k.lower(): v for k, v in c.metadata.items()}


def chapters(path: Path) -> list[tuple[float, float, str]]:
    with av.open(str(path)) as c:
        return [(round(float(ch["start"] * ch["time_base"]), 3), round(float(ch["end"] * ch["time_base"]), 3),
                 ch["metadata"].get("title")) for ch in c.chapters()]


D = av.stream.Disposition


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> Path:
    """A movie rip: English default + French commentary audio, ASS (with its font attached) and
    forced SRT subtitles, three chapters, title/artist/comment/creation_time, a Japanese video track."""
    folder = tmp_path_factory.mktemp("movie")
    (folder / "a.ass").write_text(
        "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize\nStyle: Default,Tiny,20\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Text\nDialogue: 0,0:00:00.00,0:00:00.50,Default,Bonjour\n")
    (folder / "b.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nHello\n")
    (folder / "tiny.ttf").write_bytes(b"not really a font")
    (folder / "meta.txt").write_text(
        ";FFMETADATA1\ntitle=My Film\nartist=Someone\ncomment=my own words\ncreation_time=2021-05-06T07:08:09.000000Z\n"
        + "".join(f"[CHAPTER]\nTIMEBASE=1/1000\nSTART={a}\nEND={b}\ntitle={t}\n"
                  for a, b, t in ((0, 300, "Opening"), (300, 600, "Middle"), (600, 1000, "End"))))
    path = folder / "movie.mkv"
    ffmpeg(*LAVFI, "-f", "lavfi", "-i", "sine=f=440:d=1", "-f", "lavfi", "-i", "sine=f=660:d=1", "-i", folder / "a.ass",
           "-i", folder / "b.srt", "-i", folder / "meta.txt", "-attach", folder / "tiny.ttf",
           "-map", "0", "-map", "1", "-map", "2", "-map", "3", "-map", "4", "-map_metadata", "5", "-map_chapters", "5",
           *X264, "-c:a", "aac", "-c:s", "copy", "-metadata:s:v:0", "language=jpn",
           "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=English", "-disposition:a:0", "default",
           "-metadata:s:a:1", "language=fre", "-metadata:s:a:1", "title=Commentary", "-disposition:a:1", "comment",
           "-metadata:s:s:0", "language=fre", "-metadata:s:s:0", "title=Signs", "-disposition:s:0", "0",
           "-metadata:s:s:1", "language=eng", "-disposition:s:1", "forced",
           "-metadata:s:t", "mimetype=application/x-truetype-font", path)
    return path


def test_tracks_keep_their_languages_titles_and_dispositions(movie, tmp_path):
    out = tmp_path / "out.mkv"
    writer = upscale_like(movie, out)
    assert writer.dropped == []
    assert streams(out)[:5] == [
        ("video", "jpn", None, 0),  # was und
        ("audio", "eng", "English", D.default), ("audio", "fre", "Commentary", D.comment),  # were und / empty / no flag
        ("subtitle", "fre", "Signs", 0), ("subtitle", "eng", None, D.forced),
    ]
    with av.open(str(out)) as c, av.open(str(movie)) as src:
        font = [(s.name, s.mimetype, bytes(s.data)) for s in c.streams if s.type == "attachment"]
        assert font == [(s.name, s.mimetype, bytes(s.data)) for s in src.streams if s.type == "attachment"]  # was dropped
        audio = [bytes(p) for p in c.demux(audio=1) if p.size]
        assert audio == [bytes(p) for p in src.demux(audio=1) if p.size]  # bit for bit, as before


def test_chapters_and_container_tags_survive_and_the_users_comment_is_kept(movie, tmp_path):
    for suffix in (".mkv", ".mp4"):
        out = tmp_path / f"out{suffix}"
        upscale_like(movie, out)
        assert chapters(out) == [(0.0, 0.3, "Opening"), (0.3, 0.6, "Middle"), (0.6, 1.0, "End")]  # were 0 of 3
        got = tags(out)
        assert got["title"] == "My Film" and got["artist"] == "Someone"
        assert got["creation_time"].startswith("2021-05-06T07:08:09")
        assert got["comment"].splitlines() == ["my own words", TAG]  # the user's first, vsrt's beside it
        assert read_container_tag(out) == TAG  # what `vsrt info` reads


def test_what_an_mp4_cannot_hold_is_said(movie, tmp_path):
    writer = upscale_like(movie, tmp_path / "out.mp4")
    said = " | ".join(writer.dropped)
    assert "attachment tiny.ttf (application/x-truetype-font): mp4 holds no attachments" in said
    assert "subtitle stream 3 (ssa, fre)" in said and "subtitle stream 4 (srt, eng)" in said
    assert [s[:3] for s in streams(tmp_path / "out.mp4") if s[0] == "audio"] == [("audio", "eng", "English"), ("audio", "fre", "Commentary")]


def test_mp4_subtitles_keep_their_language(tmp_path):
    (tmp_path / "s.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nHello\n")
    source = tmp_path / "in.mp4"
    ffmpeg(*LAVFI, "-i", tmp_path / "s.srt", *X264, "-c:s", "mov_text", "-metadata:s:s:0", "language=ger",
           "-metadata:s:s:0", "title=Deutsch", source)
    upscale_like(source, tmp_path / "out.mp4")
    assert streams(tmp_path / "out.mp4")[1][:3] == ("subtitle", "ger", "Deutsch")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_cover_art_stays_a_cover_and_is_not_upscaled(tmp_path, suffix):
    ffmpeg("-f", "lavfi", "-i", "color=red:s=16x16:d=1", "-frames:v", "1", tmp_path / "cover.png")
    source = tmp_path / "in.mp4"
    ffmpeg("-i", tmp_path / "cover.png", *LAVFI, "-map", "0", "-map", "1", *X264, "-c:v:0", "png",
           "-disposition:v:0", "attached_pic", source)
    assert probe(source).width == 64
    out = tmp_path / f"out{suffix}"
    assert upscale_like(source, out).dropped == []
    with av.open(str(out)) as c, av.open(str(source)) as src:
        covers = [s for s in c.streams.video if s.disposition & D.attached_pic]
        assert len(covers) == 1 and covers[0].codec_context.name == "png"
        assert [s.width for s in c.streams.video if not s.disposition & D.attached_pic] == [64]
        picture = next(bytes(p) for p in c.demux(covers[0]) if p.size)
        cover = next(s for s in src.streams.video if s.disposition & D.attached_pic)
        assert picture == next(bytes(p) for p in src.demux(cover) if p.size)  # the same picture, bit for bit


@pytest.mark.parametrize("suffix", [".mov", ".mp4", ".mkv"])
def test_a_cameras_timecode_is_kept(tmp_path, suffix):
    source = tmp_path / "cam.mov"
    ffmpeg(*LAVFI, *X264, "-timecode", "01:02:03:04", source)
    out = tmp_path / f"out{suffix}"
    upscale_like(source, out)
    with av.open(str(out)) as c:
        found = {v for s in c.streams for k, v in s.metadata.items() if k.lower() == "timecode"}
        assert found == {"01:02:03:04"}  # was dropped
        if suffix != ".mkv":  # a tmcd track, as the camera wrote it
            assert any(s.type == "data" for s in c.streams)


def test_a_second_video_stream_is_copied_as_it_is(tmp_path):
    source = tmp_path / "angles.mp4"
    ffmpeg(*LAVFI, "-f", "lavfi", "-i", "testsrc2=s=32x24:d=1:r=24", "-map", "0", "-map", "1", *X264, source)
    out = tmp_path / "out.mp4"
    upscale_like(source, out)
    with av.open(str(out)) as c, av.open(str(source)) as src:
        assert [(s.width, s.height) for s in c.streams.video] == [(64, 48), (32, 24)]
        assert [bytes(p) for p in c.demux(video=1) if p.size] == [bytes(p) for p in src.demux(video=1) if p.size]


def test_a_phone_clip_trimmed_by_its_edit_list_is_read_as_ffmpeg_reads_it(tmp_path):
    whole = tmp_path / "whole.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x48:d=2:r=24", "-f", "lavfi", "-i", "sine=d=2", *X264, "-g", "48",
           "-c:a", "aac", whole)
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", whole, "-c", "copy", rotated)
    phone = tmp_path / "phone.mp4"
    ffmpeg("-ss", "0.5", "-i", rotated, "-c", "copy", phone)  # an edit list hides the GOP's first 12 frames
    with av.open(str(phone)) as c:
        theirs = [(f.pts, f.time_base) for f in c.decode(video=0)]
        assert c.streams.video[0].frames == 48 and len(theirs) == 36
    info = probe(phone)
    assert info.frames == 36 and (info.width, info.height) == (48, 64)
    out = tmp_path / "out.mp4"
    upscale_like(phone, out)  # was "the video stops after 36 of 48 frames ... truncated or corrupt"
    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
        assert [f.pts * f.time_base for f in frames] == [p * tb for p, tb in theirs]  # its frames, its start time
        assert (frames[0].width, frames[0].height) == (48, 64)  # displayed upright, as the phone meant it
        assert frames[0].rotation == 0


def test_vsrts_own_tags_go_beside_the_users():
    assert container_tags({"COMMENT": "mine", "title": "T", "encoder": "Lavf"}, {"comment": TAG}) == \
        {"title": "T", "comment": f"mine\n{TAG}"}
    assert container_tags({}, {"comment": TAG}) == {"comment": TAG}
    assert container_tags({"comment": TAG}, {"comment": TAG}) == {"comment": TAG}  # not twice
    assert own_line(f"mine\n{TAG}") == TAG and own_line("mine") is None and own_line(None) is None


@pytest.mark.parametrize("chunks", [None, 2])
def test_the_pipeline_and_the_chunk_stitch_carry_the_same(tiny_model, movie, tmp_path, chunks):
    """Through `vsrt upscale` (and `--chunks 2`, whose stitch carries the source's streams)."""
    import torch

    from vsrt_cli.engine.pipeline import Notice, Schedule, UpscaleJob, upscale
    from vsrt_cli.jobs.chunked import upscale_chunks

    out = tmp_path / "out.mp4"
    job = UpscaleJob(source=movie, output=out, schedule=Schedule(tile=0, overlap=0, window=5, stride=5),
                     device=torch.device("cpu"), precision="fp32", encode=EncodeSettings(preset="ultrafast"),
                     metadata={"comment": TAG})
    events = list(upscale(tiny_model, job) if chunks is None else upscale_chunks(tiny_model, job, chunks))
    said = [e.message for e in events if isinstance(e, Notice)]
    assert any("attachment tiny.ttf" in line and "mp4 holds no attachments" in line for line in said)
    assert sum("subtitle stream" in line for line in said) == 2  # ASS and SRT: no .mp4 codec for them
    assert streams(out) == [("video", "jpn", None, D.default), ("audio", "eng", "English", D.default),
                            ("audio", "fre", "Commentary", D.comment),
                            ("data", "eng", None, 0)]  # the last: the MP4 muxer's chapter track
    assert chapters(out) == [(0.0, 0.3, "Opening"), (0.3, 0.6, "Middle"), (0.6, 1.0, "End")]
    assert tags(out)["comment"].splitlines() == ["my own words", TAG] and tags(out)["title"] == "My Film"
