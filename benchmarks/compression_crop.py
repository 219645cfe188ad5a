"""A crop of one compressed held-out frame, upscaled by bicubic and by each model, side by side.

    python benchmarks/compression_crop.py -o crop.png [--clip NAME|PATH] [--frames 24] [--frame 12]
        [--crop 48x32+X+Y] [--crf 28] [--codec libx265] [--models vsrt-cpu-small,weights/x.pth] [upscale options]

The picture issue 14 asks for, in one command. The protocol is `benchmarks/quality.py
--compressed`'s, on one clip and one CRF: the first ``--frames`` frames of a held-out clip
(``--clip``: a VAL_SOURCES name of vsrt_cli/train/sources.py, read from ../shared/data/train/,
or a clip's path; never a training source), centre-cropped to at most 768x432 and to a multiple
of 4, are the ground truth; their BI x1/4 is encoded with libx264 (yuv420p; ``--codec``: another
of quality.py's) at ``--crf``; that
video file is upscaled by `vsrt upscale` with each of ``--models`` (a registry name, or a .pth
path passed as --weights), and its decoded frames by bicubic x4.

``--crop`` is in LR pixels (the codec's grid: an 8x8 block is 8 LR pixels; default: the 48x32
region on that grid where the GT frame has the most detail, so flat road or sky is not chosen);
the picture shows that region x4, in HR pixels, through `vsrt compare`'s code: bicubic,
each model, then the GT, each labelled with its PSNR-Y on the crop (the number first). Printed: the PSNR-Y of the
crop and of the whole frame (4-pixel border ignored, as in quality.py) for each.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from quality import CODEC_OPTIONS, MOVING_CROP, SHARED, encode_video, read_frames, write_folder

from vsrt_cli.inspect.compare import compare
from vsrt_cli.errors import VsrtError
from vsrt_cli.inspect.evaluate import iter_images
from vsrt_cli.io.excerpt import Crop
from vsrt_cli.inspect.metrics import psnr
from vsrt_cli.zoo.registry import default_name
from vsrt_cli.train.degrade import SCALE, bi_degrade, bicubic_upscale
from vsrt_cli.train.sources import TRAIN_SOURCES, VAL_SOURCES

TRAIN_DATA = SHARED / "data/train"
# hand-held real camera, near-lossless 1920x1080 source (its 768x432 centre is the GT): the only
# blocks in the picture are the ones this CRF makes
DEFAULT_CLIP = "pexels_ski_slope_frames"
DEFAULT_CROP_LR = (48, 32)


def held_out_clip(spec: str) -> Path:
    """A VAL_SOURCES name -> its first clip; a path -> itself, unless it is a training source's."""
    if spec in VAL_SOURCES:
        found = sorted((TRAIN_DATA / spec).glob(VAL_SOURCES[spec][0]))
        if not found:
            raise SystemExit(f"--clip {spec}: no {VAL_SOURCES[spec][0]} under {TRAIN_DATA / spec}")
        return found[0]
    path = Path(spec)
    if path.resolve().parent.name in TRAIN_SOURCES and path.resolve().parent.parent == TRAIN_DATA.resolve():
        raise SystemExit(f"--clip {spec}: a training source; give a held-out one ({', '.join(VAL_SOURCES)})")
    if not path.is_file():
        raise SystemExit(f"--clip {spec}: neither a held-out source ({', '.join(VAL_SOURCES)}) nor a file")
    return path


def busiest_crop(truth: np.ndarray, width: int, height: int, step: int = 8) -> Crop:
    """The ``width`` x ``height`` LR region, on a ``step``-pixel LR grid, where ``truth`` (the GT
    frame ``[H, W, 3]``) has the largest sum of |horizontal| + |vertical| differences."""
    y = truth.astype(np.float64).mean(axis=-1)
    energy = np.zeros_like(y)
    energy[:, 1:] += np.abs(np.diff(y, axis=1))
    energy[1:, :] += np.abs(np.diff(y, axis=0))
    table = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table
    w, h = width * SCALE, height * SCALE
    best = max(((table[y0 + h, x0 + w] - table[y0, x0 + w] - table[y0 + h, x0] + table[y0, x0], x0, y0)
                for y0 in range(0, truth.shape[0] - h + 1, step * SCALE)
                for x0 in range(0, truth.shape[1] - w + 1, step * SCALE)))
    return Crop(width, height, best[1] // SCALE, best[2] // SCALE)


def model_option(spec: str) -> tuple[str, list[str]]:
    """``vsrt-cpu-small`` -> its name and ``--model``; a .pth/.pt path -> its stem and ``--weights``."""
    if spec.endswith((".pth", ".pt")) or Path(spec).is_file():
        return Path(spec).stem, ["--weights", spec]
    return spec, ["--model", spec]


def upscale(source: Path, out_dir: Path, option: list[str], upscale_options: list[str]) -> Path:
    """``vsrt upscale SOURCE -o OUT_DIR`` (the real pipeline), exiting with its code on failure."""
    from vsrt_cli.cli.app import main as vsrt

    try:
        vsrt(["upscale", str(source), "-o", str(out_dir), "--quiet", *option, *upscale_options])
    except SystemExit as exc:
        if exc.code:
            sys.exit(exc.code)
    return out_dir


def frame_of(folder: Path, index: int) -> np.ndarray:
    return next(itertools.islice(iter_images(folder), index, None))


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    """Make the picture; returns ``{label: (crop PSNR-Y, frame PSNR-Y)}`` as printed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, required=True, help="the side-by-side PNG")
    parser.add_argument("--clip", default=DEFAULT_CLIP, help=f"a held-out source ({', '.join(VAL_SOURCES)}) or a clip's path")
    parser.add_argument("--frames", type=int, default=24, help="frames taken from the start of the clip")
    parser.add_argument("--frame", type=int, help="the frame shown, 0-based among them (default: the middle)")
    parser.add_argument("--crop", help="WxH+X+Y in LR pixels (default: the most detailed 48x32 on the 8-pixel grid)")
    parser.add_argument("--crf", type=int, default=28, help="CRF of the LR video")
    parser.add_argument("--codec", default="libx264", choices=tuple(CODEC_OPTIONS), help="its encoder")
    parser.add_argument("--models", help="comma-separated registry names or .pth paths (default: the bundled "
                        "defaults for image frames and for video)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args, upscale_options = parser.parse_known_args(argv)
    if args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it")
    frame = args.frames // 2 if args.frame is None else args.frame
    if not 0 <= frame < args.frames:
        parser.error(f"--frame {frame}: give 0..{args.frames - 1} (of the --frames {args.frames} taken)")
    names = args.models.split(",") if args.models else list(dict.fromkeys(filter(None, (default_name("frames"), default_name("video")))))
    models = [model_option(spec) for spec in names]
    gt = read_frames(held_out_clip(args.clip), args.frames, 1.0, MOVING_CROP)
    if frame >= len(gt):
        parser.error(f"--frame {frame}: the clip has only {len(gt)} frames")
    truth = gt[frame]
    lr_h, lr_w = gt.shape[1] // SCALE, gt.shape[2] // SCALE
    if args.crop:
        crop = Crop.parse(args.crop)
    else:
        crop = busiest_crop(truth, min(DEFAULT_CROP_LR[0], lr_w), min(DEFAULT_CROP_LR[1], lr_h))
    crop.check_inside(lr_w, lr_h, f"LR frame of {args.clip} (the GT is {gt.shape[2]}x{gt.shape[1]})")
    hr_crop = Crop(crop.width * SCALE, crop.height * SCALE, crop.x * SCALE, crop.y * SCALE)
    scores: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="vsrt-crop-") as tmp_dir:
        tmp = Path(tmp_dir)
        gt_dir = write_folder(tmp / "gt", gt)
        source = tmp / "lr.mp4"
        lr = encode_video(bi_degrade(gt), source, args.crf, args.codec)
        up = bicubic_upscale(torch.from_numpy(lr).permute(0, 3, 1, 2).float())
        folders = {"bicubic": write_folder(tmp / "bicubic", up.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())}
        for k, (label, option) in enumerate(models):
            label = label if label not in folders else f"{label} ({k + 1})"
            folders[label] = upscale(source, tmp / f"model{k}", option, upscale_options)
        for label, folder in folders.items():
            image = frame_of(folder, frame)
            scores[label] = (psnr(hr_crop.apply(image), hr_crop.apply(truth), y=True), psnr(image, truth, y=True, crop_border=4))
        # the number first: a label too wide for its panel is shortened at its end
        labels = [f"{crop_db:.2f} dB {label}" for label, (crop_db, _) in scores.items()] + ["GT"]
        for _ in compare([*folders.values(), gt_dir], args.output, labels=labels, frame=frame, crop=hr_crop, overwrite=args.overwrite):
            pass
    print(f"{args.clip} frame {frame} of {len(gt)}, {args.codec} CRF {args.crf}, LR crop {crop} (HR {hr_crop}); PSNR-Y against GT:")
    for label, (crop_db, frame_db) in scores.items():
        print(f"  {label}: crop {crop_db:.3f} dB, whole frame {frame_db:.3f} dB")
    print(f"side-by-side ({', '.join([*scores, 'GT'])}): {args.output}")
    return scores


if __name__ == "__main__":
    try:
        main()
    except VsrtError as exc:
        sys.exit(f"error: {exc}")
