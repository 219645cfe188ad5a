"""Which filter resizes the model's x4 output to another size (``--scale 2``, ``--height 1080``)
while keeping most of its gain over bicubic.

    python benchmarks/resize.py [--frames 4] [--clips car_aerial,caminandes,realshort]
        [--scales 2,3] [--model NAME] [--json FILE] [--shared ../shared]

For each held-out clip (benchmarks/quality.py's CLIPS: never trained on) the first ``--frames``
frames, cropped to a multiple of 4, are the x4 ground truth; the LR input is their MATLAB-bicubic
x1/4 (the BI protocol). The LR frames are upscaled x4 once by the public Python API
(``vsrt_cli.upscale``, the shipped schedule), then, for each target scale S and each filter of
vsrt_cli/engine/resize.py, the x4 frames *and the ground truth* are resized to S x the LR size
with that filter and scored (PSNR on Y, BT.601, 4-pixel border crop at the target size), next
to MATLAB bicubic straight from the LR frames to the target (the baseline). A filter that keeps
the gain at x4 keeps ``gain(S) ~ gain(4)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import CLIPS, SHARED, read_frames  # noqa: E402  (the same clips and ground truth)

from vsrt_cli import upscale  # noqa: E402
from vsrt_cli.engine.resize import FILTERS, resize  # noqa: E402
from vsrt_cli.inspect.metrics import psnr  # noqa: E402
from vsrt_cli.io.frames import encode_png, list_frames, read_image  # noqa: E402
from vsrt_cli.train.degrade import bi_degrade, imresize  # noqa: E402


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def mean_psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([psnr(x, y, y=True, crop_border=4) for x, y in zip(a, b)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--clips", default="car_aerial,caminandes,realshort")
    parser.add_argument("--scales", default="2,3")
    parser.add_argument("--model", default=None, help="default: the default model for image frames")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=SHARED, help=f"the shared data folder (default {SHARED})")
    args = parser.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="vsrt-resize-") as tmp:
        for name in args.clips.split(","):
            path, gt_scale, crop = CLIPS[name]
            path = args.shared / path.relative_to(SHARED)
            gt = read_frames(path, args.frames, gt_scale, crop)
            lr = bi_degrade(gt)
            folder = Path(tmp) / name / "lr"
            folder.mkdir(parents=True)
            for i, frame in enumerate(lr):
                (folder / f"frame_{i + 1:06d}.png").write_bytes(encode_png(frame))
            out = Path(tmp) / name / "x4"
            upscale(folder, out, model=args.model, quiet=True)  # a folder out: PNG frames
            x4 = np.stack([read_image(p)[0] for p in list_frames(out)])
            h, w = lr.shape[1:3]
            row = {"clip": name, "frames": len(lr), "lr": [w, h],
                   "x4": {"model": mean_psnr_y(x4, gt), "bicubic": mean_psnr_y(to_uint8(imresize(to_tensor(lr), 4.0)), gt)}}
            for s in scales:
                th, tw = round(h * s), round(w * s)
                base = to_uint8(imresize(to_tensor(lr), s))[:, :th, :tw]
                cell = {}
                for f in FILTERS:
                    truth = to_uint8(resize(to_tensor(gt), th, tw, f))
                    made = to_uint8(resize(to_tensor(x4), th, tw, f))
                    cell[f] = {"model": mean_psnr_y(made, truth), "bicubic": mean_psnr_y(base, truth)}
                row[f"x{s:g}"] = cell
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {"x4": {k: float(np.mean([r["x4"][k] for r in rows])) for k in ("model", "bicubic")}}
    for s in scales:
        key = f"x{s:g}"
        summary[key] = {f: {k: float(np.mean([r[key][f][k] for r in rows])) for k in ("model", "bicubic")} for f in FILTERS}
    print(f"\n| filter | " + " | ".join(f"x{s:g} vsrt | x{s:g} bicubic | x{s:g} gain" for s in scales) + " |")
    print("|---" * (1 + 3 * len(scales)) + "|")
    x4 = summary["x4"]
    print(f"| (x4, no resize) | {x4['model']:.2f} | {x4['bicubic']:.2f} | {x4['model'] - x4['bicubic']:+.2f} |")
    for f in FILTERS:
        cells = []
        for s in scales:
            c = summary[f"x{s:g}"][f]
            cells.append(f"{c['model']:.2f} | {c['bicubic']:.2f} | {c['model'] - c['bicubic']:+.2f}")
        print(f"| {f} | " + " | ".join(cells) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps({"clips": rows, "mean": summary, "frames": args.frames}, indent=2) + "\n")


if __name__ == "__main__":
    main()
