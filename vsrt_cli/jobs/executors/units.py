"""What an executor is given and what it yields back: whole clips (``Clip`` -> ``ClipStarted``,
``ClipProgress`` or the pipeline's own events, ``ClipFinished``) and chunks of long clips
(``ChunkTask`` -> ``ChunkProgress``, ``ChunkFinished``). Plain frozen dataclasses, picklable,
so the same units travel to Ray workers; :mod:`vsrt_cli.jobs.batch` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from vsrt_cli.jobs.chunked import ChunkPlan
    from vsrt_cli.jobs.chunks import Chunk

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Clip:
    """One input (a video file or a folder of frames) and where its output goes."""

    source: Path
    output: Path
    name: str  # the path relative to the input folder, for tables and reports
    frames: int | None = None  # as far as a quick probe can tell


@dataclass(frozen=True)
class ClipResult:
    clip: Clip
    status: Status
    reason: str = ""
    frames: int = 0
    seconds: float = 0.0
    repaired: int = 0
    detail: str = ""  # the traceback of an unexpected error (shown with --debug)
    sidecar: str = ""  # the output's record of how it was made (OUT.vsrt.json), when one was written


@dataclass(frozen=True)
class ClipStarted:
    number: int  # 1-based
    clip: Clip


@dataclass(frozen=True)
class ClipProgress:
    """Frames done of one clip, when several run at once (an executor's workers)."""

    clip: Clip
    done: int
    total: int | None


@dataclass(frozen=True)
class ClipFinished:
    result: ClipResult


@dataclass(frozen=True)
class ChunkTask:
    """Chunk ``number`` of ``clip``, cut by ``plan`` (see :mod:`vsrt_cli.jobs.chunked`). The driver
    stitches the clip once every chunk of it is finished."""

    clip: Clip
    plan: ChunkPlan
    number: int

    @property
    def chunk(self) -> Chunk:
        return self.plan.chunks[self.number]

    @property
    def path(self) -> Path:
        """The chunk's file (appears only when complete)."""
        return self.plan.paths[self.number]

    @property
    def name(self) -> str:
        return f"{self.clip.name} chunk {self.number + 1}/{len(self.plan.chunks)}"


@dataclass(frozen=True)
class ChunkProgress:
    task: ChunkTask
    done: int  # frames of this chunk written so far


@dataclass(frozen=True)
class ChunkFinished:
    """``error`` empty: the chunk's file is in place. ``worker``: ``HOST-PID`` that ran it."""

    task: ChunkTask
    error: str = ""
    detail: str = ""  # the traceback of an unexpected error (shown with --debug)
    seconds: float = 0.0
    worker: str = ""
    ran: dict | None = None  # what the worker ran it with (jobs.provenance.ran_with): its card, precision, tiles


Unit = Clip | ChunkTask
