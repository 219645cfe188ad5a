"""Put a compression-aware run on a newer clean body (issue #31).

``python -m vsrt_cli.train.rebase --run weights/training/video5f_qb --body weights/training/branches/video5f-N
--out runs/qb_rebased`` writes a state file for the ``quant_blend`` run of ``--run`` whose frozen
body is ``--body`` (a finished-run folder of the clean network it was trained from, trained
further). Everything the run learnt carries over: its feature modulation, offsets, their running
average, Adam's moments, step, compute and curve. Told a clean input, the rebased network is the
new body exactly (:mod:`vsrt_cli.model.quant`).

The offsets are carried, not copied: each becomes ``offset + old body - new body``, so that with
all of the offset blended in (QP 32 and up) the network computes exactly what the run's did, and
in between it blends the new clean body with the old compressed network. Copied unchanged
(``--keep-offsets``), the old offsets act on a body they were not trained with: on the shipped
pair that lost 0.09 dB of CRF 28 validation, and 15 compute-min of training won back 0.03
(weights/training/README.md). ``--resume OUT`` then validates the rebased network first and trains
on from it (``--max-steps`` its step: only that validation, for shipping it as it is).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

import torch

from vsrt_cli.errors import ConfigError, VsrtError
from vsrt_cli.model import build_model
from vsrt_cli.model.quant import delta_key
from vsrt_cli.train.checkpoint import CHECKPOINT, LOG, load_run_state, save_atomic
from vsrt_cli.train.loop import body_weights
from vsrt_cli.train.steps import model_config


def carried(offsets: dict[str, torch.Tensor], old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``offsets`` (a state's ``delta.*`` entries among others, left as they are) moved from the
    body ``old`` to the body ``new`` (parameter name -> tensor): ``old + offset`` is kept."""
    out = dict(offsets)
    for name, weight in new.items():
        key = f"delta.{delta_key(name)}"
        if key in out:
            out[key] = out[key] + (old[name].to(out[key].dtype) - weight.to(out[key].dtype))
    return out


def rebase(run: Path, body: Path, out: Path, *, carry: bool = True) -> dict:
    """Write ``out/last.pt``: the ``quant_blend`` run in ``run`` with its frozen body from
    ``body``; returns the new run's settings. The body must fit the run's network. ``carry``:
    the offsets keep what full blending computed (see the module docstring)."""
    ckpt, cfg = load_run_state(run)
    config = model_config(cfg)
    if not config.quant_blend:
        raise ConfigError(f"{run} trains {cfg.preset}, which has no frozen body; rebase a compression-aware "
                          "(quant_blend) run")
    if (out / CHECKPOINT).exists():
        raise ConfigError(f"{out / CHECKPOINT} exists; give another --out")
    net = build_model(config)
    new = body_weights(str(body), net)  # raises CheckpointError if it does not fit
    if Path(cfg.init_from or "").resolve() == body.resolve():
        raise ConfigError(f"{run} already stands on {body}")
    new_cfg = dataclasses.replace(cfg, init_from=str(body))
    rebased = list(ckpt.get("rebased", [])) + [
        {"step": ckpt["step"], "compute": ckpt["compute"], "from": cfg.init_from, "to": str(body), "carried": carry}]
    # the curve's last validation scored the old network: the resume validates this one first
    state = {**ckpt, "key": new_cfg.resume_key(), "config": dataclasses.asdict(new_cfg), "rebased": rebased,
             "validate_first": True}
    if carry:
        blended = {name for name, _ in net.blended_parameters()}
        old = {k: v for k, v in body_weights(cfg.init_from, net).items() if k in blended}
        new = {k: v for k, v in new.items() if k in blended}
        state["model"] = carried(ckpt["model"], old, new)
        if "ema" in ckpt:
            state["ema"] = carried(ckpt["ema"], old, new)
    out.mkdir(parents=True, exist_ok=True)
    save_atomic(state, out / CHECKPOINT)
    if (run / LOG).exists() and (run / LOG).resolve() != (out / LOG).resolve():
        shutil.copy(run / LOG, out / LOG)
    return dataclasses.asdict(new_cfg)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsrt_cli.train.rebase", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="the compression-aware run folder (its last.pt)")
    p.add_argument("--body", type=Path, required=True, help="finished-run folder of the newer clean network")
    p.add_argument("--out", type=Path, required=True, help="new run folder (then: python -m vsrt_cli.train --resume OUT)")
    p.add_argument("--keep-offsets", action="store_true", help="copy the offsets unchanged instead of carrying them")
    args = p.parse_args(argv)
    try:
        rebase(args.run, args.body, args.out, carry=not args.keep_offsets)
    except VsrtError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"{args.out / CHECKPOINT}: {args.run} on the body {args.body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
