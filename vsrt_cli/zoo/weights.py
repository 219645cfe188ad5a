"""Weights files: vsrt's own format (config + state dict) and the authors' checkpoints.

A vsrt weights file is ``{"format": "vsrt-weights/1", "config": {...VSRTConfig fields},
"state_dict": {...}}``, saved with ``torch.save`` and always read with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from vsrt_cli.errors import CheckpointError
from vsrt_cli.model import VSRT, VSRTConfig, get_config, load_official
from vsrt_cli.model.official import read_checkpoint

FORMAT = "vsrt-weights/1"


def save_weights(model: VSRT, path: Path, *, half: bool = False, extra: dict[str, Any] | None = None) -> None:
    """Write ``model`` in vsrt's format (fp16 tensors if ``half``), atomically."""
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "config": dataclasses.asdict(model.config), "state_dict": state, **(extra or {})}
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_weights(path: Path, preset: str | None = None) -> VSRT:
    """A model in eval mode from a vsrt weights file, or from an official checkpoint (then
    ``preset`` names the official configuration, e.g. ``vsrt-reds``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}; check the path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read weights file {path}: {str(exc).splitlines()[0]}; it must be a PyTorch "
            "weights file holding only tensors"
        ) from exc
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        try:
            config = VSRTConfig(**payload["config"])
        except TypeError as exc:
            raise CheckpointError(f"{path}: its model config is not one this vsrt knows ({exc}); upgrade vsrt") from exc
        model = VSRT(config)
        state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
        if not config.use_flow:  # older single-frame files carried an unused SPyNet
            state = {k: v for k, v in state.items() if not k.startswith("spynet.")}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit their own config: {str(exc).splitlines()[0]}") from exc
        return model.eval()
    kwargs: dict[str, int] = {}
    if preset is not None:
        config = get_config(preset)
        kwargs = {"num_frame": config.num_frame, "depth": config.depth}
    try:
        return load_official(read_checkpoint(payload), **kwargs)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
