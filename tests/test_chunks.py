"""Chunk planning alone: every frame owned once, by the same model call as in an unchunked plan."""

from __future__ import annotations

import pytest

from vsrt_cli.jobs.chunks import chunks_for_seconds, plan_chunks, split
from vsrt_cli.engine.schedule import plan_windows


def producer(windows, index):
    """The (frames, position) of the call that produces output ``index``."""
    for win in windows:
        for pos, out in win.outputs:
            if out == index:
                return win.frames, pos
    raise AssertionError(index)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 12, 31])
@pytest.mark.parametrize("count", [1, 2, 3, 5, 40])
@pytest.mark.parametrize("window,stride", [(5, 1), (5, 3), (5, 5), (3, 1), (7, 2), (1, 1), (4, 4)])
def test_chunks_cover_every_frame_once_with_the_unchunked_calls(n, count, window, stride):
    whole = plan_windows(n, window, stride)
    plan = plan_chunks(n, count, window, stride)
    assert len(plan) == min(n, count)
    assert [c.number for c in plan] == list(range(len(plan))) and all(c.count == len(plan) for c in plan)
    assert plan[0].start == 0 and plan[-1].end == n
    assert all(a.end == b.start and a.frames >= 1 for a, b in zip(plan, plan[1:]))
    assert max(c.frames for c in plan) - min(c.frames for c in plan) <= 1
    for chunk in plan:
        for index in range(chunk.start, chunk.end):  # the same call, the same position, global indices
            assert producer(chunk.windows, index) == producer(whole, index)
        assert all(win in whole for win in chunk.windows)
        used = {i for win in chunk.windows for i in win.frames}
        assert chunk.decode_from == min(used) and chunk.decode_to == max(used) + 1
        assert 0 <= chunk.decode_from <= chunk.start and chunk.end <= chunk.decode_to <= n
        # context: window // 2 for the centred schedule away from the clip ends (where the
        # reflection circle reaches up to a window in), at most a window otherwise
        inner = stride == 1 and chunk.start >= window and chunk.end <= n - window
        reach = window // 2 if inner else window
        assert chunk.decode_from >= chunk.start - reach and chunk.decode_to <= chunk.end + reach


def test_context_reaches_across_boundaries_only_where_needed():
    plan = plan_chunks(30, 3, 5, 1)
    assert [(c.start, c.end, c.decode_from, c.decode_to) for c in plan] == [
        (0, 10, 0, 12), (10, 20, 8, 22), (20, 30, 18, 30)]
    # the clip ends still follow the official reflection circle, with global indices
    assert plan[0].windows[0].frames == (4, 3, 0, 1, 2)
    assert plan[-1].windows[-1].frames == (27, 28, 29, 26, 25)


def test_split_and_seconds():
    assert split(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert split(2, 5) == [(0, 1), (1, 2)]
    assert chunks_for_seconds(250, 25, 4) == 3 and chunks_for_seconds(10, 25, 60) == 1
    with pytest.raises(ValueError):
        split(0, 3)
    with pytest.raises(ValueError):
        split(3, 0)


@pytest.mark.parametrize("first", [0, 1, 17])
@pytest.mark.parametrize("window,stride", [(5, 1), (5, 3)])
def test_a_span_plans_the_spans_calls_at_source_indices(first, window, stride):
    """A span's frames [first, first + n): the calls of an unchunked run of the span (its ends
    reflect at the span's ends), every index moved to the source's."""
    n = 12
    local, moved = plan_chunks(n, 3, window, stride), plan_chunks(n, 3, window, stride, first=first)
    for a, b in zip(local, moved):
        assert (b.start, b.end, b.decode_from, b.decode_to) == (a.start + first, a.end + first, a.decode_from + first,
                                                                 a.decode_to + first)
        assert [w.frames for w in b.windows] == [tuple(i + first for i in w.frames) for w in a.windows]
        assert [w.outputs for w in b.windows] == [tuple((p, i + first) for p, i in w.outputs) for w in a.windows]
    assert min(i for c in moved for w in c.windows for i in w.frames) == first  # nothing before the span is read
    assert max(i for c in moved for w in c.windows for i in w.frames) == first + n - 1
