"""--start/--duration/--end (vsrt_cli/io/span.py): one time rule, the frames the span shows, from
the keyframe before it, and the audio cut with them, all starting at 0."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.conftest import NO_FLOW
from tests.test_chunked import LOSSLESS, clip_with_audio, decoded
from vsrt_cli.errors import ConfigError, InputError
from vsrt_cli.engine.pipeline import Finished, Schedule, Started, UpscaleJob, upscale
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.io.span import Span, clip_frames, parse_time, shown_range
from vsrt_cli.jobs.chunked import job_key, upscale_chunks
from vsrt_cli.model import build_model

ONE = Schedule(tile=0, overlap=0, window=1, stride=1, batch=1)  # each output frame from its own input


@pytest.mark.parametrize("text,seconds", [
    ("12.5", 12.5), (3, 3.0), ("0", 0.0), ("02:03.5", 123.5), ("1:02:03.250", 3723.25), ("00:00:00.040", 0.04),
])
def test_times_are_seconds_or_a_clock(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["ten", "-1", "1:60", "1:2:3:4", "nan", "inf"])
def test_a_bad_time_is_one_line(text):
    with pytest.raises(ConfigError, match="--start") as caught:
        parse_time(text)
    assert "\n" not in str(caught.value)


def test_spans_from_start_duration_or_end():
    assert Span.parse() is None
    assert Span.parse("0.5", "1") == Span(0.5, 1.5)
    assert Span.parse("0:01", end="0:03") == Span(1.0, 3.0)
    assert Span.parse(duration="2") == Span(0.0, 2.0)
    assert Span.parse("4") == Span(4.0, None)
    with pytest.raises(ConfigError, match="not both"):
        Span.parse("1", "1", "3")
    with pytest.raises(ConfigError, match="after --start"):
        Span.parse("3", end="2")
    with pytest.raises(ConfigError, match="positive"):
        Span.parse("1", "0")


@dataclass(frozen=True)
class Fake:
    index: int
    pts: int | None
    time_base: Fraction = Fraction(1, 24)

    @property
    def time(self):
        return None if self.pts is None else float(self.pts * self.time_base)


def test_clip_frames_keeps_the_shown_frames_numbered_from_0():
    frames = [Fake(i, 100 + i) for i in range(48)]  # the stream starts at 100/24 s
    kept = list(clip_frames(frames, Span(0.5, 1.5), origin=100 / 24))
    assert [f.pts for f in kept] == list(range(112, 136)) and [f.index for f in kept] == list(range(24))
    assert list(clip_frames(frames, Span(5.0, None), origin=100 / 24)) == []


def test_the_reader_starts_at_the_keyframe_before_the_span(tmp_path):
    source = clip_with_audio(tmp_path / "a.mp4", frames=48, gop=10)
    info = probe(source)
    with VideoReader(info, seek=0.5) as reader:
        times = [f.time for f in reader]
    assert times[0] == pytest.approx(10 / 24)  # the keyframe before 0.5 s: 2 frames dropped, not 12 decoded
    assert len(times) == 38 and times[-1] == pytest.approx(47 / 24)  # no truncation alarm at the end


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(NO_FLOW).eval()


def audio(path: Path) -> list[tuple[float, float, bytes]]:
    with av.open(str(path)) as c:
        return [(float(p.pts * p.time_base), float(p.duration * p.time_base), bytes(p))
                for p in c.demux(c.streams.audio[0]) if p.size]


def video_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def test_start_half_a_second_for_one_second_gives_those_frames_and_their_audio(model, tmp_path):
    source = clip_with_audio(tmp_path / "a.mp4", frames=48, gop=10)
    run = lambda out, span: list(upscale(model, UpscaleJob(  # noqa: E731
        source=source, output=out, schedule=ONE, device=torch.device("cpu"), precision="fp32", encode=LOSSLESS, span=span)))
    whole, part = tmp_path / "whole.mp4", tmp_path / "part.mp4"
    run(whole, None)
    events = run(part, Span.parse("0.5", "1"))
    assert isinstance(events[-1], Finished) and events[-1].frames == 24
    # the right frames: those of 0.5 s to 1.5 s, starting at 0
    want, got = decoded(whole)[12:36], decoded(part)
    assert len(got) == 24 and all(np.array_equal(a, b) for a, b in zip(want, got))
    times = video_times(part)
    assert times[0] == 0 and times == pytest.approx([t - 0.5 for t in video_times(whole)[12:36]])
    # the audio: the source's own packets that start in the span, within one packet of it
    src, out = audio(source), audio(part)
    packet = max(d for _, d, _ in src)
    assert [b for *_, b in out] == [b for t, _, b in src if 0.5 - 1e-6 <= t < 1.5 - 1e-6]
    assert 0 <= out[0][0] < packet and abs(out[-1][0] + out[-1][1] - 1.0) <= packet


def test_a_span_past_the_end_is_one_line(model, tmp_path):
    source = clip_with_audio(tmp_path / "a.mp4", frames=12)
    job = UpscaleJob(source=source, output=tmp_path / "o.mp4", schedule=ONE, device=torch.device("cpu"),
                     precision="fp32", span=Span(30.0, None))
    with pytest.raises(InputError, match="no frame in the span 30 s to the end"):
        list(upscale(model, job))


def test_shown_range_is_clip_frames_rule():
    stamps = [100 + i for i in range(48)]
    tb = Fraction(1, 24)
    frames = [Fake(i, pts) for i, pts in enumerate(stamps)]
    for span in (Span(0.5, 1.5), Span(0.0, 0.1), Span(1.9, None), Span(5.0, None), None):
        shown = shown_range(span, stamps, tb, origin=100 / 24)
        kept = frames if span is None else list(clip_frames(frames, span, origin=100 / 24))
        assert [stamps[i] for i in shown] == [f.pts for f in kept]


@pytest.mark.parametrize("window,stride", [(3, 1), (5, 3)])
def test_a_span_in_chunks_equals_the_span_unchunked(model, tmp_path, window, stride):
    """--chunks with --start/--duration: the frames, timestamps and audio of an unchunked run
    of the same span, the seams named from the span's first frame."""
    source = clip_with_audio(tmp_path / "a.mp4", frames=48, gop=10)
    sched = Schedule(tile=0, overlap=0, window=window, stride=stride, batch=2)
    make = lambda out: UpscaleJob(source=source, output=out, schedule=sched, device=torch.device("cpu"),  # noqa: E731
                                  precision="fp32", encode=LOSSLESS, span=Span.parse("0.5", "1"))
    whole, parts = tmp_path / "whole.mp4", tmp_path / "parts.mp4"
    list(upscale(model, make(whole)))
    events = list(upscale_chunks(model, make(parts), 3))
    assert isinstance(events[0], Started) and events[0].total == 24
    assert isinstance(events[-1], Finished) and events[-1].frames == 24 and events[-1].chunk_starts == (8, 16)
    got, want = decoded(parts), decoded(whole)
    assert len(got) == 24 and all(np.array_equal(a, b) for a, b in zip(got, want))
    assert video_times(parts) == video_times(whole) and video_times(parts)[0] == 0
    assert [b for *_, b in audio(parts)] == [b for *_, b in audio(whole)]
    assert [t for t, *_ in audio(parts)] == pytest.approx([t for t, *_ in audio(whole)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "parts.mp4", "whole.mp4"]  # chunk files gone


def test_a_span_past_the_end_in_chunks_is_one_line(model, tmp_path):
    source = clip_with_audio(tmp_path / "a.mp4", frames=12)
    job = UpscaleJob(source=source, output=tmp_path / "o.mp4", schedule=ONE, device=torch.device("cpu"),
                     precision="fp32", span=Span(30.0, None))
    with pytest.raises(InputError, match="no frame in the span 30 s to the end"):
        list(upscale_chunks(model, job, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


def test_the_chunk_key_names_the_span(model, tmp_path):
    source = clip_with_audio(tmp_path / "a.mp4", frames=12)
    job = UpscaleJob(source=source, output=tmp_path / "o.mp4", schedule=ONE, device=torch.device("cpu"), precision="fp32")
    keys = {job_key(model, replace(job, span=span)) for span in (None, Span(0.0, 0.25), Span(0.1, 0.25))}
    assert len(keys) == 3
