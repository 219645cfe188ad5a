"""Quality of a model through the real `vsrt upscale` path on held-out clips, vs bicubic.

    python benchmarks/quality.py [--model NAME | --weights PATH] [--frames 24] [upscale options]

For each held-out clip (never trained on: VAL_SOURCES in vsrt_cli/train/data.py, plus the
hand-held `realshort` test clip): the first
``--frames`` frames, cropped to a multiple of 4, are the ground truth; the LR input is their
MATLAB-bicubic x1/4 (the BI protocol). The LR frames are upscaled by `vsrt upscale` (windows,
tiles, blending: the shipped schedule unless options say otherwise) and by bicubic x4, and
both are scored with `vsrt eval` metrics (PSNR/SSIM on Y, BT.601, 4-pixel border crop).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vsrt_cli.evaluate import score_clip
from vsrt_cli.io.frames import encode_png
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.train.degrade import bi_degrade, bicubic_upscale, crop_to_multiple, resize_uint8

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# name -> (clip, scale applied to make the ground truth; 0.5 halves compression artefacts)
CLIPS = {
    # real camera: data/test's excerpt of intel_car_aerial, already at half size (384x216)
    "car_aerial": (SHARED / "data/test/derived/car_3s_384x216_h264_aac.mp4", 1.0),
    # 3-D animation: the held-out Caminandes excerpt at half size (320x180)
    "caminandes": (SHARED / "data/train/caminandes_excerpt/clip_02_caminandes.mp4", 0.5),
    # real hand-held phone video (320x240, 36 frames), never trained on; unlike the two above
    # it moves at the LR scale (consecutive LR frames ~30 dB apart, against 45+ dB)
    "realshort": (SHARED / "data/test/imageio_realshort/realshort.mp4", 1.0),
}


def read_frames(path: Path, count: int, scale: float = 1.0) -> np.ndarray:
    frames = []
    with VideoReader(probe(path)) as reader:
        for frame in reader:
            frames.append(frame.image if frame.image.dtype == np.uint8 else (frame.image // 257).astype(np.uint8))
            if len(frames) == count:
                break
    frames = np.stack(frames)
    return crop_to_multiple(resize_uint8(frames, scale) if scale != 1.0 else frames)


def write_folder(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        (folder / f"{i:04d}.png").write_bytes(encode_png(np.ascontiguousarray(frame)))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--extra-clip", action="append", default=[], help="NAME=PATH of another held-out clip")
    args, upscale_options = parser.parse_known_args()
    clips = dict(CLIPS)
    for item in args.extra_clip:
        name, path = item.split("=", 1)
        clips[name] = (Path(path), 1.0)
    from vsrt_cli.cli import main as vsrt

    results = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name, (path, scale) in clips.items():
            gt = read_frames(path, args.frames, scale)
            lr = bi_degrade(gt)
            gt_dir = write_folder(tmp / name / "gt", gt)
            lr_dir = write_folder(tmp / name / "lr", lr)
            lr_t = torch.from_numpy(lr).permute(0, 3, 1, 2).float()
            bicubic = bicubic_upscale(lr_t).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            bic_dir = write_folder(tmp / name / "bicubic", bicubic)
            out_dir = tmp / name / "vsrt"
            try:
                vsrt(["upscale", str(lr_dir), "-o", str(out_dir), "--quiet", *upscale_options])
            except SystemExit as exc:
                if exc.code:
                    sys.exit(exc.code)
            model = score_clip(out_dir, gt_dir, crop_border=4, name=name)
            base = score_clip(bic_dir, gt_dir, crop_border=4, name=name)
            results[name] = {
                "frames": model.frames, "lr_size": f"{lr.shape[2]}x{lr.shape[1]}",
                "psnr_y": round(model.psnr_y, 3), "ssim_y": round(model.ssim_y, 4),
                "bicubic_psnr_y": round(base.psnr_y, 3), "bicubic_ssim_y": round(base.ssim_y, 4),
                "gain_db": round(model.psnr_y - base.psnr_y, 3),
            }
            print(f"{name}: vsrt {model.psnr_y:.3f} dB / {model.ssim_y:.4f}, bicubic {base.psnr_y:.3f} dB / "
                  f"{base.ssim_y:.4f}, gain {model.psnr_y - base.psnr_y:+.3f} dB", flush=True)
    gains = [r["gain_db"] for r in results.values()]
    print(json.dumps({"clips": results, "mean_gain_db": round(float(np.mean(gains)), 3),
                      "options": upscale_options}, indent=2))


if __name__ == "__main__":
    main()
