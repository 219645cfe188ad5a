"""Continue training runs on a CUDA machine for a fixed time, from a pack (no PyAV needed).

    python -m vsrt_cli.train.gpu --pack runs/pack/pack.npz \
        --runs weights/training/video5f weights/training/twin1f --minutes 8 --out OUT \
        [--batch 32] [--patch 48] [--precision bf16] [--device cuda]

Each run (its state file ``RUN/last.pt``: weights, average, optimiser, step, curve) gets an
equal share of ``--minutes`` of training, so a video run and its single-frame twin stay at
equal compute. Batches are random ``--patch`` crops of the pack's windows (and, for a
single-frame run, a random one of their frames), flipped and reversed in time at random, the
same loss and network as on the CPU, at the learning rate the run's schedule has reached.
Validation before and after, on the pack's subset of the run's held-out windows (``gpu_val_*``
in the curve; the run's next CPU validation scores the whole set). Writes
``OUT/NAME/last.pt`` and ``OUT/NAME/log.csv`` (the run continued; copy them back into the run
folder and resume it on the CPU with ``python -m vsrt_cli.train --resume RUN``) and
``OUT/report.json``. Imports only torch, numpy and einops (and vsrt_cli itself).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from vsrt_cli.model.vsrt import build_model
from vsrt_cli.train.checkpoint import (
    CHECKPOINT, LOG, append_log, load_run_state, read_log, restore_curve, save_atomic,
)
from vsrt_cli.train.ema import EMA
from vsrt_cli.train.steps import cosine, model_config, param_groups, sr_loss
from vsrt_cli.train.validate import ValWindow, evaluate, to_tensor


def load_pack(path: Path, device: torch.device) -> tuple[dict, dict[str, torch.Tensor], dict[str, list[ValWindow]]]:
    """``(meta, training tensors on device, validation windows on the CPU)``."""
    with np.load(path) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        train = {k: torch.from_numpy(data[f"train_{k}"]).to(device) for k in ("lr", "gt", "flow") if f"train_{k}" in data}
        val: dict[str, list[ValWindow]] = {}
        for name, windows in meta["val"].items():
            val[name] = []
            for i, w in enumerate(windows):
                key = f"{name}_val{i}"
                flows = None
                if f"{key}_flow" in data:
                    f = torch.from_numpy(data[f"{key}_flow"].astype(np.float32)).movedim(-1, 1)
                    flows = (f[:, 0:2].contiguous(), f[:, 2:4].contiguous())
                pan = tuple(w["pan"]) if w["pan"] is not None else None
                val[name].append(ValWindow(w["name"], to_tensor(data[f"{key}_lr"]), to_tensor(data[f"{key}_gt"]), pan, flows))
    return meta, train, val


def sample(
    train: dict[str, torch.Tensor], frames: int, batch: int, patch: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """A batch ``(lr [B, T, 3, p, p], gt [B, T, 3, 4p, 4p], flows)`` from the pack's windows."""
    lr_all, gt_all = train["lr"], train["gt"]
    n, t_pack, block = lr_all.shape[0], lr_all.shape[1], lr_all.shape[2]
    dev = lr_all.device

    def draw(high: int) -> int:
        return int(torch.randint(high, (1,), generator=gen))

    lrs, gts, flows = [], [], []
    for _ in range(batch):
        i, y, x = draw(n), draw(block - patch + 1), draw(block - patch + 1)
        t0 = draw(t_pack - frames + 1) if frames < t_pack else 0
        ts = slice(t0, t0 + frames)
        lr = lr_all[i, ts, y : y + patch, x : x + patch]
        gt = gt_all[i, ts, 4 * y : 4 * (y + patch), 4 * x : 4 * (x + patch)]
        flow = train["flow"][i, ts, y : y + patch, x : x + patch].float() if "flow" in train and frames > 1 else None
        if flow is not None:
            flow = flow.clone()
            flow[0, ..., 0:2] = 0  # the window's ends have no neighbour inside it
            flow[-1, ..., 2:4] = 0
        if draw(2):  # mirror left-right: x components change sign
            lr, gt = lr.flip(2), gt.flip(2)
            if flow is not None:
                flow = flow.flip(2) * torch.tensor([-1.0, 1.0, -1.0, 1.0], device=dev)
        if draw(2):  # time reversed: previous and next swap
            lr, gt = lr.flip(0), gt.flip(0)
            if flow is not None:
                flow = flow.flip(0)[..., [2, 3, 0, 1]]
        lrs.append(lr)
        gts.append(gt)
        if flow is not None:
            flows.append(flow)
    lr = torch.stack(lrs).movedim(-1, 2).float().div_(255)
    gt = torch.stack(gts).movedim(-1, 2).float().div_(255)
    if not flows:
        return lr, gt, None
    f = torch.stack(flows).movedim(-1, 2)
    return lr, gt, (f[:, :, 0:2].contiguous(), f[:, :, 2:4].contiguous())


def validate(net: torch.nn.Module, val: dict[str, list[ValWindow]]) -> dict[str, float]:
    """The CPU loop's validation metrics (``val_*`` and ``pan_val_*``), on the CPU."""
    net = net.to("cpu")
    out = evaluate(net, val["real"])
    out.update({f"pan_{k}": v for k, v in evaluate(net, val["pan"]).items()})
    return out


def continue_run(
    run: Path, pack: tuple[dict, dict[str, torch.Tensor], dict[str, list[ValWindow]]],
    seconds: float, out: Path, *, device: torch.device, batch: int, patch: int, precision: str,
    echo=print,
) -> dict:
    """Train ``run`` for ``seconds`` on ``device``; write its continued state to ``out``."""
    meta, train, val = pack
    ckpt, cfg = load_run_state(run)
    config = model_config(cfg)
    if config.use_flow and "flow" not in train:
        raise SystemExit(f"{run} trains a flow-using network; the pack has no flows (build it from a video run)")
    if cfg.degradation != "bi":
        raise SystemExit(
            f"{run} degrades its windows with video encoders (--degradation {cfg.degradation}); the pack holds "
            "BI windows only: continue this run on the CPU (python -m vsrt_cli.train --resume)"
        )
    torch.manual_seed(cfg.seed)
    net = build_model(config)
    net.load_state_dict(ckpt["model"], strict=False)  # a frozen SPyNet is not stored; flows are packed
    ema = EMA(net, cfg.ema) if cfg.ema > 0 else None
    if ema is not None:
        ema.load_state_dict(ckpt.get("ema", ckpt["model"]))
    before = validate(ema.net if ema else net, val)
    net.to(device).train()
    groups = param_groups(net, cfg)
    opt = torch.optim.Adam([{"params": g["params"]} for g in groups], lr=cfg.lr, betas=(0.9, 0.99))
    opt.load_state_dict(ckpt["optimizer"])
    if ema is not None:
        ema.net.to(device)
    lr_now = cosine(cfg, ckpt["compute"] / (cfg.minutes * 60))
    for group, spec in zip(opt.param_groups, groups):
        group["lr"] = lr_now * spec["lr_mul"]
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1_000_003 + ckpt["step"])
    step0, step, losses = ckpt["step"], ckpt["step"], []
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        lr, gt, flows = sample(train, config.num_frame, batch, patch, gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = sr_loss(net, lr, gt, flows, lr.new_zeros(lr.shape[0]))  # BI windows: clean
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update(net)
        step += 1
        if step % 50 == 0:
            losses.append(loss.item())
    sync()
    elapsed = time.monotonic() - start
    final = ema.net if ema is not None else net
    after = validate(final, val)
    net.to("cpu")
    out.mkdir(parents=True, exist_ok=True)
    if (run / LOG).exists():
        shutil.copy(run / LOG, out / LOG)
    else:  # the state file alone: its curve
        restore_curve(out, ckpt.get("curve"))
    gpu_s = ckpt.get("gpu_s", 0.0) + elapsed
    append_log(out, {"compute_s": round(ckpt["compute"], 1), "wall_s": round(ckpt["wall"] + elapsed, 1),
                     "step": step, "samples": ckpt.get("samples", step0 * cfg.batch) + (step - step0) * batch,
                     "lr": lr_now, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                     **{f"gpu_{k}": v for k, v in after.items()},  # the pack's subset, not val_*
                     "device": device.type, "gpu_s": round(gpu_s, 1)})
    frozen = {k for k, p in net.named_parameters() if not p.requires_grad}
    state = {**ckpt, "model": {k: v for k, v in net.state_dict().items() if k not in frozen},
             "optimizer": _to_cpu(opt.state_dict()), "step": step, "wall": ckpt["wall"] + elapsed,
             "gpu_s": gpu_s, "samples": ckpt.get("samples", step0 * cfg.batch) + (step - step0) * batch,
             "curve": read_log(out)}
    if ema is not None:
        state["ema"] = {k: v.cpu() for k, v in ema.net.state_dict().items() if k not in frozen}
    save_atomic(state, out / CHECKPOINT)
    report = {"run": str(run), "preset": cfg.preset, "stage": cfg.stage, "steps": step - step0,
              "seconds": round(elapsed, 1), "samples_per_s": round((step - step0) * batch / max(elapsed, 1e-9), 1),
              "batch": batch, "patch": patch, "precision": precision, "lr": lr_now,
              "val_before": before, "val_after": after}
    echo(json.dumps({k: report[k] for k in ("run", "steps", "seconds", "samples_per_s")}))
    return report


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsrt_cli.train.gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", type=Path, required=True)
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders (each with last.pt)")
    p.add_argument("--minutes", type=float, required=True, help="training time for all runs together")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=48)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes
    started = time.monotonic()
    pack = load_pack(args.pack, device)
    if args.patch > pack[0]["block"]:
        raise SystemExit(f"--patch {args.patch} is larger than the pack's windows ({pack[0]['block']} px)")
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "minutes": args.minutes, "pack_blocks": pack[0]["blocks"], "runs": []}
    args.out.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        seconds = args.minutes * 60 / len(args.runs)
        report["runs"].append(continue_run(
            run, pack, seconds, args.out / run.name, device=device, batch=args.batch, patch=args.patch,
            precision=args.precision, echo=lambda line: print(line, flush=True),
        ))
        (args.out / "report.json").write_text(json.dumps(report, indent=2))
    report["total_s"] = round(time.monotonic() - started, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({"total_s": report["total_s"], "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
