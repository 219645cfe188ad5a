"""What the neighbours add: a video model against its single-frame ablation, and against itself
with the neighbours taken away.

    python benchmarks/temporal.py --video WEIGHTS --single WEIGHTS [--windows 16] [--gt-scale 1] [--out FILE]
        [--crf 28 [--clean-flows]]

``--out`` also writes the report as JSON (what ``python -m vsrt_cli.train.bundle --temporal``
records in the manifest).

Held-out clips only (vsrt_cli/train/sources.py VAL_SOURCES), prepared as in training (GT = the
source at ``--gt-scale``, LR = BI, flows of whole LR frames by the video model's flow (DIS, or its SPyNet), cut to
each window, as the upscale pipeline does). Two sets of 5-frame windows, centre frame scored
(PSNR-Y, BT.601, 4-pixel border), whole windows through the model in fp32:

- ``real``: the clips as filmed; ``moving`` and ``static`` group the held-out sources that move
  and those that hardly do. ``motion_db`` is the PSNR between consecutive LR frames (higher =
  more alike; 45+ dB means the neighbours repeat the centre frame and cannot add information).
- ``pan``: the same held-out frames filmed by a panning camera (0.25-1.25 LR px/frame, fixed).

For each set: bicubic, the single-frame model, the video model, and the video model fed five
copies of the centre frame (``video_no_neighbours``). ``video - no_neighbours`` is what the
neighbours are worth to the video model; ``video - single`` is the margin the video model must
earn over its single-frame twin (issue #11: +0.3 dB on the moving held-out clips).
``--crf N``: every window's LR goes through libx264 at CRF N first (training's validation
round trip), the networks are told the QP its decoder reports, and the video model finds its
own flows in the compressed window (``--clean-flows``: it gets the clean window's flows, a
probe of what better flows would be worth). What the neighbours are worth to a
compression-aware model, where they could undo artefacts that change from frame to frame.
On pans, ``flow_epe_px`` is the video model's flow error against the known camera motion (a
flow trained end to end can break, and then its warped neighbours are all padding).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from vsrt_cli.inspect.metrics import psnr
from vsrt_cli.train.data import ValWindow, load_sequences, panned_val_windows, val_windows
from vsrt_cli.train.sources import MOVING_VAL_SOURCES, STATIC_VAL_SOURCES, VAL_SOURCES
from vsrt_cli.train.degrade import SCALE, bicubic_upscale
from vsrt_cli.train.loop import centre_prediction, pan_flow_error, to_image
from vsrt_cli.train.realdeg import compressed_windows
from vsrt_cli.zoo.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "train"
FRAMES = 5


def psnr_y(pred: torch.Tensor, gt: torch.Tensor) -> float:
    return psnr(to_image(pred), to_image(gt), y=True, crop_border=SCALE)


def lr_motion_db(window: ValWindow) -> float:
    """Mean PSNR between consecutive LR frames of the window."""
    lr = window.lr
    mse = (lr[1:] - lr[:-1]).square().mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return float((-10 * torch.log10(mse)).mean())


@torch.no_grad()
def window_scores(w: ValWindow, video: torch.nn.Module, single: torch.nn.Module) -> tuple[float, ...]:
    """``(bicubic, single, video, video without neighbours, motion_db, flow error)`` of one window."""
    c = FRAMES // 2
    gt = w.gt[c]
    still = w.lr[c : c + 1].expand(FRAMES, -1, -1, -1)
    return (
        psnr_y(bicubic_upscale(w.lr[c]).clamp(0, 1), gt),
        psnr_y(centre_prediction(single, w.lr, quant=w.quant), gt),
        psnr_y(centre_prediction(video, w.lr, w.flows, quant=w.quant), gt),
        psnr_y(centre_prediction(video, still, quant=w.quant), gt),
        lr_motion_db(w),
        pan_flow_error(video, [w]) if w.pan else float("nan"),
    )


def summary(rows: list[tuple[float, ...]]) -> dict[str, float]:
    """Means over windows (each window scored once, then grouped)."""
    m = np.mean(rows, axis=0)
    flow = {"flow_epe_px": round(float(m[5]), 3)} if not np.isnan(m[5]) else {}
    return {**flow,
        "windows": len(rows), "bicubic": round(m[0], 3), "single": round(m[1], 3),
        "video": round(m[2], 3), "video_no_neighbours": round(m[3], 3),
        "video_minus_single_db": round(m[2] - m[1], 3),
        "neighbours_worth_db": round(m[2] - m[3], 3), "motion_db": round(m[4], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, required=True, help="weights of the video (5-frame) model")
    parser.add_argument("--single", type=Path, required=True, help="weights of its single-frame ablation")
    parser.add_argument("--windows", type=int, default=16, help="windows per clip and set")
    parser.add_argument("--out", type=Path, help="also write the report (JSON) here")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "cache")
    parser.add_argument("--gt-scale", type=float, default=1.0, help="as the models were trained")
    parser.add_argument("--max-frames", type=int, default=150, help="as the models were trained")
    parser.add_argument("--spynet-from", type=Path, help="flows of this SPyNet run folder (the training cache's) "
                        "instead of the video model's own (its fp16 copy: the same up to rounding)")
    parser.add_argument("--crf", type=int, help="score the windows through libx264 at this CRF")
    parser.add_argument("--clean-flows", action="store_true", help="with --crf: the video model gets the "
                        "clean windows' flows instead of finding its own in the compressed ones")
    args = parser.parse_args()
    video, single = load_weights(args.video).eval(), load_weights(args.single).eval()
    spynet = video.flow_net if video.config.use_flow else None
    if video.spynet is not None and args.spynet_from is not None:
        from vsrt_cli.model.spynet import SPyNet
        from vsrt_cli.train.loop import load_spynet_weights

        spynet = SPyNet().eval()
        spynet.load_state_dict(load_spynet_weights(args.spynet_from))
    seqs = load_sequences(DATA, VAL_SOURCES, args.cache, args.gt_scale, args.max_frames, spynet)
    multiple = video.config.size_multiple
    sets = {
        "real": val_windows(seqs, FRAMES, args.windows, (48, 96), multiple),
        "pan": panned_val_windows(seqs, FRAMES, args.windows, (48, 96), multiple),
    }
    if args.crf is not None:
        sets = {name: [dataclasses.replace(c, flows=w.flows if args.clean_flows else None, pan=w.pan)
                       for w, c in zip(windows, compressed_windows(windows, args.crf))]
                for name, windows in sets.items()}
    results = {}
    groups = {"moving": MOVING_VAL_SOURCES, "static": STATIC_VAL_SOURCES,
              **{source: (source,) for source in VAL_SOURCES}}
    for name, windows in sets.items():
        scored = [(w.name.split("/")[0].split("@")[0], window_scores(w, video, single)) for w in windows]
        results[name] = {"all": summary([row for _, row in scored])}
        for group, sources in groups.items():
            mine = [row for source, row in scored if source in sources]
            if mine:
                results[name][group] = summary(mine)
        print(name, json.dumps({k: results[name][k] for k in ("all", "moving", "static") if k in results[name]}), flush=True)
    report = {"video": str(args.video), "single": str(args.single), "windows": args.windows,
              "crf": args.crf, "clean_flows": args.clean_flows, **results}
    print(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
