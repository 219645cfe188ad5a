"""How much of a compression-aware model's offsets each codec and strength wants, on training clips.

    python benchmarks/blend.py [--weights weights/vsrt-cpu-small-real.pth] [--codecs libx264,libx265]
        [--crfs 18,23,28,33] [--windows 6] [--out FILE]

A ``quant_blend`` network (vsrt_cli/model/quant.py) runs its clean weights plus a share ``s``
of trained compression offsets, ``s`` chosen from the quantiser its input reports. This
measures which share is best where: 5-frame windows (``--windows`` per clip, 64x96 LR centre
crops, prepared as in training) of six *training* clips (never the held-out ones, which judge
the result), each through the codec at each CRF (preset medium, one GOP, as
``benchmarks/quality.py`` encodes), the network told the QP its decoder reports (and blind),
every share in ``SHARES`` forced; PSNR-Y of the centre frame against the clean GT, the mean over
the windows with detail (bicubic below 40 dB). ``chosen`` is the share the shipped rule gives
the mean reported QP.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quality import CODEC_OPTIONS  # noqa: E402  (benchmarks/ is the script's folder)
from vsrt_cli.inspect.metrics import psnr  # noqa: E402
from vsrt_cli.model import quant as quantlib  # noqa: E402
from vsrt_cli.train.data import load_sequences, val_windows  # noqa: E402
from vsrt_cli.train.degrade import SCALE, bicubic_upscale  # noqa: E402
from vsrt_cli.train.loop import centre_prediction, to_image  # noqa: E402
from vsrt_cli.train.realdeg import round_trip  # noqa: E402
from vsrt_cli.zoo.weights import load_weights  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "train"
CLIPS = {  # training sources with detail and some motion
    "tos_excerpt": ("clip_01_tears_of_steel.mp4",), "pexels_squirrel": ("squirrel.mp4",),
    "bbb_0_30s": ("big_buck_bunny_0_30.webm",), "sintel_excerpt": ("clip_03_sintel.mp4",),
    "pexels_skateboard_puddle": ("vid_skateboard.mkv",), "intel_person_indoor": ("one-by-one-person-detection.mp4",),
}
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def y_psnr(pred: torch.Tensor, gt: torch.Tensor) -> float:
    return psnr(to_image(pred), to_image(gt), y=True, crop_border=SCALE)


@torch.no_grad()
def forced(net: torch.nn.Module, lr: torch.Tensor, quant: float, share: float) -> torch.Tensor:
    """The centre prediction with the blend forced to ``share`` (the network still told ``quant``)."""
    with mock.patch("vsrt_cli.model.vsrt.blend_scale", lambda q: torch.full_like(q, share)):
        return centre_prediction(net, lr, quant=quant)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights" / "vsrt-cpu-small-real.pth")
    parser.add_argument("--codecs", default="libx264,libx265")
    parser.add_argument("--crfs", default="18,23,28,33")
    parser.add_argument("--windows", type=int, default=6, help="windows per clip")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "cache")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    net = load_weights(args.weights).eval()
    if not net.config.quant_blend:
        parser.error(f"{args.weights} is not a quant_blend network")
    seqs = load_sequences(DATA, CLIPS, args.cache, 1.0, 150)
    windows = val_windows(seqs, 5, args.windows, (64, 96), net.config.size_multiple)
    windows = [w for w in windows if y_psnr(bicubic_upscale(w.lr[2]).clamp(0, 1), w.gt[2]) < 40]
    report = {"weights": str(args.weights), "windows": len(windows), "rows": []}
    for codec in args.codecs.split(","):
        for crf in (int(c) for c in args.crfs.split(",")):
            scores = {f"s={s:g}": [] for s in SHARES} | {f"blind s={s:g}": [] for s in SHARES}
            qps = []
            for w in windows:
                lr = w.lr.movedim(-3, -1).mul(255).round().to(torch.uint8).numpy()
                out, qp = round_trip(lr, codec, {"crf": str(crf), **CODEC_OPTIONS[codec]}, 250, None)
                qps.append(qp)
                x = torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255
                for s in SHARES:
                    scores[f"s={s:g}"].append(y_psnr(forced(net, x, qp, s), w.gt[2]))
                    scores[f"blind s={s:g}"].append(y_psnr(forced(net, x, math.nan, s), w.gt[2]))
            qp = float(np.nanmean(qps)) if not all(math.isnan(q) for q in qps) else math.nan
            chosen = float(quantlib.blend_scale(torch.tensor([qp]))[0])
            row = {"codec": codec, "crf": crf, "mean_qp": round(qp, 2), "chosen": round(chosen, 3),
                   **{k: round(float(np.mean(v)), 3) for k, v in scores.items()}}
            best = max((k for k in row if k.startswith("s=")), key=lambda k: row[k])
            print(json.dumps({**row, "best": best}), flush=True)
            report["rows"].append(row)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
