"""Pack a run's training data into one small file for a machine without PyAV (the GPU trainer).

    python -m vsrt_cli.train.pack --run weights/training/video5f --out runs/pack/pack.npz \
        [--mib 40] [--block 56] [--val-windows 2] [--seed 1]

The pack holds what the run's CPU loop samples, decoded and degraded: ``blocks`` windows of
``T`` frames (the preset's window) of ``block x block`` LR pixels, drawn exactly as training
windows are (each source equally likely, the run's share of camera-motion windows, augmented),
with their GT and the whole-frame flows cut to them; and ``--val-windows`` of the run's
validation windows per held-out sequence (real and panned, with the flows its validation uses,
chosen as the run chooses them), so the GPU trainer can watch the same held-out clips (a subset:
the run's whole validation set would fill the pack; the CPU validates on all of it again). As many blocks as fit in ``--mib`` (compressed ``.npz``, uint8 frames,
float16 flows). Build it on the CPU machine; it travels to the GPU machine.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch

from vsrt_cli.model.spynet import window_flows
from vsrt_cli.train.checkpoint import load_run_state
from vsrt_cli.train.config import TrainConfig
from vsrt_cli.train.data import Motion, Sequence, WindowSampler, load_sequences, panned_val_windows, val_windows
from vsrt_cli.train.sources import TRAIN_SOURCES, VAL_SOURCES
from vsrt_cli.train.steps import frozen_flow_net, model_config
from vsrt_cli.train.validate import VAL_FRAMES, ValWindow

PACK_FRAMES = 5  # every window is packed at 5 frames; a single-frame run takes one of them


def _uint8(x: torch.Tensor) -> np.ndarray:
    """``[T, 3, H, W]`` float in [0, 1] (exact multiples of 1/255) -> ``[T, H, W, 3]`` uint8."""
    return (x.movedim(-3, -1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def val_arrays(windows: list[ValWindow], spynet: torch.nn.Module | None) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The validation windows as arrays; windows without cut flows get SPyNet's flows of the
    window itself, as the CPU validation computes them (none for a flow-less model)."""
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for i, w in enumerate(windows):
        centre = w.gt.shape[0] // 2  # only the centre frame is scored: its GT alone
        arrays[f"val{i}_lr"], arrays[f"val{i}_gt"] = _uint8(w.lr), _uint8(w.gt[centre : centre + 1])
        flows = w.flows
        if flows is None and spynet is not None:
            with torch.no_grad():
                to_prev, to_next = window_flows(spynet, w.lr[None])
            flows = (to_prev[0], to_next[0])
        if flows is not None:
            arrays[f"val{i}_flow"] = torch.cat(flows, dim=1).movedim(1, -1).numpy().astype(np.float16)
        meta.append({"name": w.name, "pan": w.pan})
    return arrays, meta


def build_pack(
    cfg: TrainConfig, train: list[Sequence], val_sets: dict[str, list[ValWindow]],
    spynet: torch.nn.Module | None, out: Path, *, mib: float, block: int, seed: int,
) -> dict:
    """Write the pack for ``cfg`` (see the module docstring); returns its metadata."""
    flows = cfg.cached_flows
    motion = Motion(cfg.motion, cfg.motion_speed, cfg.motion_jitter)
    sampler = WindowSampler(train, PACK_FRAMES, block, motion, flows=flows)
    rng = np.random.default_rng([seed, 7])
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {"frames": PACK_FRAMES, "block": block, "flows": flows, "val": {}}
    for name, windows in val_sets.items():
        val, names = val_arrays(windows, spynet if flows else None)
        arrays.update({f"{name}_{k}": v for k, v in val.items()})
        meta["val"][name] = names
    base = _size(arrays)
    budget = mib * 2**20
    if base > 0.5 * budget:
        raise ValueError(f"the validation windows alone take {base / 2**20:.1f} MiB of the {mib:g} MiB; pack fewer")
    lrs: list[np.ndarray] = []
    gts: list[np.ndarray] = []
    fls: list[np.ndarray] = []
    per_block = 0.0
    while True:  # draw blocks until the measured size per block says the next 16 would not fit
        lr, gt, flow, _ = sampler.sample(rng)  # BI windows: quant 0
        lrs.append(lr)
        gts.append(gt)
        if flows:
            fls.append(flow.astype(np.float16))
        if len(lrs) % 16 == 0:
            size = _size({**arrays, **_blocks(lrs, gts, fls)})
            per_block = (size - base) / len(lrs)
            if size + 16 * per_block > budget:
                break
    keep = len(lrs)
    while True:  # trim by the estimate, then check once more
        keep = min(keep, int((budget - base) / per_block * 0.98))
        payload = {**arrays, **_blocks(lrs[:keep], gts[:keep], fls[:keep])}
        size = _size(payload)
        if size <= budget:
            break
        per_block = (size - base) / keep
    lrs, gts, fls = lrs[:keep], gts[:keep], fls[:keep]
    meta["blocks"] = len(lrs)
    meta["config"] = {k: v for k, v in cfg.__dict__.items()}
    payload["meta"] = np.frombuffer(json.dumps(meta, default=str).encode(), dtype=np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, **payload)
    tmp.replace(out)
    return meta


def _blocks(lrs: list, gts: list, fls: list) -> dict[str, np.ndarray]:
    out = {"train_lr": np.stack(lrs), "train_gt": np.stack(gts)}
    if fls:
        out["train_flow"] = np.stack(fls)
    return out


def _size(arrays: dict[str, np.ndarray]) -> int:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.tell()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsrt_cli.train.pack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="run folder whose last.pt holds the settings")
    p.add_argument("--out", type=Path, required=True, help="the .npz to write")
    p.add_argument("--mib", type=float, default=40.0)
    p.add_argument("--block", type=int, default=56, help="LR size of a packed window")
    p.add_argument("--val-windows", type=int, default=2, help="validation windows per held-out sequence and set")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    _, cfg = load_run_state(args.run)
    spynet = frozen_flow_net(cfg)
    root, cache = Path(cfg.data_root), Path(cfg.cache)
    train = load_sequences(root, TRAIN_SOURCES, cache, cfg.gt_scale, cfg.max_frames, spynet)
    val = load_sequences(root, VAL_SOURCES, cache, cfg.gt_scale, cfg.max_frames, spynet)
    multiple = model_config(cfg).size_multiple
    sets = {
        "real": val_windows(val, VAL_FRAMES, args.val_windows, cfg.val_size, multiple),
        "pan": panned_val_windows(val, VAL_FRAMES, args.val_windows, cfg.val_size, multiple),
    }
    meta = build_pack(cfg, train, sets, spynet, args.out, mib=args.mib, block=args.block, seed=args.seed)
    print(f"{args.out}: {meta['blocks']} windows of {PACK_FRAMES}x{args.block}x{args.block} LR, "
          f"{sum(len(v) for v in meta['val'].values())} validation windows, "
          f"{args.out.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
