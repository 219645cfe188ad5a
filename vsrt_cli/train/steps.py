"""What one training step of a super-resolution run is, wherever it runs (CPU loop or the GPU
trainer, which has no PyAV): the network a run trains, its parameter groups, loss, schedule.
"""

from __future__ import annotations

import dataclasses
import math

import torch

SPYNET_FILE = "spynet.pt"

from vsrt_cli.errors import CheckpointError
from vsrt_cli.model.quant import delta_key
from vsrt_cli.model.vsrt import VSRT, VSRTConfig, build_model, get_config
from vsrt_cli.train.config import TrainConfig


def model_config(cfg: TrainConfig) -> VSRTConfig:
    """The network a main/ablation run trains: the preset, or its single-frame ablation (one
    frame, no flow, no neighbour paths: the twin the video model is compared with)."""
    config = get_config(cfg.preset)
    if cfg.stage == "ablation":
        return dataclasses.replace(
            config, num_frame=1, use_flow=False, centre_first=False, neighbour_gates=False, per_frame_queries=False
        )
    return config


def frozen_flow_net(cfg: TrainConfig) -> torch.nn.Module | None:
    """The frozen flow estimator whose whole-frame flows a run caches (None if it caches none):
    DIS for a ``flow="dis"`` preset, else SPyNet with the weights in ``spynet_from``."""
    if not cfg.cached_flows:
        return None
    net = build_model(model_config(cfg))
    if net.spynet is not None:
        from pathlib import Path

        net.spynet.load_state_dict(load_spynet_weights(Path(cfg.spynet_from)))
    return net.flow_net.eval()


def load_spynet_weights(run_dir) -> dict[str, torch.Tensor]:
    """The ``spynet.pt`` of a spynet-stage run folder."""
    path = run_dir / SPYNET_FILE
    if not path.exists():
        raise CheckpointError(
            f"{path} not found: train the flow first with "
            f"`python -m vsrt_cli.train --stage spynet --out {run_dir} --minutes N`"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def is_neighbour_path(name: str) -> bool:
    """Parameters of the zero-initialised paths a warm start adds: the neighbour paths
    (``neighbour_gates`` presets), the quantiser's modulation (``quant_film``) and the gate of a
    grown block (``gated_blocks``)."""
    return (
        "conv_neighbour" in name or name.endswith("cross_gate") or name.startswith("early_fusion.")
        or name.startswith("quant.") or name.endswith(".gate")
    )


def supervised_positions(config: VSRTConfig, frames: int) -> list[int] | None:
    """The window positions a training step computes and supervises: every frame for the
    paper's joint network (None), the centre for a per-frame-query network (each frame is its
    own pass there; the centre is the frame a stride-1 run keeps)."""
    return [frames // 2] if config.per_frame_queries else None


def sr_loss(
    net: VSRT, lr: torch.Tensor, gt: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor] | None,
    quant: torch.Tensor | None = None,
) -> torch.Tensor:
    """Charbonnier loss of one training batch (``lr [B, T, 3, h, w]``, ``gt [B, T, 3, 4h, 4w]``,
    ``quant [B]`` for a ``quant_film`` network) on the positions :func:`supervised_positions` names."""
    keep = supervised_positions(net.config, lr.shape[1])
    pred = net(lr, flows, keep=keep, quant=quant)
    return charbonnier(pred.float(), gt if keep is None else gt[:, keep])


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean ``sqrt((pred - target)^2 + eps^2)`` over all elements."""
    return torch.sqrt((pred - target).square() + eps * eps).mean()


def cosine(cfg: TrainConfig, progress: float) -> float:
    """Learning rate at ``progress`` in [0, 1] of the budget."""
    progress = min(max(progress, 0.0), 1.0)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))



def is_added_path(name: str) -> bool:
    """Parameters a warm start adds to the network it starts from (zero-initialised): the
    neighbour paths and the quantiser's modulation, and a ``quant_blend`` network's offsets."""
    return is_neighbour_path(name) or name.startswith("delta.")


def param_groups(net: VSRT, cfg: TrainConfig) -> list[dict]:
    """Adam groups ``{"params", "lr_mul"}``: the body, the neighbour paths (if any) and, when
    the flow trains, SPyNet; a frozen SPyNet gets ``requires_grad=False``. A ``quant_blend``
    network keeps its body (the clean network) frozen and trains the offsets instead, each at
    its weight's multiplier."""
    named = [(n, p) for n, p in net.named_parameters() if not n.startswith("spynet.")]
    if net.delta is not None:
        for n, p in net.blended_parameters():
            p.requires_grad_(False)
        offset_of = {delta_key(n): n for n, _ in net.blended_parameters()}
        named = [(offset_of[n[len("delta."):]] if n.startswith("delta.") else n, p) for n, p in named if p.requires_grad]
    groups = [{"params": [p for n, p in named if not is_neighbour_path(n)], "lr_mul": 1.0}]
    neighbour = [p for n, p in named if is_neighbour_path(n)]
    if neighbour:
        groups.append({"params": neighbour, "lr_mul": cfg.neighbour_lr_mul})
    flow_params = list(net.spynet.parameters()) if net.spynet is not None else []
    if cfg.stage == "main" and cfg.flow_lr_mul > 0:
        groups.append({"params": flow_params, "lr_mul": cfg.flow_lr_mul})
    else:
        for p in flow_params:
            p.requires_grad_(False)
    return groups
