"""Grow a training run's network without changing what it computes (issue #31).

``python -m vsrt_cli.train.grow --from weights/training/video5f --preset vsrt-cpu-small-5f-d3
--out runs/grow_d3`` writes a state file for a run of the bigger preset that continues the
source run: its step, compute, curve and schedule go on, every tensor the source had keeps its
value (weights, their running average and Adam's moments), and what the growth adds starts where
it computes nothing: a gated block's gate at zero (:class:`~vsrt_cli.model.blocks.TransformerBlock`),
an added residual block's second convolution at zero. ``--resume OUT`` then trains it, so the
grown run and the source compare at equal compute from the step they part.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

import torch

from vsrt_cli.errors import CheckpointError, ConfigError, VsrtError
from vsrt_cli.model import build_model
from vsrt_cli.train.checkpoint import CHECKPOINT, LOG, load_run_state, save_atomic
from vsrt_cli.train.config import TrainConfig
from vsrt_cli.train.steps import model_config, param_groups


def grown_tensors(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``new`` (a freshly built bigger network's state) with every tensor of ``old`` copied in,
    and each added residual block made the identity (its ``conv2`` zero). Raises
    :class:`CheckpointError` if a tensor of ``old`` is missing from ``new`` or changed shape."""
    lost = sorted(k for k in old if k not in new or new[k].shape != old[k].shape)
    if lost:
        raise CheckpointError(f"the grown network lacks or reshapes {len(lost)} of the run's tensors, e.g. {lost[:3]}; "
                              "growth may only add blocks")
    out = {}
    for key, value in new.items():
        if key in old:
            out[key] = old[key].clone()
        elif ".conv2." in key and not key.startswith(("spynet.", "delta.")):
            out[key] = torch.zeros_like(value)  # an added ResidualBlock: x + conv2(...) = x
        else:
            out[key] = value.clone()
    return out


def _adam_state(old_opt: dict, old_names: list[str], new_names: list[str], new_template: dict) -> dict:
    """Adam's state moved to the grown network's parameter order, by name (added ones: none)."""
    by_name = {name: old_opt["state"][i] for i, name in enumerate(old_names) if i in old_opt["state"]}
    state = {i: by_name[name] for i, name in enumerate(new_names) if name in by_name}
    # Groups keep the run's settings (the loop sets each group's rate every step); a group the
    # growth adds (a gate among the zero-initialised paths) takes the body's.
    old_groups = old_opt["param_groups"]
    groups = [{**old_groups[min(i, len(old_groups) - 1)], "params": group["params"]}
              for i, group in enumerate(new_template["param_groups"])]
    return {"state": state, "param_groups": groups}


def _ordered_names(net: torch.nn.Module, cfg: TrainConfig) -> tuple[list[str], list[dict]]:
    names = {id(p): n for n, p in net.named_parameters()}
    groups = param_groups(net, cfg)  # type: ignore[arg-type]
    return [names[id(p)] for g in groups for p in g["params"]], groups


def grow(source: Path, preset: str, out: Path) -> TrainConfig:
    """Write ``out/last.pt``: the run in ``source`` continued with the network ``preset``."""
    ckpt, cfg = load_run_state(source)
    grown_cfg = dataclasses.replace(cfg, preset=preset)
    old_net, new_net = build_model(model_config(cfg)), build_model(model_config(grown_cfg))
    if old_net.config == new_net.config:
        raise ConfigError(f"{preset} is the run's own network ({cfg.preset}); give a bigger preset")
    old_names, _ = _ordered_names(old_net, cfg)
    new_names, new_groups = _ordered_names(new_net, grown_cfg)  # freezes what the run freezes
    frozen = {k for k, p in new_net.named_parameters() if not p.requires_grad}
    fresh = {k: v for k, v in new_net.state_dict().items() if not k.startswith("spynet.")}
    model = grown_tensors(ckpt["model"], fresh)
    template = torch.optim.Adam([{"params": g["params"]} for g in new_groups]).state_dict()
    state = {
        **ckpt, "key": grown_cfg.resume_key(), "config": dataclasses.asdict(grown_cfg),
        "model": {k: v for k, v in model.items() if k not in frozen},
        "optimizer": _adam_state(ckpt["optimizer"], old_names, new_names, template),
        "grown_from": {"run": str(source), "preset": cfg.preset, "step": ckpt["step"], "compute": ckpt["compute"]},
    }
    if "ema" in ckpt:
        state["ema"] = {k: v for k, v in grown_tensors(ckpt["ema"], model).items() if k not in frozen}
    out.mkdir(parents=True, exist_ok=True)
    save_atomic(state, out / CHECKPOINT)
    if (source / LOG).exists():
        shutil.copy(source / LOG, out / LOG)
    return grown_cfg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsrt_cli.train.grow", description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="source", type=Path, required=True, help="run folder whose last.pt is grown")
    p.add_argument("--preset", required=True, help="the bigger model preset (e.g. vsrt-cpu-small-5f-d3)")
    p.add_argument("--out", type=Path, required=True, help="new run folder (then: python -m vsrt_cli.train --resume OUT)")
    args = p.parse_args(argv)
    try:
        if (args.out / CHECKPOINT).exists():
            raise ConfigError(f"{args.out / CHECKPOINT} exists; give another --out")
        cfg = grow(args.source, args.preset, args.out)
    except VsrtError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"{args.out / CHECKPOINT}: {cfg.preset}, continuing {args.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
