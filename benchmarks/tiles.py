"""The tile table: quality and cost of the default video model for each tile size (issue #28).

    python benchmarks/tiles.py [--tiles 64,96,128,160,192,256,0] [--frames 8] [--clips ski,plane]
                               [--gt 1280x720] [--overlap 8,16] [--device cpu] [--precision bf16] [--json FILE]

Each held-out moving clip's first ``--frames`` frames, centre-cropped to ``--gt`` (1280x720: LR
320x180, the README job's size), are the ground truth; the LR input is their MATLAB-bicubic x1/4
(the BI protocol, as benchmarks/quality.py). For each tile side (``0``: the whole frame in one
tile) the pipeline's own windows, tiles and blend run the default model for frames over the LR
frames in memory (no decode, no encode: benchmarks/speed.py's ``compute``), with the tiles per
call the CPU default (all of a frame's tiles on a device, as far as the schedule allows). Each
row: the tile grid, the share of the frame's pixels computed (overlap work), PSNR-Y against the
ground truth (BT.601, 4-pixel border), and the time per output frame and per million output
pixels (best of ``--repeats`` runs). Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import CLIPS, read_frames  # noqa: E402
from speed import Keep, as_frames, score  # noqa: E402

from vsrt_cli.engine.pipeline import Schedule, TileRunner, _run  # noqa: E402
from vsrt_cli.engine.runtime import configure_device, default_precision, tune_allocator  # noqa: E402
from vsrt_cli.engine.schedule import plan_tiles  # noqa: E402
from vsrt_cli.jobs.build import load_model  # noqa: E402
from vsrt_cli.train.degrade import bi_degrade, crop_to_multiple  # noqa: E402


def run(model, lr: np.ndarray, tile: int, batch: int, device: torch.device, precision: str, overlap: int = 16) -> tuple[float, list, dict]:
    """Seconds of the windows-tiles-model-blend path over ``lr``, its frames and its grid."""
    grid = plan_tiles(lr.shape[1], lr.shape[2], tile=tile, overlap=overlap if tile else 0,
                      multiple=model.config.size_multiple)
    batch = len(grid.origins) if batch == 0 else batch
    runner = TileRunner(model, grid, batch=batch, device=device, precision=precision)
    schedule = Schedule(tile=tile, overlap=overlap, window=5, stride=1, batch=batch)
    keep = Keep()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in _run(runner, iter(as_frames(lr)), keep, schedule, False, len(lr)):
        pass
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    th, tw = grid.tile
    info = {"grid": f"{len(grid.rows)}x{len(grid.cols)} of {tw}x{th}", "tiles": len(grid.origins), "batch": batch,
            "computed": round(len(grid.origins) * th * tw / (lr.shape[1] * lr.shape[2]), 3)}
    return seconds, keep.frames, info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", default="64,96,128,160,192,256,0")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--clips", default="ski,plane")
    parser.add_argument("--gt", default="1280x720", help="centre crop of the ground truth, WxH")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default=None)
    parser.add_argument("--batch", type=int, default=None, help="tiles per call (0: a frame's tiles; default: the CPU's 4, a device's all)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--overlap", default=None, help="comma-separated tile overlaps (LR px), a row each per tile (default: the model's)")
    parser.add_argument("--model", default=None, help="default: the default model for frames")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    tune_allocator()
    device = torch.device(args.device)
    precision = args.precision or default_precision(device)
    configure_device(device, precision)
    model = load_model(args.model, None, "frames").eval().to(device)
    w, h = (int(v) for v in args.gt.split("x"))
    batch = args.batch if args.batch is not None else (4 if device.type == "cpu" else 0)
    rows = []
    report = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "device": str(device), "precision": precision, "date": datetime.date.today().isoformat(),
              "gt": args.gt, "frames": args.frames, "rows": rows}
    for name in args.clips.split(","):
        path, scale, _ = CLIPS[name]
        gt = crop_to_multiple(read_frames(path, args.frames, scale, (h, w)))
        lr = bi_degrade(gt)
        overlaps = args.overlap.split(",") if args.overlap else [str(model.config.default_overlap)]
        for tile, overlap in ((int(t), int(o)) for t in args.tiles.split(",") for o in overlaps):
            best, frames, info = None, None, None
            for _ in range(args.repeats):
                seconds, frames, info = run(model, lr, tile, batch, device, precision, overlap)
                best = seconds if best is None else min(best, seconds)
            per_frame = best / len(lr)
            mpx = gt.shape[1] * gt.shape[2] / 1e6
            row = {"clip": name, "lr": f"{lr.shape[2]}x{lr.shape[1]}", "tile": tile, "overlap": overlap, **info,
                   "psnr_y": round(score(frames, gt), 3), "s_per_frame": round(per_frame, 3),
                   "s_per_mpx": round(per_frame / mpx, 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
