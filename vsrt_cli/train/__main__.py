"""``python -m vsrt_cli.train --stage spynet|main|ablation --out runs/NAME --minutes N``.

Rerunning the same command resumes from ``runs/NAME/last.pt``; the log is ``runs/NAME/log.csv``.
``python -m vsrt_cli.train --resume DIR [--minutes N] [--flows-from degraded]`` resumes the run
whose state is ``DIR/last.pt`` with the settings stored in it (on any machine: the state file is
the whole run); budget, cadence, precision and the flows' source may change.
"""

from __future__ import annotations

import os

# Before torch starts OpenMP: idle threads sleep instead of spinning. On a shared 2-core CPU
# spinning made a step ~5x slower in wall time and inflated the CPU time the budget counts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from vsrt_cli.errors import VsrtError  # noqa: E402
from vsrt_cli.train.config import STAGES, TrainConfig, stage_defaults  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vsrt_cli.train", description=__doc__)
    p.add_argument("--stage", choices=STAGES)
    p.add_argument("--out", type=Path, help="run folder (checkpoint, log.csv, weights)")
    p.add_argument("--resume", type=Path, help="run folder whose last.pt holds the settings (instead of --stage/--out)")
    p.add_argument("--minutes", type=float, help="compute budget (CPU time / threads) over all resumes")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--patch", type=int, help="LR crop size")
    p.add_argument("--lr", type=float)
    p.add_argument("--gt-scale", type=float, help="downscale sources by this for cleaner GT")
    p.add_argument("--flow-lr-mul", type=float, help="SPyNet lr multiplier in the main stage (0 freezes)")
    p.add_argument("--spynet-from", help="run folder of the spynet stage (default runs/spynet)")
    p.add_argument("--init-from", help="finished main/ablation run folder whose network warm-starts this run")
    p.add_argument("--precision", choices=("fp32", "bf16"), help="bf16 autocast (about 2x faster on AMX CPUs)")
    p.add_argument("--motion", type=float, help="share of camera-motion windows made from single real frames (0-1)")
    p.add_argument("--motion-speed", type=float, help="largest pan speed of motion windows, LR px/frame")
    p.add_argument("--motion-jitter", type=float, help="hand-held jitter of motion windows, LR px")
    p.add_argument("--preset", help="model preset (default vsrt-cpu-small)")
    p.add_argument("--threads", type=int)
    p.add_argument("--degradation", choices=("bi", "real"), help="LR windows: BI protocol, or blur/noise/video compression")
    p.add_argument("--clean-share", type=float, help="with --degradation real: share of windows kept BI (default 0.3)")
    p.add_argument("--flows-from", choices=("clean", "degraded"),
                   help="with --degradation real: flows of the clean frames, or estimated on each degraded window")
    p.add_argument("--ema", type=float, help="decay of the weight average that is validated and exported (0: off)")
    p.add_argument("--neighbour-lr-mul", type=float, help="lr multiplier of the zero-initialised neighbour paths")
    p.add_argument("--max-frames", type=int, help="frames decoded per sequence")
    p.add_argument("--val-minutes", type=float, help="compute minutes between validations")
    p.add_argument("--checkpoint-minutes", type=float, help="wall minutes between checkpoints")
    p.add_argument("--max-steps", type=int, help="stop this session at this step (the budget is unchanged)")
    args = p.parse_args(argv)
    if args.resume is None and (args.stage is None or args.out is None or args.minutes is None):
        p.error("give --stage, --out and --minutes (a new run), or --resume DIR")
    if args.resume is not None and (args.stage is not None or args.out is not None):
        p.error("--resume DIR takes its settings from DIR/last.pt; drop --stage/--out")
    return args


def resumed_config(args: argparse.Namespace) -> TrainConfig:
    """The settings stored in ``--resume``'s state file; budget and cadence may be changed."""
    from vsrt_cli.train.checkpoint import load_run_state

    loose = {"minutes": args.minutes, "threads": args.threads, "val_minutes": args.val_minutes,
             "checkpoint_minutes": args.checkpoint_minutes, "flows_from": args.flows_from,
             "precision": args.precision}
    return load_run_state(args.resume, loose)[1]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from vsrt_cli.train.loop import run  # after argument errors, torch imports are slow

    try:
        if args.resume is not None:
            cfg, out = resumed_config(args), args.resume
        else:
            cfg, out = stage_defaults(
                args.stage, args.minutes, seed=args.seed, batch=args.batch, patch=args.patch, lr=args.lr,
                gt_scale=args.gt_scale, flow_lr_mul=args.flow_lr_mul, spynet_from=args.spynet_from,
                preset=args.preset, threads=args.threads, init_from=args.init_from,
                precision=args.precision, motion=args.motion, motion_speed=args.motion_speed,
                motion_jitter=args.motion_jitter, ema=args.ema, degradation=args.degradation,
                clean_share=args.clean_share, flows_from=args.flows_from, neighbour_lr_mul=args.neighbour_lr_mul,
                max_frames=args.max_frames, val_minutes=args.val_minutes,
                checkpoint_minutes=args.checkpoint_minutes,
            ), args.out
        run(cfg, out, max_steps=args.max_steps, echo=lambda line: print(line, flush=True))
    except VsrtError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
