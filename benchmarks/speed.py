"""Speed of vsrt against the model, the hardware and the official test protocol.

    python benchmarks/speed.py [--model NAME | --weights PATH] [--frames 12] [--clip car_aerial]
                               [--sections conv,model,pipeline,protocol,precision] [--json FILE]

The LR input is a held-out clip's first ``--frames`` frames, MATLAB-bicubic x1/4 (the BI
protocol, as the paper and benchmarks/quality.py); quality is PSNR-Y (BT.601, 4-pixel border)
of the upscaled frames against the originals. Sections:

conv      a plain dense convolution (64->64, 3x3) in fp32 and bf16: the machine's reachable rate.
model     the model calls alone (the same tiles, windows and flows the pipeline makes, timed inside
          the model) -> LR frames/s and achieved GFLOP/s (FLOPs counted by torch's FlopCounterMode).
pipeline  decode -> schedule -> model -> blend -> encode through `upscale()` from an H.264 file to
          an H.264 file (x264 medium, the default), in the CLI's default precision, against the
          model-only time: ``--repeats`` alternating pairs, median ratio (target <= 1.10).
protocol  the official test protocol run by the same code (64x64 tiles, overlap 32, centred
          windows at stride 1, one tile per call) against the default schedule: time ratio and
          PSNR difference (targets >= 8x, <= 0.15 dB).
precision fp32 against bf16 autocast on the default schedule: time and PSNR.

Every number is printed and, with --json, written with the machine, torch version and date.
Run it on an otherwise idle machine: other busy processes change every number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import read_frames  # noqa: E402

from vsrt_cli.io.reader import Frame  # noqa: E402
from vsrt_cli.inspect.metrics import psnr  # noqa: E402
from vsrt_cli.engine.pipeline import Schedule, TileRunner, UpscaleJob, _run, upscale  # noqa: E402
from vsrt_cli.engine.runtime import default_precision  # noqa: E402
from vsrt_cli.engine.schedule import plan_tiles  # noqa: E402
from vsrt_cli.train.degrade import bi_degrade  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLIPS = {  # held-out clips at their original size (LR = 1/4 of it)
    "car_aerial": SHARED / "data/train/intel_car_aerial/car-detection.mp4",
    "caminandes": SHARED / "data/train/caminandes_excerpt/clip_02_caminandes.mp4",
}


def sync(module: torch.nn.Module) -> None:
    """Wait for the device: CUDA calls return before the work is done, so timing them unsynchronised
    measures kernel launches."""
    param = next(module.parameters(), None)
    if param is not None and param.device.type == "cuda":
        torch.cuda.synchronize(param.device)


class TimedModel(torch.nn.Module):
    """The model with a stopwatch: ``seconds`` is the time spent inside model and flow calls
    (SPyNet or DIS). It is told the quantiser and reads only the flows the model reads, as the
    runner does with the model itself."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.config = model.config
        self.timed_flow = _Timed(model.flow_net, self) if model.config.use_flow else None
        self.seconds = 0.0

    @property
    def flow_net(self) -> torch.nn.Module | None:
        return self.timed_flow

    def flows_read(self, t: int, keep):
        return self.inner.flows_read(t, keep)

    def forward(self, x, flows=None, *, keep=None, quant=None):
        sync(self.inner)
        start = time.perf_counter()
        try:
            return self.inner(x, flows, keep=keep, quant=quant)
        finally:
            sync(self.inner)
            self.seconds += time.perf_counter() - start


class _Timed(torch.nn.Module):
    def __init__(self, module: torch.nn.Module, clock: TimedModel) -> None:
        super().__init__()
        self.module = module
        self.clock = [clock]  # a list: not a submodule

    def forward(self, *args):
        sync(self.module)
        start = time.perf_counter()
        try:
            return self.module(*args)
        finally:
            sync(self.module)
            self.clock[0].seconds += time.perf_counter() - start


class Keep:
    """A writer that keeps the frames (for scoring) instead of encoding them."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def write(self, image: np.ndarray, pts: int | None) -> None:
        self.frames.append(image)


def as_frames(lr: np.ndarray) -> list[Frame]:
    return [Frame(i, i, 1 / 25, image) for i, image in enumerate(lr)]


def score(frames: list[np.ndarray], gt: np.ndarray) -> float:
    return float(np.mean([psnr(out, ref, y=True, crop_border=4) for out, ref in zip(frames, gt)]))


def compute(model, lr: np.ndarray, schedule: Schedule, precision: str = "fp32") -> dict:
    """The pipeline without decode and encode: windows, tiles, model, blend, on frames in memory."""
    timed = TimedModel(model)
    grid = plan_tiles(lr.shape[1], lr.shape[2], tile=schedule.tile, overlap=schedule.overlap if schedule.tile else 0,
                      multiple=model.config.size_multiple, fixed=model.config.norm == "tile")
    runner = TileRunner(timed, grid, batch=schedule.batch, device=torch.device("cpu"), precision=precision)
    keep = Keep()
    start = time.perf_counter()
    for _ in _run(runner, iter(as_frames(lr)), keep, schedule, False, len(lr)):
        pass
    wall = time.perf_counter() - start
    return {"seconds": wall, "model_seconds": timed.seconds, "tiles": len(grid.origins),
            "tile": list(grid.tile), "frames": keep.frames}


def count_flops(model, lr: np.ndarray, schedule: Schedule) -> float:
    """FLOPs of every model call the schedule makes over ``lr`` (counted, not timed)."""
    with FlopCounterMode(display=False) as counter:
        compute(model, lr, schedule)
    return float(counter.get_total_flops())


def conv_rate(precision: str, size: int = 128, channels: int = 64, repeats: int = 20) -> float:
    """GFLOP/s of a dense 3x3 convolution ``channels -> channels`` on ``[4, C, size, size]``."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).eval()
    x = torch.rand(4, channels, size, size)
    flops = 2 * channels * channels * 9 * size * size * 4
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        for _ in range(3):
            conv(x)
        start = time.perf_counter()
        for _ in range(repeats):
            conv(x)
        seconds = (time.perf_counter() - start) / repeats
    return flops / seconds / 1e9


def write_h264(path: Path, lr: np.ndarray) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = lr.shape[2], lr.shape[1], "yuv444p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for image in lr:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode())
    return path


def default_schedule(model) -> Schedule:
    """What `vsrt upscale` uses without options (see cli.py)."""
    config = model.config
    tile = config.tile if config.norm == "tile" else 128
    return Schedule(tile=tile, overlap=16, window=config.num_frame, stride=max(1, config.num_frame - 2), batch=4)


def official_schedule(model) -> Schedule:
    return Schedule(tile=64, overlap=32, window=model.config.num_frame, stride=1, batch=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--clip", default="car_aerial", choices=sorted(CLIPS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sections", default="conv,model,pipeline,protocol,precision")
    parser.add_argument("--schedule", help="TILE,OVERLAP,WINDOW,STRIDE,BATCH instead of the default")
    parser.add_argument("--candidate", action="append", default=[], metavar="T,O,W,S,B",
                        help="another schedule (tile, overlap, window, stride, batch) for the protocol section")
    parser.add_argument("--repeats", type=int, default=5, help="model-only / pipeline pairs (pipeline section)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from vsrt_cli.engine.runtime import tune_allocator

    tune_allocator()  # as the CLI does
    from vsrt_cli.jobs.build import load_model as _load_model

    model = _load_model(args.model, args.weights).eval()
    sections = set(args.sections.split(","))
    gt = read_frames(CLIPS[args.clip], args.frames)
    lr = bi_degrade(gt)
    sched = default_schedule(model)
    if args.schedule:
        sched = Schedule(*map(int, args.schedule.split(",")))
    report: dict = {
        "date": datetime.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores", "torch": torch.__version__, "threads": args.threads,
        "model": args.model or "default", "clip": args.clip, "frames": len(lr),
        "lr_size": f"{lr.shape[2]}x{lr.shape[1]}", "schedule": sched.__dict__,
    }

    def show(key: str, value: object) -> None:
        report[key] = value
        print(f"{key}: {json.dumps(value)}", flush=True)

    for precision in ("fp32", "bf16"):  # warm-up: oneDNN builds its kernels on first use
        compute(model, lr[:2], sched, precision)
        compute(model, lr[:2], official_schedule(model), precision)
    if "conv" in sections:
        show("conv_gflops", {p: round(conv_rate(p), 1) for p in ("fp32", "bf16")})
    if "model" in sections:
        run = compute(model, lr, sched)
        flops = count_flops(model, lr, sched)
        show("model_only", {
            "seconds": round(run["model_seconds"], 2), "lr_fps": round(len(lr) / run["model_seconds"], 3),
            "gflop_per_frame": round(flops / len(lr) / 1e9, 2), "gflops": round(flops / run["model_seconds"] / 1e9, 1),
            "tiles_per_window": run["tiles"], "tile": run["tile"],
            "compute_path_seconds": round(run["seconds"], 2), "psnr_y": round(score(run["frames"], gt), 3),
        })
    if "pipeline" in sections:
        # This VM's speed drifts by 10% and more between runs, so model-only and pipeline runs
        # alternate and the ratio is taken pair by pair (median over --repeats pairs).
        precision = default_precision(torch.device("cpu"))
        pairs = []
        with tempfile.TemporaryDirectory() as tmp:
            source = write_h264(Path(tmp) / "lr.mp4", lr)
            for i in range(args.repeats):
                only = compute(model, lr, sched, precision)["model_seconds"]
                timed = TimedModel(model)
                job = UpscaleJob(source=source, output=Path(tmp) / f"out{i}.mp4", schedule=sched,
                                 device=torch.device("cpu"), precision=precision)
                start = time.perf_counter()
                for _ in upscale(timed, job):
                    pass
                wall = time.perf_counter() - start
                pairs.append({"model_only_seconds": round(only, 2), "pipeline_seconds": round(wall, 2),
                              "ratio": round(wall / only, 3)})
        show("pipeline", {"precision": precision, "encoder": "libx264 medium crf 16 (the default)",
                          "pairs": pairs, "median_ratio": round(float(np.median([p["ratio"] for p in pairs])), 3)})
    if "protocol" in sections:
        official = compute(model, lr, official_schedule(model))
        p_off = score(official["frames"], gt)
        rows = {"official": {"schedule": official_schedule(model).__dict__, "seconds": round(official["seconds"], 2),
                             "psnr_y": round(p_off, 3)}}
        candidates = [("default", sched)] + [(c, Schedule(*map(int, c.split(",")))) for c in args.candidate]
        for label, candidate in candidates:
            ours = compute(model, lr, candidate)
            p_ours = score(ours["frames"], gt)
            rows[label] = {"schedule": candidate.__dict__, "seconds": round(ours["seconds"], 2),
                           "speedup": round(official["seconds"] / ours["seconds"], 2),
                           "psnr_y": round(p_ours, 3), "psnr_loss_db": round(p_off - p_ours, 3)}
        show("protocol", rows)
    if "precision" in sections:
        rows = {}
        for precision in ("fp32", "bf16"):
            run = compute(model, lr, sched, precision)
            rows[precision] = {"seconds": round(run["seconds"], 2), "s_per_frame": round(run["seconds"] / len(lr), 3),
                               "psnr_y": round(score(run["frames"], gt), 3)}
        rows["bf16_speedup"] = round(rows["fp32"]["seconds"] / rows["bf16"]["seconds"], 2)
        rows["psnr_diff_db"] = round(rows["fp32"]["psnr_y"] - rows["bf16"]["psnr_y"], 3)
        show("precision", rows)
    report["schedule"] = dict(report["schedule"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
