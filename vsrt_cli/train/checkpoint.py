"""Atomic checkpoints of a run, the CSV log, and the fp16 export of trained weights."""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vsrt_cli.zoo.download import sha256_file
from vsrt_cli.errors import CheckpointError
from vsrt_cli.model.vsrt import VSRTConfig
from vsrt_cli.zoo.weights import FORMAT as WEIGHTS_FORMAT

if TYPE_CHECKING:
    from vsrt_cli.train.config import TrainConfig

CHECKPOINT = "last.pt"
LOG = "log.csv"


def save_atomic(obj: object, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(run_dir: Path) -> dict | None:
    """The run's last checkpoint, or None for a fresh run."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def load_run_state(run_dir: Path, overrides: dict | None = None) -> tuple[dict, TrainConfig]:
    """A run's state file and the settings stored in it (``overrides``, not None, replace single
    fields: budget and cadence); raises :class:`CheckpointError` if there is none."""
    from vsrt_cli.train.config import TrainConfig

    ckpt = load_checkpoint(run_dir)
    if ckpt is None or "config" not in ckpt:
        raise CheckpointError(f"{run_dir / CHECKPOINT} is missing or has no stored settings; start the run with --stage/--out")
    stored = {k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return ckpt, TrainConfig(**{**stored, **given})


def append_log(run_dir: Path, row: dict[str, object]) -> None:
    """Append ``row`` to the run's CSV (header written with the first row). A row with columns
    the file does not have yet (a metric added since the run began) rewrites the file with the
    wider header; earlier rows leave those columns empty."""
    path = run_dir / LOG
    rows: list[dict[str, str]] = []
    header: list[str] = []
    if path.exists():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            if not set(row) <= set(header):
                rows = list(reader)
    wider = header + [k for k in row if k not in header]
    if header and wider == header:
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=header, restval="").writerow(row)
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=wider, restval="")
        writer.writeheader()
        writer.writerows([*rows, row])
    os.replace(tmp, path)


def read_log(run_dir: Path) -> list[dict[str, str]]:
    """The rows of the run's CSV log (empty if it has none yet)."""
    path = run_dir / LOG
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def restore_curve(run_dir: Path, curve: list[dict[str, str]] | None) -> None:
    """Rewrite the run's CSV log from the curve a checkpoint carries, if the log is missing
    (a run resumed on another machine from its state file alone)."""
    if not curve or (run_dir / LOG).exists():
        return
    header: list[str] = []
    for row in curve:
        header += [k for k in row if k not in header]
    tmp = run_dir / (LOG + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(curve)
    os.replace(tmp, run_dir / LOG)


def export_weights(
    model: torch.nn.Module, config: VSRTConfig, path: Path, recipe: dict, quality: dict
) -> str:
    """Write vsrt's weights format (``{"format", "config", "state_dict" (fp16), "recipe",
    "quality"}``, see :mod:`vsrt_cli.zoo.weights`) atomically; returns sha256.

    Everything is a plain dict / tensor so ``torch.load(weights_only=True)`` reads it."""
    state = {k: v.detach().to(torch.float16).clone() for k, v in model.state_dict().items()}
    save_atomic(
        {"format": WEIGHTS_FORMAT, "config": dataclasses.asdict(config), "state_dict": state, "recipe": recipe, "quality": quality},
        path,
    )
    return sha256_file(path)
