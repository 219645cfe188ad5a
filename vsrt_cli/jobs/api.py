"""The Python entry point: ``from vsrt_cli import upscale``.

``upscale(input, output, **options)`` takes ``vsrt upscale``'s options as keyword arguments
(``--tile-overlap`` is ``tile_overlap``, ``--no-sidecar`` is ``sidecar=False``), runs the same
job the command runs (``vsrt upscale`` calls this very function), and returns the record
written beside the output (``OUT.vsrt.json``, :mod:`vsrt_cli.jobs.provenance`). Errors are the
project's own (:class:`~vsrt_cli.errors.VsrtError` and its subclasses); progress goes to
``on_event`` (the pipeline's ``Started``, ``Progress``, ``Notice`` and ``Finished``), never to
the terminal::

    from vsrt_cli import upscale
    record = upscale("in.mp4", "out.mp4", height=1080, restore=0.5, start="0:10", duration=5,
                     on_event=print)
    record["size"]["made"]  # [1440, 1080]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

from vsrt_cli.engine.pipeline import Event
from vsrt_cli.errors import ConfigError

__all__ = ["upscale"]


def upscale(
    input: str | PathLike[str], output: str | PathLike[str], *,
    model: str | None = None, weights: str | PathLike[str] | None = None, device: str = "auto",
    precision: str = "auto", tile: int | None = None, tile_overlap: int | None = None, window: int | None = None,
    window_stride: int | None = None, batch: int | None = None, codec: str | None = None, crf: int = 16,
    preset: str = "medium", pix_fmt: str | None = None, fps: str | float = "25", no_audio: bool = False,
    skip_bad_frames: bool = False, overwrite: bool = False, deinterlace: str = "frame",
    scale: float | None = None, width: int | None = None, height: int | None = None, size: str | None = None,
    stretch: bool = False, resize_filter: str = "bicubic", restore: str | float = "auto",
    start: str | float | None = None, duration: str | float | None = None, end: str | float | None = None,
    chunks: int = 1, sidecar: bool = True, quiet: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> dict[str, Any]:
    """Upscale ``input`` (a video file or a folder of frames) into ``output``; returns the
    record of how it was made (written beside the output unless ``sidecar`` is False).
    ``on_event`` receives every event, the notices about the choices made included (none
    with ``quiet``)."""
    from vsrt_cli.jobs.build import build_job
    from vsrt_cli.jobs.provenance import identify_model, recording, tag_before_run
    from vsrt_cli.zoo.registry import input_kind

    tell = on_event or (lambda event: None)
    if chunks < 1:
        raise ConfigError(f"--chunks {chunks}: must be at least 1")
    source, target = Path(input), Path(output)
    chosen = Path(weights) if weights is not None else None
    net, job = build_job(
        source=source, output=target, model=model, weights=chosen, device=device, precision=precision,
        tile=tile, tile_overlap=tile_overlap, window=window, window_stride=window_stride, batch=batch,
        codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, fps=str(fps), no_audio=no_audio,
        overwrite=overwrite, skip_bad_frames=skip_bad_frames, quiet=quiet, say=tell, deinterlace=deinterlace,
        scale=scale, width=width, height=height, size=size, stretch=stretch, resize_filter=resize_filter, restore=restore,
        start=start, duration=duration, end=end,
    )
    model_id = identify_model(model, chosen, input_kind(source))
    if not job.writes_frames:  # the container's own line, kept even without the sidecar (`vsrt info`)
        job = replace(job, metadata={"comment": tag_before_run(job, model_id)})
    if chunks != 1:
        from vsrt_cli.jobs.chunked import upscale_chunks

        work = upscale_chunks(net, job, chunks)
    else:
        from vsrt_cli.engine.pipeline import upscale as run_upscale

        work = run_upscale(net, job)
    records: list[dict[str, Any]] = []
    with contextlib.closing(recording(work, job, model_id, write=sidecar, on_record=records.append)) as events:
        for event in events:
            tell(event)
    if not records:  # a --chunks rerun that found its output complete: its record is the one beside it
        from vsrt_cli.io.sidecar import read_sidecar

        return read_sidecar(target) or {}
    return records[0]
