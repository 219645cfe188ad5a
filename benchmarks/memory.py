"""Peak RSS of `vsrt upscale` for a short clip and a 10x longer one (same frame size).

    python benchmarks/memory.py [--frames 30] [--size 192x108] [--weights PATH] [--long-factor 10] [upscale options]

Each run is a fresh process, so its peak RSS is its own. Without --weights a tiny randomly
initialised model is used: this measures the streaming pipeline (decode queue, window buffer,
flow cache, encoder), which is what must not grow with the clip length.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_clip(path: Path, frames: int, width: int, height: int) -> None:
    """A moving gradient with AAC-free H.264, ``frames`` long at 25 fps."""
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            r = (xx * 3 + i * 2) % 256
            g = (yy * 5 + i) % 256
            b = ((xx + yy) // 2 + i * 3) % 256
            image = np.stack([r, g, b], axis=-1).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def child(args: argparse.Namespace) -> None:
    from vsrt_cli.cli.app import main

    start = time.perf_counter()
    try:
        main(["upscale", args.input, "-o", args.output, "--weights", args.weights, "--quiet", "--overwrite", *args.extra])
    except SystemExit as exc:
        if exc.code:
            raise
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mib": peak_kib / 1024, "seconds": time.perf_counter() - start}))


def tiny_weights(path: Path) -> None:
    import torch

    from vsrt_cli.model import VSRTConfig, build_model
    from vsrt_cli.zoo.weights import save_weights

    torch.manual_seed(0)
    config = VSRTConfig(num_feat=16, num_frame=5, depth=1, patch_size=8, extract_blocks=1,
                        reconstruct_blocks=1, ff_blocks=2, norm="channel")
    save_weights(build_model(config), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="192x108")
    parser.add_argument("--weights", help="a weights file (default: a tiny random model); e.g. $(vsrt models path vsrt-cpu-small-1f)")
    parser.add_argument("--long-factor", type=int, default=10, help="the long clip is this many times longer (0: short only)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args()
    args.extra = extra
    if args.child:
        child(args)
        return
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        weights = Path(args.weights) if args.weights else tmp / "tiny.pth"
        if not args.weights:
            tiny_weights(weights)
        results = {}
        runs = [("short", args.frames)] + ([("long", args.long_factor * args.frames)] if args.long_factor else [])
        for label, n in runs:
            clip = tmp / f"{label}.mp4"
            make_clip(clip, n, width, height)
            cmd = [sys.executable, __file__, "--child", "--input", str(clip), "--output", str(tmp / f"{label}_x4.mp4"),
                   "--weights", str(weights), *extra]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[label] = {"frames": n, **json.loads(done.stdout.strip().splitlines()[-1])}
            print(f"{label:5s} {n:5d} frames {width}x{height}: peak RSS {results[label]['peak_rss_mib']:.0f} MiB, "
                  f"{results[label]['seconds']:.1f} s", flush=True)
        if "long" in results:
            ratio = results["long"]["peak_rss_mib"] / results["short"]["peak_rss_mib"]
            print(f"peak RSS long/short = {ratio:.3f}")


if __name__ == "__main__":
    main()
