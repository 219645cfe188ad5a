"""The encode thread: order kept, errors surface, aborts reach the sink."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vsrt_cli.io.background import BackgroundWriter


class Sink:
    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.written: list[int | None] = []
        self.threads: set[str] = set()
        self.exited_with: object = "not exited"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.exited_with = exc_type

    def write(self, image, pts):
        self.threads.add(threading.current_thread().name)
        if pts == self.fail_at:
            raise OSError("disk full")
        self.written.append(pts)


def test_frames_are_written_in_order_on_another_thread():
    sink = Sink()
    with BackgroundWriter(sink, depth=2) as writer:
        for i in range(20):
            writer.write(np.zeros((2, 2, 3), np.uint8), i)
    assert sink.written == list(range(20))
    assert sink.threads == {"vsrt-encode"}
    assert sink.exited_with is None


def test_an_encoder_error_surfaces_and_aborts_the_sink():
    sink = Sink(fail_at=3)
    with pytest.raises(OSError, match="disk full"):
        with BackgroundWriter(sink, depth=1) as writer:
            for i in range(50):
                writer.write(np.zeros((2, 2, 3), np.uint8), i)
    assert sink.written == [0, 1, 2]
    assert sink.exited_with is OSError


def test_an_error_in_the_caller_aborts_without_draining():
    sink = Sink()
    with pytest.raises(KeyboardInterrupt):
        with BackgroundWriter(sink, depth=8) as writer:
            writer.write(np.zeros((2, 2, 3), np.uint8), 0)
            raise KeyboardInterrupt
    assert sink.exited_with is KeyboardInterrupt


def test_an_interrupt_while_the_thread_starts_still_aborts_the_sink(monkeypatch):
    # The batch SIGINT test once left a partial output: Ctrl-C landed between the sink's
    # __enter__ (the file exists) and the end of BackgroundWriter.__enter__.
    sink = Sink()
    writer = BackgroundWriter(sink)

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(writer._thread, "start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with writer:
            pass
    assert sink.exited_with is KeyboardInterrupt
