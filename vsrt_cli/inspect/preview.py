"""``vsrt preview``: try settings on a short excerpt before the long run.

The excerpt (default 2 s from the middle, optionally cropped) is upscaled once per candidate
through the ordinary pipeline; each run's speed, peak memory and output bytes are scaled up to
the whole clip (frames x area) for an estimate of its time and size, and its flicker is measured
as the warping error along the motion of the bicubic upscale of the same excerpt (the reference
every candidate shares; see :mod:`vsrt_cli.engine.temporal`). A side-by-side of bicubic and every
candidate is written with :mod:`vsrt_cli.inspect.compare`. Work yields events; the CLI draws them.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vsrt_cli.inspect.compare import CompareDone, compare
from vsrt_cli.errors import ConfigError
from vsrt_cli.inspect.evaluate import score_clips
from vsrt_cli.io.excerpt import Crop, Excerpt, write_excerpt
from vsrt_cli.io.outputs import check_output
from vsrt_cli.model.vsrt import SCALE, VSRT
from vsrt_cli.engine.pipeline import Finished, Progress, UpscaleJob, upscale

# --try keys -> the `vsrt upscale` option they set
TRY_KEYS = ("model", "weights", "precision", "device", "tile", "tile-overlap", "window", "window-stride", "batch",
            "scale", "width", "height", "size", "resize-filter", "restore")


def parse_try(spec: str) -> dict[str, str]:
    """``model=vsrt-cpu-small,tile=64`` -> ``{"model": "vsrt-cpu-small", "tile": "64"}``."""
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().lstrip("-").replace("_", "-")
        if not sep or key not in TRY_KEYS:
            raise ConfigError(f"--try {spec!r}: {part!r} is not KEY=VALUE with KEY one of {', '.join(TRY_KEYS)}")
        options[key] = value.strip()
    return options


@dataclass(frozen=True)
class Candidate:
    label: str
    model: VSRT
    job: UpscaleJob  # its source and output are replaced by the excerpt's


@dataclass(frozen=True)
class CandidateStarted:
    number: int
    label: str
    frames: int


@dataclass(frozen=True)
class CandidateResult:
    label: str
    frames: int
    seconds: float
    fps: float
    peak_memory: int  # bytes: CUDA memory allocated, or the process's resident memory on CPU
    memory_kind: str  # "GPU" or "RSS"
    eta_seconds: float  # for the whole clip (frames x area of the excerpt scaled up)
    size_bytes: float  # of the whole clip's output, likewise
    warp_error: float | None = None


@dataclass(frozen=True)
class PreviewDone:
    results: tuple[CandidateResult, ...]
    reference_warp_error: float | None  # the bicubic upscale's own
    excerpt: Excerpt
    whole_frames: int
    output: Path


class PeakMemory:
    """Peak memory during a block: CUDA's allocator peak, or the resident set size of this
    process sampled every 20 ms on CPU (/proc; 0 where there is none)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def kind(self) -> str:
        return "GPU" if self.device.type == "cuda" else "RSS"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, name="vsrt-memory", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, _rss())
            if self._stop.wait(0.02):
                return

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()


def _rss() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def bicubic(image: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` uint8/uint16 -> x4 bicubic, same dtype (the reference every candidate beats)."""
    peak = 65535.0 if image.dtype == np.uint16 else 255.0
    tensor = torch.from_numpy(image.astype(np.float32) / peak).permute(2, 0, 1)[None]
    up = F.interpolate(tensor, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp_(0, 1)
    return (up[0].permute(1, 2, 0).numpy() * peak).round().astype(image.dtype)


def preview(
    source: Path, output: Path, candidates: list[Candidate], *, start: float | None = None, seconds: float = 2.0,
    crop: Crop | None = None, temporal: bool = True, overwrite: bool = False,
) -> Iterator[CandidateStarted | Progress | CandidateResult | PreviewDone]:
    """Upscale an excerpt of ``source`` with every candidate; write the side-by-side to ``output``
    (a video, or a PNG of the middle frame when it ends in ``.png``)."""
    if seconds <= 0:
        raise ConfigError(f"--seconds {seconds}: must be positive")
    if not candidates:
        raise ConfigError("no candidate settings to try")
    check_output(output, source, overwrite=overwrite, folder=False)  # before the work, not after
    with tempfile.TemporaryDirectory(prefix="vsrt-preview-") as tmp:
        work = Path(tmp)
        lr = write_excerpt(source, work / "excerpt.mkv", start=start, seconds=seconds, crop=crop)
        reference = write_excerpt(source, work / "bicubic.mkv", start=lr.start, seconds=seconds, crop=crop, transform=bicubic)
        info = lr.info
        whole = info.frames or lr.frames
        scale = whole / lr.frames * (info.width * info.height) / (lr.width * lr.height)
        outputs, results = [], []
        for number, cand in enumerate(candidates, 1):
            yield CandidateStarted(number, cand.label, lr.frames)
            out = work / f"candidate{number}.mkv"
            job = replace(cand.job, source=lr.path, output=out, overwrite=True, frames_out=False,
                          encode=replace(cand.job.encode, copy_streams=False))
            finished = None
            with PeakMemory(job.device) as memory, contextlib.closing(upscale(cand.model, job)) as events:
                for event in events:
                    if isinstance(event, Progress):
                        yield event
                    elif isinstance(event, Finished):
                        finished = event
            assert finished is not None
            fps = finished.frames / finished.seconds if finished.seconds > 0 else float("inf")
            results.append(CandidateResult(cand.label, finished.frames, finished.seconds, fps, memory.peak, memory.kind,
                                           finished.seconds * scale, finished.bytes * scale))
            outputs.append(out)
        reference_error = None
        if temporal and lr.frames > 1:
            from vsrt_cli.engine.temporal import ReferenceFlow

            scores = score_clips(outputs, reference.path, flow=ReferenceFlow(max_side=256), fidelity=False)
            results = [replace(r, warp_error=s.warp_error) for r, s in zip(results, scores)]
            reference_error = scores[0].warp_error_truth
        for r in results:
            yield r
        labels = ["bicubic", *(c.label for c in candidates)]
        frame = lr.frames // 2 if output.suffix.lower() == ".png" else None
        done = None
        for event in compare([reference.path, *outputs], output, mode="side", labels=labels, frame=frame, overwrite=overwrite):
            if isinstance(event, CompareDone):
                done = event
        assert done is not None
        yield PreviewDone(tuple(results), reference_error, lr, whole, output)
