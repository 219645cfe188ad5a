"""One prepared device report: correctness, precision, speed and memory of vsrt on a CUDA card.

    python benchmarks/device_check.py --out DIR [--device cuda:N] [--tiny] [--budget-s 270] [--limit-s S]

Writes DIR/device_check.json, rewritten after every section (a section stopped at its time limit
or failing records what it has and its error; the others still run). Every section has its own
time limit (:data:`LIMITS`, ``--limit-s`` to cap them all) and none starts after ``--budget-s``:
the whole report takes under 5 minutes on one H100. Needs only torch, numpy, einops and
opencv-python-headless (the video model's DIS flow): no PyAV, no platformdirs (frames are
synthetic, or the goldens from ../shared/reference when present).

What users run is what is measured: the default model for video files (``vsrt-cpu-small-real``:
DIS flow, one pass per output frame, the compression-aware blend told the window's QP) at the
tiling ``vsrt upscale`` chooses on this device (:func:`vsrt_cli.engine.budget.tiling_for`: on
CUDA from the card's free memory), through the tile runner and the window planner the pipeline
uses. Sections:

env         torch, card, compute capability, memory, the default precision.
parity      the same network on the CPU and the device in fp32 with TF32 off (the goldens'
            network and tiles when ../shared/reference is there, else a seeded tiny one): max
            difference, and against the official output.
precision   the default video model over one window in fp32, fp16 and bf16 at its default
            tiling: time per window (flows included) and PSNR-Y against a synthetic truth; and
            the official preset's time ratios.
flops       a dense 3x3 conv 64->64 on the card (fp32, bf16) against the official preset's
            achieved rate (FLOPs from FlopCounterMode, bf16, 64x64 tiles).
throughput  LR frames/s of the default video model at its default tiling and schedule (upload,
            DIS flows, tiles, blend, quantise, download; YUV planes converted on CUDA, as the
            pipeline does) at 320x180, 640x360 and 1280x720, with the tiling chosen for each.
colour      8-bit 4:2:0 frames converted on the device (vsrt_cli/engine/yuv.py) against the same
            maths on the CPU, and the time to upload + convert a 1280x720 frame and to quantise +
            download its 4x output, as planes and as RGB (what the pipeline does on CUDA).
tiles       the cost column of the tile table (docs/PERFORMANCE.md): seconds per LR frame of the
            default video model at 1280x720 for tile sides 64 to 512 and the whole frame, each
            with as many tiles per call as fit (its quality column is the CPU's: the same
            network and tiles give the same numbers on any device).
memory      peak device memory of one call of the default video model per tile size.
oom         a real out-of-memory: torch.cuda.set_per_process_memory_fraction below what a
            whole-frame window of the default video model needs; the runner backs off, and its
            output equals a clean run at the settings it ended with. On the CPU it is simulated.

On a machine without CUDA it runs the same sections on the CPU (``--tiny`` sizes, as CI does).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from vsrt_cli.model import VSRTConfig, build_model, get_config, load_official  # noqa: E402
from vsrt_cli.engine.runtime import (  # noqa: E402
    Download,
    autocast,
    configure_device,
    default_precision,
    tune_allocator,
    upload_frame,
)
from vsrt_cli.engine.budget import tiling_for  # noqa: E402
from vsrt_cli.engine.schedule import WindowPlanner, plan_tiles  # noqa: E402
from vsrt_cli.engine.tiles import TileRunner  # noqa: E402
from vsrt_cli.zoo.weights import load_weights  # noqa: E402
from vsrt_cli.io.planes import Planes  # noqa: E402

REFERENCE = REPO.parent / "shared" / "reference"
DEFAULT_VIDEO = "vsrt-cpu-small-real"  # the default for video files (zoo/registry.py)
DEFAULT_WEIGHTS = REPO / "weights" / f"{DEFAULT_VIDEO}.pth"
QP = 26.0  # the quantiser the compression-aware blend is told (x264's CRF 23 gives about this)
LIMITS = {"env": 15, "parity": 30, "precision": 45, "flops": 30, "throughput": 75, "tiles": 45, "colour": 20, "memory": 30, "oom": 40}
TINY_OFFICIAL = VSRTConfig(num_feat=16, num_frame=5, depth=1, extract_blocks=1, reconstruct_blocks=1, ff_blocks=1, tile=32)
PRECISIONS = ("fp32", "fp16", "bf16")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn, device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn()`` after one warm-up call, the device synchronised around each."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def psnr_y(a: torch.Tensor, b: torch.Tensor, border: int = 4) -> float:
    """PSNR of BT.601 luma of ``[..., 3, H, W]`` in [0, 1], rounded to 8 bits like a video."""
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(3, 1, 1) / 255
    ya = ((a.double().clamp(0, 1) * 255).round() / 255 * weights).sum(-3)[..., border:-border, border:-border]
    yb = ((b.double().clamp(0, 1) * 255).round() / 255 * weights).sum(-3)[..., border:-border, border:-border]
    mse = ((ya - yb) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def synthetic_truth(frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``[T, 3, H, W]`` in [0, 1]: smooth gradients, rings and hard edges, moving a little."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    out = []
    for t in range(frames):
        x = xx + 0.01 * t
        r = torch.sqrt((x - 0.5) ** 2 + (yy - 0.5) ** 2)
        base = [0.5 + 0.5 * torch.sin(40 * r + c) * torch.cos(9 * x + 3 * c) for c in range(3)]
        img = torch.stack(base) * 0.8 + 0.2 * ((x * 7).floor() % 2 == (yy * 5).floor() % 2).float()
        out.append(img + 0.02 * torch.rand(3, height, width, generator=g))
    return torch.stack(out).clamp(0, 1)


def degrade(truth: torch.Tensor) -> torch.Tensor:
    """x1/4 bicubic with antialiasing (close to the BI protocol), 8-bit rounded."""
    lr = F.interpolate(truth, scale_factor=0.25, mode="bicubic", antialias=True, align_corners=False)
    return (lr.clamp(0, 1) * 255).round() / 255


def default_model():
    """The default model for video files, with its shipped weights (a seeded one of its preset
    if the file is missing, which the report says)."""
    if DEFAULT_WEIGHTS.is_file():
        return load_weights(DEFAULT_WEIGHTS).eval()
    torch.manual_seed(0)
    return build_model(DEFAULT_VIDEO).eval()


def default_runner(model, device: torch.device, precision: str, size: tuple[int, int]) -> tuple[TileRunner, dict]:
    """The tile runner ``vsrt upscale`` builds for one clip of ``size`` ``(H, W)`` on ``device``:
    the model's window and default stride, and the default tiling there (for the card's free
    memory now, on CUDA); with what was chosen."""
    config = model.config
    window = config.num_frame
    stride = config.default_stride(window)
    overlap = config.default_overlap
    tiling, free = tiling_for(config, device, precision, window=window, stride=stride, overlap=overlap, size=size)
    grid = plan_tiles(*size, tile=tiling.tile, overlap=overlap if tiling.tile else 0, multiple=config.size_multiple,
                      fixed=config.norm == "tile")
    chosen = {"window": window, "stride": stride, "tile": tiling.tile, "batch": tiling.batch,
              "tiles_per_frame": len(grid.origins), "free_gib": None if free is None else round(free / 2**30, 1)}
    return TileRunner(model, grid, batch=tiling.batch, device=device, precision=precision), chosen


def stream(runner: TileRunner, images: list, window: int, stride: int, yuv) -> int:
    """The pipeline's loop without the files: frames uploaded once, windows planned as frames
    arrive, the window's QP told, HR frames downloaded while the next window computes. Returns
    the frames out."""
    planner = WindowPlanner(window, stride)
    buffer: dict[int, torch.Tensor] = {}
    pending, out = None, 0

    def run(available: int, eof: bool) -> None:
        nonlocal pending, out
        for win in planner.ready(available, eof):
            batch = torch.stack([buffer[i] for i in win.frames])
            hr = runner(batch, [pos for pos, _ in win.outputs], win.frames, QP)
            if pending is not None:
                out += len(pending.images())
            pending = Download(hr, deep=False, yuv=yuv, finite=runner.take_check())
        for index in [i for i in buffer if i < planner.keep_from]:
            del buffer[index]
        runner.flow_cache.forget_before(planner.keep_from)

    for i, image in enumerate(images):
        buffer[i] = upload_frame(image, runner.device)
        run(i + 1, False)
    run(len(images), True)
    return out + (len(pending.images()) if pending is not None else 0)


def timed_stream(runner: TileRunner, images: list, window: int, stride: int, yuv) -> tuple[int, float]:
    """:func:`stream` timed: frames out and seconds, after a warm-up window on CUDA (cuDNN's
    autotuning, the caching allocator)."""
    if runner.device.type == "cuda":
        stream(runner, images[: window + 1], window, stride, yuv)
        runner.flow_cache.clear()
    sync(runner.device)
    start = time.perf_counter()
    done = stream(runner, images, window, stride, yuv)
    sync(runner.device)
    return done, time.perf_counter() - start


def official_model(tiny: bool):
    torch.manual_seed(0)
    return build_model(TINY_OFFICIAL if tiny else get_config("vsrt-reds")).eval()


# --- sections -------------------------------------------------------------------------------------


def env(device: torch.device, tiny: bool) -> dict:
    report = {"torch": torch.__version__, "device": str(device), "tiny": tiny, "cpu": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "default_model": DEFAULT_VIDEO, "weights_shipped": DEFAULT_WEIGHTS.is_file(),
              "default_precision": default_precision(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        report |= {"name": props.name, "capability": f"{props.major}.{props.minor}", "memory_gib": round(props.total_memory / 2**30, 1),
                   "default_precision": default_precision(device), "cuda": torch.version.cuda,
                   "cudnn": torch.backends.cudnn.version()}
    return report


@torch.inference_mode()
def parity(device: torch.device, tiny: bool) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    golden = REFERENCE / "golden_small.pt"
    if golden.is_file() and not tiny:
        data = torch.load(golden, map_location="cpu", weights_only=True)
        cpu_model = load_official(data["state_dict"], **data["config"]).eval()
        x, official = data["input"], data["output"]
        source = "golden_small.pt (official weights and tiles)"
    else:
        torch.manual_seed(0)
        cpu_model, x, official = official_model(True), torch.rand(1, 5, 3, 32, 32), None
        source = "seeded tiny network (--tiny, or no goldens in --reference)"
    on_cpu = cpu_model(x)
    dev_model = build_model(cpu_model.config).eval()
    dev_model.load_state_dict(cpu_model.state_dict())
    on_device = dev_model.to(device)(x.to(device)).cpu()
    report = {"source": source, "tf32": False, "max_abs_diff_device_vs_cpu": (on_device - on_cpu).abs().max().item()}
    if official is not None:
        report["max_abs_diff_device_vs_official"] = (on_device - official).abs().max().item()
        report["max_abs_diff_cpu_vs_official"] = (on_cpu - official).abs().max().item()
    report["ok"] = report["max_abs_diff_device_vs_cpu"] <= 1e-4
    return report


@torch.inference_mode()
def precision(device: torch.device, tiny: bool) -> dict:
    report: dict = {}
    h, w = (36, 64) if tiny else (180, 320)  # LR
    model = default_model().to(device)
    frames = model.config.num_frame
    truth = synthetic_truth(frames, 4 * h, 4 * w)
    lr = degrade(truth).to(device)
    centre = frames // 2
    report = CURRENT
    rows: dict = {"model": DEFAULT_VIDEO, "lr_size": f"{w}x{h}", "qp": QP}
    report["default_video_model"] = rows
    for p in PRECISIONS:
        if p == "bf16" and device.type == "cuda" and default_precision(device) != "bf16":
            rows[p] = {"skipped": "no bf16 tensor cores"}
            continue
        configure_device(device, p)  # TF32 as a run in this precision has it
        runner, chosen = default_runner(model, device, p, (h, w))
        out = runner(lr, [centre], None, QP)[0].cpu()  # no flow cache: each call computes its flows
        t = seconds(lambda: runner(lr, [centre], None, QP), device, 1 if tiny else 3)
        rows[p] = {"seconds_per_window": round(t, 4), "psnr_y": round(psnr_y(out, truth[centre]), 3), "tiling": chosen,
                   "notices": runner.notices}
    for p in ("fp16", "bf16"):
        if "seconds_per_window" in rows.get(p, {}):
            rows[p]["speedup_vs_fp32"] = round(rows["fp32"]["seconds_per_window"] / rows[p]["seconds_per_window"], 2)
            rows[p]["psnr_loss_db"] = round(rows["fp32"]["psnr_y"] - rows[p]["psnr_y"], 3)
    official = official_model(tiny).to(device).to(memory_format=torch.channels_last)
    tile = official.config.tile
    x = torch.rand(2 if tiny else 8, 5, 3, tile, tile, device=device)
    ref = official(x).float()
    rows = {}
    for p in PRECISIONS:
        if p == "bf16" and device.type == "cuda" and default_precision(device) != "bf16":
            continue
        with autocast(device, p):
            out = official(x).float()
            t = seconds(lambda: official(x), device, 2 if tiny else 5)
        rows[p] = {"seconds": round(t, 4), "psnr_vs_fp32_db": round(10 * np.log10(1 / max(((out - ref) ** 2).mean().item(), 1e-20)), 2)}
    for p in ("fp16", "bf16"):
        if p in rows:
            rows[p]["speedup_vs_fp32"] = round(rows["fp32"]["seconds"] / rows[p]["seconds"], 2)
    report["official_preset_tiles"] = {"preset": "tiny" if tiny else "vsrt-reds", "batch": x.shape[0], "tile": tile, **rows}
    return dict(report)


@torch.inference_mode()
def flops(device: torch.device, tiny: bool) -> dict:
    side, batch = (64, 2) if tiny else (256, 8)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device).to(memory_format=torch.channels_last)
    x = torch.rand(batch, 64, side, side, device=device).contiguous(memory_format=torch.channels_last)
    conv_flops = 2 * 64 * 64 * 9 * side * side * batch
    rates = {}
    for p in ("fp32", "bf16"):
        with autocast(device, p):
            rates[p] = round(conv_flops / seconds(lambda: conv(x), device, 3 if tiny else 20) / 1e12, 3)
    p = default_precision(device) if device.type == "cuda" else "fp32"
    model = official_model(tiny).to(device).to(memory_format=torch.channels_last)
    tiles = torch.rand(2 if tiny else 16, 5, 3, model.config.tile, model.config.tile, device=device)
    with FlopCounterMode(display=False) as counter, autocast(device, p):
        model(tiles)
    with autocast(device, p):
        t = seconds(lambda: model(tiles), device, 2 if tiny else 5)
    achieved = counter.get_total_flops() / t / 1e12
    return {"conv_3x3_64_tflops": rates, "model": "tiny" if tiny else "vsrt-reds", "precision": p,
            "model_tflops": round(achieved, 3), "model_share_of_conv_rate": round(achieved / rates[p], 3),
            "gflop_per_call": round(counter.get_total_flops() / 1e9, 1)}


def throughput(device: torch.device, tiny: bool) -> dict:
    model = default_model().to(device)
    p = default_precision(device)
    configure_device(device, p)  # as `vsrt upscale` does (a lossy output: cuDNN autotunes)
    sizes = ((64, 36), (96, 54)) if tiny else ((320, 180), (640, 360), (1280, 720))
    frames_per_size = 6 if tiny else 12
    report = CURRENT
    report |= {"model": DEFAULT_VIDEO, "precision": p, "qp": QP, "schedule": "vsrt upscale's default on this device"}
    for w, h in sizes:
        runner, chosen = default_runner(model, device, p, (h, w))
        images = [synthetic_planes(h, w, seed) for seed in range(frames_per_size)]
        if device.type != "cuda":  # the CPU pipeline converts on the host: RGB in and out
            images = [as_rgb(image) for image in images]
        yuv = (1, False, True) if device.type == "cuda" else None  # the pipeline's rule (pipeline.out_planes)
        window, stride = chosen["window"], chosen["stride"]
        done, took = timed_stream(runner, images, window, stride, yuv)
        report[f"{w}x{h}"] = {"lr_fps": round(done / took, 3), "frames": done, **chosen, "notices": runner.notices}
    return dict(report)


def tiles(device: torch.device, tiny: bool) -> dict:
    model = default_model().to(device)
    p = default_precision(device)
    configure_device(device, p)
    w, h = (96, 54) if tiny else (1280, 720)
    sides = (32, 0) if tiny else (64, 96, 128, 192, 256, 384, 512, 0)
    config = model.config
    window, stride = config.num_frame, config.default_stride(config.num_frame)
    images = [synthetic_planes(h, w, seed) for seed in range(4 if tiny else 8)]
    if device.type != "cuda":
        images = [as_rgb(image) for image in images]
    yuv = (1, False, True) if device.type == "cuda" else None
    report = CURRENT
    report |= {"model": DEFAULT_VIDEO, "precision": p, "lr_size": f"{w}x{h}", "s_per_frame": {}}
    for side in sides:
        overlap = config.default_overlap
        tiling, _ = tiling_for(config, device, p, window=window, stride=stride, overlap=overlap, size=(h, w), tile=side)
        grid = plan_tiles(h, w, tile=side, overlap=overlap if side else 0, multiple=config.size_multiple)
        runner = TileRunner(model, grid, batch=tiling.batch, device=device, precision=p)
        try:
            done, took = timed_stream(runner, images, window, stride, yuv)
            row = {"s": round(took / done, 4), "tiles": len(grid.origins),
                   "tile": list(grid.tile), "batch": runner.batch, "notices": runner.notices}
        except Exception as exc:  # e.g. the whole frame not fitting: the row says so, the others run
            row = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        report["s_per_frame"][str(side or "whole")] = row
        del runner
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return dict(report)


def synthetic_planes(h: int, w: int, seed: int) -> Planes:
    """A BT.709 limited-range 4:2:0 frame of random code values, chroma left-sited (H.264's)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(16, 236, (h, w), dtype=np.uint8)
    u, v = (rng.integers(16, 241, (h // 2, w // 2), dtype=np.uint8) for _ in range(2))
    return Planes(y, u, v, matrix=1, full_range=False, left=True)


def as_rgb(planes: Planes) -> np.ndarray:
    return (upload_frame(planes, torch.device("cpu")).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


@torch.inference_mode()
def colour(device: torch.device, tiny: bool) -> dict:
    h, w = (72, 128) if tiny else (720, 1280)
    planes = synthetic_planes(h, w, 0)
    rgb = as_rgb(planes)
    on_device = upload_frame(planes, device)
    parity = (on_device.cpu() - upload_frame(planes, torch.device("cpu"))).abs().max().item()
    hr = torch.nn.functional.interpolate(on_device[None], scale_factor=4, mode="bilinear").clamp(0, 1)
    out_device = Download(hr, deep=False, yuv=(1, False, True)).images()[0]
    out_cpu = Download(hr.cpu(), deep=False, yuv=(1, False, True)).images()[0]
    out_diff = max(int(np.abs(a.astype(int) - b).max()) for a, b in
                   ((out_device.y, out_cpu.y), (out_device.u, out_cpu.u), (out_device.v, out_cpu.v)))
    repeats = 3 if tiny else 10
    ms = {
        "upload_planes_ms": seconds(lambda: upload_frame(planes, device), device, repeats) * 1e3,
        "upload_rgb_ms": seconds(lambda: upload_frame(rgb, device), device, repeats) * 1e3,
        "download_planes_ms": seconds(lambda: Download(hr, deep=False, yuv=(1, False, True)).images(), device, repeats) * 1e3,
        "download_rgb_ms": seconds(lambda: Download(hr, deep=False).images(), device, repeats) * 1e3,
    }
    return {"lr_size": f"{w}x{h}", "input_max_abs_diff_vs_cpu": parity, "output_max_code_diff_vs_cpu": out_diff,
            **{k: round(v, 2) for k, v in ms.items()}}


@torch.inference_mode()
def memory(device: torch.device, tiny: bool) -> dict:
    if device.type != "cuda":
        return {"skipped": "device memory is only counted on CUDA"}
    model = default_model().to(device).to(memory_format=torch.channels_last)
    p = default_precision(device)
    frames = model.config.num_frame
    report = CURRENT
    report |= {"model": DEFAULT_VIDEO, "precision": p, "call": f"{frames} frames, 1 kept, QP told", "peak_mib": {}}
    for tile in (64, 128, 256, 512):
        for batch in (1, 4):
            x = torch.rand(batch, frames, 3, tile, tile, device=device)
            flows = tuple(torch.zeros(batch, frames, 2, tile, tile, device=device) for _ in range(2))
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            with autocast(device, p):
                model(x, flows, keep=[frames // 2], quant=QP)
            sync(device)
            report["peak_mib"][f"tile{tile}_batch{batch}"] = round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 1)
            del x, flows
    return dict(report)


class _SimulatedLimit(torch.nn.Module):
    """CPU stand-in for a memory limit: torch.OutOfMemoryError above ``limit`` LR pixels per call.
    A module, so that the runner lays its weights out as it does the model's (channels-last)."""

    def __init__(self, model, limit: int) -> None:
        super().__init__()
        self.model, self.limit, self.config = model, limit, model.config

    @property
    def spynet(self):
        return self.model.spynet

    @property
    def flow_net(self):
        return self.model.flow_net

    def flows_read(self, t, keep):
        return self.model.flows_read(t, keep)

    def forward(self, tiles, flows=None, *, keep=None, quant=None):
        if tiles.shape[0] * tiles.shape[-1] * tiles.shape[-2] > self.limit:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return self.model(tiles, flows, keep=keep, quant=quant)


def oom(device: torch.device, tiny: bool) -> dict:
    model = default_model().to(device)
    h, w = (72, 128) if tiny else (180, 320)
    t = model.config.num_frame
    frames = torch.rand(t, 3, h, w, device=device)
    keep, indices = [t // 2], tuple(range(t))
    whole = plan_tiles(h, w, tile=0, overlap=0, multiple=model.config.size_multiple)
    p = "fp32"
    if device.type == "cuda":
        # the same algorithms in both runs, so that "identical" can mean bit for bit
        configure_device(device, p, deterministic=True)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        TileRunner(model, whole, batch=1, device=device, precision=p)(frames, keep, indices, QP)
        need = torch.cuda.max_memory_allocated(device) - base
        total = torch.cuda.get_device_properties(device).total_memory
        limit = base + need // 3
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(limit / total, device)
        runner = TileRunner(model, whole, batch=1, device=device, precision=p)
        try:
            out = runner(frames, keep, indices, QP)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
        how = {"whole_frame_window_mib": round(need / 2**20), "limit_mib": round(limit / 2**20)}
    else:
        runner = TileRunner(_SimulatedLimit(model, h * w // 3), whole, batch=1, device=device, precision=p)
        out = runner(frames, keep, indices, QP)
        how = {"simulated": "torch.OutOfMemoryError above a third of the frame's pixels (no CUDA)"}
    clean = TileRunner(model, runner.grid, batch=runner.batch, device=device, precision=p)
    clean.whole_frame_flows, clean.accumulate_on = runner.whole_frame_flows, runner.accumulate_on
    clean.set_grid(runner.grid)  # the blend weights made where the accumulator now is
    again = clean(frames, keep, indices, QP)
    return {**how, "model": DEFAULT_VIDEO, "lr_size": f"{w}x{h}", "notices": runner.notices,
            "final_tile": list(runner.grid.tile), "final_batch": runner.batch,
            "accumulator": runner.accumulate_on.type, "survived": True,
            "identical_to_clean_run_at_final_settings": bool(torch.equal(out.cpu(), again.cpu())),
            "max_abs_diff": (out.cpu() - again.cpu()).abs().max().item()}


SECTIONS = {"env": env, "parity": parity, "precision": precision, "flops": flops, "throughput": throughput,
            "tiles": tiles, "colour": colour, "memory": memory, "oom": oom}


CURRENT: dict = {}  # what the running section has measured so far: kept if it is stopped


class SectionTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Stop the section (an exception in the main thread, between two Python steps: a kernel
    already queued finishes) once ``seconds`` have passed."""
    def stop(signum, frame):
        raise SectionTimeout(f"stopped at its time limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def main(argv: list[str] | None = None) -> dict:
    global REFERENCE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="small sizes (the default without CUDA)")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="folder holding golden_small.pt")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--budget-s", type=float, default=270, help="sections not started by then are skipped, "
                        "and none runs past it")
    parser.add_argument("--limit-s", type=float, default=None, help="cap every section's own time limit (LIMITS) at this")
    args = parser.parse_args(argv)
    REFERENCE = args.reference
    unknown = [name for name in args.sections.split(",") if name not in SECTIONS]
    tune_allocator()
    device = configure_device(torch.device(args.device), "fp32")  # cuda alone: the current card, with its index
    tiny = args.tiny or device.type != "cuda"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "device_check.json"
    report: dict = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv)}
    start = time.perf_counter()
    for name in args.sections.split(","):
        if name in unknown:
            raise KeyError(f"unknown section {name!r}; sections: {', '.join(SECTIONS)}")
        left = args.budget_s - (time.perf_counter() - start)
        if left <= 0:
            report[name] = {"skipped": f"time budget of {args.budget_s:.0f} s spent"}
            path.write_text(json.dumps(report, indent=2) + "\n")
            continue
        limit = min(LIMITS.get(name, 60), args.limit_s or float("inf"), left)
        began = time.perf_counter()
        CURRENT.clear()
        try:
            with time_limit(limit):
                report[name] = SECTIONS[name](device, tiny)
        except Exception as exc:  # one failing or stopped section must not lose the others
            report[name] = {**json.loads(json.dumps(CURRENT, default=str)), "error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc(limit=6)}
        finally:
            if device.type == "cuda":
                torch.cuda.set_per_process_memory_fraction(1.0, device)
                torch.cuda.empty_cache()
        report[name]["section_seconds"] = round(time.perf_counter() - began, 1)
        report[name]["limit_s"] = round(limit, 1)
        print(f"{name}: {json.dumps(report[name])}", flush=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
