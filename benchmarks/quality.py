"""Quality of models through the real `vsrt upscale` path on held-out clips, vs bicubic.

    python benchmarks/quality.py [--models A,B | --model NAME | --weights PATH] [--frames 24]
        [--compressed 23,28,33 [--codec libx265|libvpx-vp9]] [--clips car_aerial,ski] [upscale options]

For each held-out clip (never trained on: VAL_SOURCES in vsrt_cli/train/sources.py, plus the
hand-held `realshort` test clip): the first ``--frames`` frames, cropped to a multiple of 4 (the
large moving clips to a 768x432 centre), are the ground truth; the LR input is their
MATLAB-bicubic x1/4 (the BI protocol). The LR frames are upscaled by `vsrt upscale` (windows,
tiles, blending: the shipped schedule unless options say otherwise) and by bicubic x4, and
both are scored with `vsrt eval` metrics (PSNR/SSIM on Y, BT.601, 4-pixel border crop).

``--compressed CRFS``: real footage is compressed, so the BI frames are also encoded with
libx264 (yuv420p, preset medium) at each CRF and the *video file* is upscaled (so `vsrt
upscale` picks the model it picks for video files, unless ``--models`` names them), against
the clean GT. ``--codec libx265`` encodes with x265 instead (preset medium): its decoder reports
no quantiser, but x265 writes its CRF into the stream, which a compression-aware model is told
on H.264's scale (an HEVC file from another encoder, or x265 at a bitrate, stays unknown). ``--codec libvpx-vp9``: VP9 at constant quality (its CRF runs 0-63),
whose quantiser index the model is told on H.264's scale. ``--models`` runs each named model on
the same inputs, side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vsrt_cli.inspect.evaluate import score_clip
from vsrt_cli.io.convert import to_rgb
from vsrt_cli.io.frames import encode_png
from vsrt_cli.io.probe import probe
from vsrt_cli.io.reader import VideoReader
from vsrt_cli.train.degrade import bi_degrade, bicubic_upscale, crop_to_multiple, resize_uint8

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MOVING_CROP = (432, 768)  # GT centre crop of the large moving clips (LR 192x108)
# name -> (clip, scale applied to make the ground truth (0.5 halves compression artefacts),
#          centre crop of the GT or None)
CLIPS = {
    # real camera: data/test's excerpt of intel_car_aerial, already at half size (384x216)
    "car_aerial": (SHARED / "data/test/derived/car_3s_384x216_h264_aac.mp4", 1.0, None),
    # 3-D animation: the held-out Caminandes excerpt at half size (320x180)
    "caminandes": (SHARED / "data/train/caminandes_excerpt/clip_02_caminandes.mp4", 0.5, None),
    # real hand-held phone video (320x240, 36 frames), never trained on; unlike the two above
    # it moves at the LR scale (consecutive LR frames ~30 dB apart, against 45+ dB)
    "realshort": (SHARED / "data/test/imageio_realshort/realshort.mp4", 1.0, None),
    # the held-out sources that move: hand-held follow shot (near-lossless), drifting sky
    "ski": (SHARED / "data/train/pexels_ski_slope_frames/ski_slope_f0001-0035_yuv444p10_crf4.mkv", 1.0, MOVING_CROP),
    "plane": (SHARED / "data/train/pexels_plane_clouds/vid_plane.mp4", 1.0, MOVING_CROP),
}


def read_frames(path: Path, count: int, scale: float = 1.0, crop: tuple[int, int] | None = None) -> np.ndarray:
    frames = []
    with VideoReader(probe(path)) as reader:
        for frame in reader:
            frames.append(frame.image if frame.image.dtype == np.uint8 else (frame.image // 257).astype(np.uint8))
            if len(frames) == count:
                break
    frames = np.stack(frames)
    if crop is not None:
        h, w = min(crop[0], frames.shape[1]), min(crop[1], frames.shape[2])
        y, x = (frames.shape[1] - h) // 2, (frames.shape[2] - w) // 2
        frames = frames[:, y : y + h, x : x + w]
    return crop_to_multiple(resize_uint8(frames, scale) if scale != 1.0 else frames)


CODEC_OPTIONS = {
    "libx264": {"preset": "medium"},
    "libx265": {"preset": "medium", "x265-params": "log-level=none"},
    "libvpx-vp9": {"b": "0", "cpu-used": "2"},  # CRF 0-63; b=0: constant quality
}


def encode_video(frames: np.ndarray, path: Path, crf: int, codec: str = "libx264") -> np.ndarray:
    """Write ``frames`` as ``codec`` (libx264 or libx265, preset medium; libvpx-vp9, constant
    quality, speed 2) yuv420p at ``crf`` (25 fps); returns the frames decoded and converted as
    `vsrt upscale`'s reader converts them (the bicubic baseline starts from them)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), **CODEC_OPTIONS[codec]}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        return np.stack([to_rgb(f, 8, 0) for f in container.decode(video=0)])


def write_folder(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        (folder / f"{i:04d}.png").write_bytes(encode_png(np.ascontiguousarray(frame)))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--extra-clip", action="append", default=[], help="NAME=PATH of another held-out clip")
    parser.add_argument("--clips", help="comma-separated subset of the clips")
    parser.add_argument("--models", help="comma-separated model names or weights files (.pth/.pt), each run on the same inputs")
    parser.add_argument("--compressed", help="comma-separated x264 CRFs: score compressed input instead of BI")
    parser.add_argument("--codec", default="libx264", choices=tuple(CODEC_OPTIONS), help="encoder of --compressed")
    args, upscale_options = parser.parse_known_args()
    clips = dict(CLIPS)
    for item in args.extra_clip:
        name, path = item.split("=", 1)
        clips[name] = (Path(path), 1.0, None)
    if args.clips:
        clips = {k: clips[k] for k in args.clips.split(",")}
    models = args.models.split(",") if args.models else [None]
    crfs = [int(c) for c in args.compressed.split(",")] if args.compressed else [None]
    from vsrt_cli.cli.app import main as vsrt

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name, (path, scale, crop) in clips.items():
            gt = read_frames(path, args.frames, scale, crop)
            if args.compressed:  # x264's yuv420p needs even LR sides
                gt = crop_to_multiple(gt, 2 * 4)
            gt_dir = write_folder(tmp / name / "gt", gt)
            for crf in crfs:
                case = name if crf is None else f"{name}@crf{crf}" + ("" if args.codec == "libx264" else f"-{args.codec}")
                lr = bi_degrade(gt)
                source = write_folder(tmp / case / "lr", lr)
                if crf is not None:  # the upscaler gets the video file, the baseline its frames
                    lr = encode_video(lr, tmp / case / "lr.mp4", crf, args.codec)
                    source = tmp / case / "lr.mp4"
                lr_t = torch.from_numpy(lr).permute(0, 3, 1, 2).float()
                bicubic = bicubic_upscale(lr_t).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
                base = score_clip(write_folder(tmp / case / "bicubic", bicubic), gt_dir, crop_border=4, name=case)
                row: dict[str, object] = {"frames": base.frames, "lr_size": f"{lr.shape[2]}x{lr.shape[1]}",
                                          "bicubic_psnr_y": round(base.psnr_y, 3), "bicubic_ssim_y": round(base.ssim_y, 4)}
                for number, model in enumerate(models):
                    out_dir = tmp / case / f"vsrt-{number}"
                    chosen = ([] if not model else ["--weights", model] if model.endswith((".pth", ".pt"))
                              else ["--model", model])
                    try:
                        vsrt(["upscale", str(source), "-o", str(out_dir), "--quiet", *chosen, *upscale_options])
                    except SystemExit as exc:
                        if exc.code:
                            sys.exit(exc.code)
                    score = score_clip(out_dir, gt_dir, crop_border=4, name=case)
                    key = model or "vsrt"
                    row[f"{key}_psnr_y"], row[f"{key}_ssim_y"] = round(score.psnr_y, 3), round(score.ssim_y, 4)
                    row[f"{key}_gain_db"] = round(score.psnr_y - base.psnr_y, 3)
                    print(f"{case}: {key} {score.psnr_y:.3f} dB / {score.ssim_y:.4f}, bicubic {base.psnr_y:.3f} dB / "
                          f"{base.ssim_y:.4f}, gain {score.psnr_y - base.psnr_y:+.3f} dB", flush=True)
                results[case] = row
    summary = {}
    for model in models:
        key = model or "vsrt"
        summary[f"{key}_mean_gain_db"] = round(float(np.mean([r[f"{key}_gain_db"] for r in results.values()])), 3)
    print(json.dumps({"clips": results, **summary, "options": upscale_options}, indent=2))


if __name__ == "__main__":
    main()
