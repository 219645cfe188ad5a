"""Run a frame writer on its own thread behind a bounded queue, so encoding overlaps compute."""

from __future__ import annotations

import queue
import threading
from typing import Protocol

import numpy as np

from vsrt_cli.io.planes import Planes


class FrameSink(Protocol):
    def __enter__(self) -> object: ...
    def __exit__(self, exc_type: object, exc: object, tb: object) -> None: ...
    def write(self, image: np.ndarray | Planes, pts: int | None) -> None: ...


_END = object()


class BackgroundWriter:
    """Wraps a :class:`FrameSink` (a context manager with ``write(image, pts)``).

    ``write`` only queues (blocking when ``depth`` frames wait); the thread encodes. An error
    on the thread is raised by the next ``write`` or on exit; on exit with an error the queue is
    dropped and the sink aborts (its temporary output is removed).
    """

    def __init__(self, sink: FrameSink, depth: int = 4) -> None:
        self.sink = sink
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vsrt-encode", daemon=True)

    def __enter__(self) -> BackgroundWriter:
        self.sink.__enter__()
        try:  # Ctrl-C can land while the thread starts; the sink must still abort (no partial file)
            self._thread.start()
        except BaseException as exc:
            self.sink.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END or self._abort.is_set():
                return
            try:
                image, pts = item  # type: ignore[misc]
                self.sink.write(image, pts)
            except BaseException as exc:
                self._error = exc
                self._abort.set()
                return

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def write(self, image: np.ndarray | Planes, pts: int | None) -> None:
        while True:
            self._raise_pending()
            if self._abort.is_set():
                raise RuntimeError("the encoder thread stopped")
            try:
                self._queue.put((image, pts), timeout=0.1)
                return
            except queue.Full:
                continue

    def _stop(self, drain: bool) -> None:
        if not drain:
            self._abort.set()
            while True:  # make room so the thread sees the end marker
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
        while self._thread.is_alive():
            try:
                self._queue.put(_END, timeout=0.1)
                break
            except queue.Full:
                if self._abort.is_set():
                    try:
                        self._queue.get_nowait()
                    except queue.Empty:
                        pass
        self._thread.join()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._stop(drain=True)
            if self._error is not None:
                error, self._error = self._error, None
                self.sink.__exit__(type(error), error, None)
                raise error
            self.sink.__exit__(None, None, None)
        else:
            self._stop(drain=False)
            self.sink.__exit__(exc_type, exc, tb)
