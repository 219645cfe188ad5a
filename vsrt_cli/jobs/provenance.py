"""How an output was made: the record written beside it (``OUT.vsrt.json``) and its one-line tag.

The record is built from the frozen job the CLI made, the model's identity and the pipeline's
own events (frame count, timings); :mod:`vsrt_cli.io.sidecar` writes and reads it. The input is
identified by a fast fingerprint, not a full hash: its size plus the sha256 of a few sampled
blocks, so an hours-long clip costs a millisecond-scale read, and any truncation, re-encode or
edit of the sampled regions changes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vsrt_cli import __version__
from vsrt_cli.zoo.download import sha256_file
from vsrt_cli.io.sidecar import TAG_PREFIX, sidecar_path, write_sidecar
from vsrt_cli.engine.pipeline import Event, Finished, Progress, UpscaleJob

if TYPE_CHECKING:
    from vsrt_cli.zoo.registry import InputKind

BLOCK = 64 * 1024
SAMPLES = 16
RECORD_FORMAT = "vsrt-record/1"


@dataclass(frozen=True)
class ModelId:
    """Which weights made an output: a registry name (or the weights file's stem) and its sha256."""

    name: str
    sha256: str | None
    file: str | None = None


file_sha256 = sha256_file  # the one hashing of whole files (vsrt_cli/zoo/download.py)


def identify_model(model_name: str | None, weights: Path | None, kind: InputKind = "frames") -> ModelId:
    """The identity of the model ``--model``/``--weights`` select for ``kind`` of input (as the
    CLI resolves them): a given file is hashed; a registry model's sha256 comes from its
    manifest entry."""
    from vsrt_cli.zoo.registry import default_name, get_entry, local_path

    if weights is not None:
        return ModelId(model_name or Path(weights).stem, file_sha256(Path(weights)), str(weights))
    name = model_name or default_name(kind)
    if name is None:
        return ModelId("unknown", None)
    entry = get_entry(name)
    path = local_path(entry)
    return ModelId(name, entry.sha256 or (file_sha256(path) if path else None), str(path) if path else None)


def fingerprint(path: Path) -> dict[str, Any]:
    """``{"bytes", "sha256", "method"}`` of a file (size + ``SAMPLES`` evenly spaced 64 KiB
    blocks, first and last included) or of a frame folder (every file's name and size, and the
    sampled blocks of its first and last frame)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        total = 0
        for f in files:
            size = f.stat().st_size
            total += size
            digest.update(f"{f.name}\0{size}\n".encode())
        for f in dict.fromkeys(files[:1] + files[-1:]):
            digest.update(_sampled(f).encode())
        return {"bytes": total, "files": len(files), "sha256": digest.hexdigest(),
                "method": "names and sizes of every file + sampled blocks of the first and last"}
    return {"bytes": path.stat().st_size, "sha256": _sampled(path),
            "method": f"size + sha256 of {SAMPLES} evenly spaced {BLOCK // 1024} KiB blocks"}


def _sampled(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        if size <= SAMPLES * BLOCK:
            digest.update(handle.read())
        else:
            for k in range(SAMPLES):
                handle.seek((size - BLOCK) * k // (SAMPLES - 1))
                digest.update(handle.read(BLOCK))
    return digest.hexdigest()


def device_facts(device: torch.device) -> dict[str, Any]:
    """Type, model name, torch version and threads of the device that ran the model."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name()
    return {"type": device.type, "name": name, "torch": torch.__version__, "threads": torch.get_num_threads()}


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def ran_with(job: UpscaleJob) -> dict[str, Any]:
    """What a worker ran a chunk with, for the driver's record of the stitched clip: in Ray mode
    each worker resolves its own card, precision and tiles, which the driver's job does not hold."""
    return {"device": device_facts(job.device), "precision": job.precision,
            "tile": job.schedule.tile, "batch": job.schedule.batch}


def job_options(job: UpscaleJob) -> dict[str, Any]:
    """Every setting of the job that shapes the output, as plain JSON values."""
    options: dict[str, Any] = {
        **{k: v for k, v in dataclasses.asdict(job.schedule).items()},
        **{k: v for k, v in dataclasses.asdict(job.encode).items()},
        "precision": job.precision,
        "device": str(job.device),
        "skip_bad_frames": job.skip_bad_frames,
        "deinterlace": job.deinterlace,
        "overwrite": job.overwrite,
        "frames_out": job.writes_frames,
    }
    if job.source.is_dir():
        options["fps"] = str(job.fps)
    options["restore"] = "auto" if job.restore is None else job.restore
    if job.span is not None:
        options["span"] = {"start_s": job.span.start, "end_s": job.span.end}
    return options


def size_asked(job: UpscaleJob) -> str:
    """The output size as the options asked for it (``x4``: the model's own)."""
    return "x4" if job.size is None else job.size.describe()


def build_record(
    job: UpscaleJob, model: ModelId, finished: Finished, *, first_frame_s: float | None,
    input_fingerprint: dict[str, Any], ran: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole record of one finished upscale (see :func:`recording`). ``ran``: what each of
    its chunks ran with (:func:`ran_with`, from the workers), when they are known for all: the
    record's device, precision and tiles are theirs, not the driver's; ``workers`` lists them
    when the chunks ran with different ones."""
    fps = finished.frames / finished.seconds if finished.seconds > 0 else None
    record: dict[str, Any] = {
        "vsrt": __version__,
        "format": RECORD_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": str(job.source),
        "output": str(job.output),
        "input": input_fingerprint,
        "model": dataclasses.asdict(model),
        "options": job_options(job),
        "device": device_facts(job.device),
        "precision": job.precision,
        "frames": finished.frames,
        "repaired_frames": finished.repaired,
        "bytes": finished.bytes,
        "size": {"asked": size_asked(job), "made": [finished.width, finished.height] if finished.width else None,
                 "filter": job.size.filter if job.size is not None else None},
        "timings": {
            "total_s": round(finished.seconds, 3),
            "first_frame_s": None if first_frame_s is None else round(first_frame_s, 3),
            "fps": None if fps is None else round(fps, 4),
        },
    }
    if finished.chunk_starts:
        record["chunk_starts"] = list(finished.chunk_starts)
    if ran:
        distinct = [r for i, r in enumerate(ran) if r not in ran[:i]]
        first = distinct[0]
        record["device"] = first["device"] if len(distinct) == 1 else {"type": "several", "workers": distinct}
        record["precision"] = first["precision"] if len(distinct) == 1 else "several"
        if len(distinct) == 1:
            record["options"] |= {"precision": first["precision"], "tile": first["tile"], "batch": first["batch"],
                                  "device": first["device"]["type"]}
    record["tag"] = container_tag(record)
    return record


def container_tag(record: dict[str, Any]) -> str:
    """The short line for the container's ``comment``: version, model, hashes, schedule, device
    (and the frame count once known). Needs only what is known before the run, so a writer can
    put it in the header: see :func:`tag_before_run`."""
    o = record["options"]
    sha = record["model"]["sha256"] or "unknown"
    frames = f" frames={record['frames']}" if record.get("frames") is not None else ""
    return (
        f"{TAG_PREFIX}{record['vsrt']} model={record['model']['name']} sha256={sha[:16]} "
        f"input={record['input']['sha256'][:16]} window={o['window']} stride={o['stride']} "
        f"tile={o['tile']} overlap={o['overlap']} device={record['device']['type']} "
        f"precision={record['precision']}{frames}"
    )


def tag_before_run(job: UpscaleJob, model: ModelId) -> str:
    """:func:`container_tag` from the job alone (no frame count), for a container header."""
    return container_tag({"vsrt": __version__, "model": dataclasses.asdict(model), "input": fingerprint(job.source),
                          "options": job_options(job), "device": {"type": job.device.type},
                          "precision": job.precision})


def recording(events: Iterator[Event], job: UpscaleJob, model: ModelId | None, *, write: bool = True,
              on_record: Callable[[dict[str, Any]], None] | None = None,
              ran: list[dict[str, Any]] | None = None) -> Iterator[Event]:
    """Pass the pipeline's events through and, once it has finished, write the output's record
    (and hand it to ``on_record``). With ``model`` None or ``write`` False (``--no-sidecar``) no
    record is written, and a record an earlier run left beside a replaced output is removed, so
    no record ever describes another run.

    Closing this generator closes ``events`` (the partial output is removed as before)."""
    # before the run: the input must not change under us
    input_fingerprint = fingerprint(job.source) if model is not None else {}
    started = time.perf_counter()
    first: float | None = None
    with contextlib.closing(events):
        for event in events:
            if isinstance(event, Progress) and first is None:
                first = time.perf_counter() - started
            if isinstance(event, Finished):
                record = None if model is None else build_record(job, model, event, first_frame_s=first,
                                                                 input_fingerprint=input_fingerprint, ran=ran)
                if record is None or not write:
                    sidecar_path(event.output).unlink(missing_ok=True)
                else:
                    write_sidecar(event.output, record)
                if record is not None and on_record is not None:
                    on_record(record)
            yield event
