"""The data report: how much every source moves at the training scale, and what it gives.

    python -m vsrt_cli.train.report [--gt-scale 1] [--max-frames 150] [--frames 5]
        [--spynet-from weights/pretrained | --flow-dis]

For each source (training and held out): sequences, frames, LR size, the mean PSNR between
consecutive LR frames (BI x4 of the GT; lower = more motion: 45+ dB means the neighbours
repeat the centre frame), how many ``frames``-long training windows it gives, and with cached
flows the same PSNR after warping the next frame onto each frame (``lr_warped_db``: above
``lr_motion_db`` where the flow helps; the border is cropped there, so static sources can read a
little higher). Decodes into
the training cache, so running it first also prepares a run (``--flow-dis`` or ``--spynet-from`` adds the
cached whole-frame flows a video-model run reads).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vsrt_cli.train.config import DATA_ROOT
from vsrt_cli.train.data import Sequence, load_sequences, source_of
from vsrt_cli.train.sources import MOVING_VAL_SOURCES, TRAIN_SOURCES, VAL_SOURCES


def motion_db(lr: np.ndarray) -> float:
    """Mean PSNR (peak 255) between consecutive frames of ``lr [N, h, w, 3]`` uint8."""
    scores = []
    for a, b in zip(lr[:-1], lr[1:]):
        mse = np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2)
        scores.append(10 * np.log10(255.0**2 / max(float(mse), 1e-10)))
    return float(np.mean(scores)) if scores else float("nan")


def warped_motion_db(lr: np.ndarray, flows: np.ndarray, border: int = 4) -> float:
    """Mean PSNR between each frame and the next one warped onto it by the cached flow
    (``flows [N, h, w, 4]``, channels 2:4 = to next), ``border`` px cropped: how much closer
    the flow brings a neighbour (compare :func:`motion_db` on the same crop)."""
    import torch

    from vsrt_cli.model.layers import flow_warp

    scores = []
    for j in range(len(lr) - 1):
        nxt = torch.from_numpy(np.asarray(lr[j + 1], dtype=np.float32)).permute(2, 0, 1)[None]
        flow = torch.from_numpy(np.asarray(flows[j, ..., 2:4], dtype=np.float32)).permute(2, 0, 1)[None]
        warped = flow_warp(nxt, flow)[0].permute(1, 2, 0).numpy()
        diff = warped - np.asarray(lr[j], dtype=np.float32)
        mse = np.mean(diff[border:-border, border:-border] ** 2)
        scores.append(10 * np.log10(255.0**2 / max(float(mse), 1e-10)))
    return float(np.mean(scores)) if scores else float("nan")


def source_rows(seqs: list[Sequence], frames: int, split: str) -> list[dict[str, object]]:
    """One row per source of ``seqs``."""
    rows = []
    for source in sorted({source_of(s.name) for s in seqs}):
        mine = [s for s in seqs if source_of(s.name) == source]
        pairs = sum(len(s) - 1 for s in mine)
        motion = sum(motion_db(np.asarray(s.lr)) * (len(s) - 1) for s in mine if len(s) > 1) / max(pairs, 1)
        rows.append({
            "source": source, "split": split, "sequences": len(mine),
            "frames": sum(len(s) for s in mine),
            "lr_size": "/".join(sorted({f"{s.lr.shape[2]}x{s.lr.shape[1]}" for s in mine})),
            "lr_motion_db": round(motion, 2),
            "windows": sum(max(len(s) - frames + 1, 0) for s in mine),
        })
        if all(s.flows is not None for s in mine) and pairs:
            warped = sum(warped_motion_db(s.lr, s.flows) * (len(s) - 1) for s in mine if len(s) > 1)
            rows[-1]["lr_warped_db"] = round(warped / pairs, 2)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsrt_cli.train.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt-scale", type=float, default=1.0)
    p.add_argument("--max-frames", type=int, default=150)
    p.add_argument("--frames", type=int, default=5, help="window length")
    p.add_argument("--data-root", type=Path, default=Path(DATA_ROOT))
    p.add_argument("--cache", type=Path, default=Path("runs/cache"))
    p.add_argument("--spynet-from", type=Path, help="also cache the whole-frame flows of this SPyNet")
    p.add_argument("--flow-dis", action="store_true", help="also cache DIS whole-frame flows (flow='dis' presets)")
    args = p.parse_args(argv)
    spynet = None
    if args.flow_dis:
        from vsrt_cli.model.dis import DISFlow

        spynet = DISFlow()
    elif args.spynet_from is not None:
        import torch

        from vsrt_cli.model.spynet import SPyNet
        from vsrt_cli.train.loop import load_spynet_weights

        spynet = SPyNet()
        spynet.load_state_dict(load_spynet_weights(args.spynet_from))
        torch.set_grad_enabled(False)
    rows = []
    for split, sources in (("train", TRAIN_SOURCES), ("held-out", VAL_SOURCES)):
        seqs = load_sequences(args.data_root, sources, args.cache, args.gt_scale, args.max_frames, spynet)
        rows += source_rows(seqs, args.frames, split)
    for row in rows:
        if row["source"] in MOVING_VAL_SOURCES:
            row["split"] = "held-out (moving)"
    header = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
    print(f"gt_scale={args.gt_scale:g}, up to {args.max_frames} frames per sequence, {args.frames}-frame windows")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(header, widths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
