"""The README's opening picture: bicubic | vsrt | ground truth on a held-out CC-BY clip.

    python benchmarks/readme_picture.py [-o docs/compare.png] [--frames 9] [--frame 4] \
        [--crop 480x270+80+60] [--model NAME]

The clip is the held-out Caminandes excerpt (Caminandes 1: Llama Drama, (c) 2013 Blender
Foundation, caminandes.com, CC-BY 3.0; never trained on: VAL_SOURCES in
vsrt_cli/train/sources.py) at its full 640x360. Its first ``--frames`` frames are the ground
truth; their MATLAB-bicubic x1/4 (160x90, the BI protocol) is upscaled by `vsrt upscale` (the
default model for a folder of frames, or ``--model``) and by bicubic x4, and `vsrt compare`
writes frame ``--frame`` of the three side by side, labelled, cropped to ``--crop`` (pixels of
the 640x360 output) with the PSNR-Y of each printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import SHARED, read_frames, write_folder  # noqa: E402

from vsrt_cli.cli.app import main as vsrt  # noqa: E402
from vsrt_cli.inspect.evaluate import score_clip  # noqa: E402
from vsrt_cli.train.degrade import bi_degrade, bicubic_upscale  # noqa: E402

CLIP = SHARED / "data/train/caminandes_excerpt/clip_02_caminandes.mp4"


def run(argv: list[str]) -> None:
    try:
        vsrt(argv)
    except SystemExit as exc:
        if exc.code:
            raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", type=Path, default=Path("docs/compare.png"))
    p.add_argument("--frames", type=int, default=9, help="frames upscaled (the model's window needs a few)")
    p.add_argument("--frame", type=int, default=4, help="the frame shown")
    p.add_argument("--crop", default="480x270+80+60", help="WxH+X+Y of the 640x360 output")
    p.add_argument("--model", help="model name (default: vsrt's default for a folder of frames)")
    p.add_argument("--clip", type=Path, default=CLIP)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        gt = read_frames(args.clip, args.frames)
        lr = bi_degrade(gt)
        bicubic = bicubic_upscale(torch.from_numpy(lr).permute(0, 3, 1, 2).float())
        bicubic = bicubic.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        folders = {"truth": write_folder(tmp / "gt", gt), "lr": write_folder(tmp / "lr", lr),
                   "bicubic": write_folder(tmp / "bicubic", bicubic)}
        out = tmp / "vsrt"
        run(["upscale", str(folders["lr"]), "-o", str(out), "--quiet", *(["--model", args.model] if args.model else [])])
        for name, folder in (("bicubic", folders["bicubic"]), ("vsrt", out)):
            score = score_clip(folder, folders["truth"], crop_border=4, name=name)
            print(f"{name}: PSNR-Y {score.psnr_y:.2f} dB, SSIM-Y {score.ssim_y:.4f} over {score.frames} frames")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        run(["compare", str(folders["bicubic"]), str(out), str(folders["truth"]), "-o", str(args.output),
             "--label", "bicubic x4", "--label", "vsrt x4", "--label", "ground truth",
             "--frame", str(args.frame), "--crop", args.crop, "--overwrite", "--quiet"])
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
