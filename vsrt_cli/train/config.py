"""Typed, frozen training configuration: one :class:`TrainConfig` per run, with stage defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from vsrt_cli.errors import ConfigError

Stage = Literal["spynet", "main", "ablation"]
STAGES: tuple[str, ...] = ("spynet", "main", "ablation")
PROJECT_PRESET = "vsrt-cpu-small"
DATA_ROOT = "../shared/data/train"  # relative to the repository root; referenced, never copied


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that defines a run (stored in its checkpoint; a resume must agree on it).

    minutes: training budget in compute minutes (process CPU time / threads) over all resumes;
        the cosine learning-rate schedule runs over it (a run's quality is a function of it).
    gt_scale: sources are downscaled by this (antialiased bicubic) before BI, for cleaner GT.
    flow_lr_mul: learning-rate multiplier for SPyNet in the main stage (0 freezes it).
    spynet_from: run dir of the ``spynet`` stage whose ``spynet.pt`` initialises the flow.
    init_from: run dir of a finished main/ablation run whose network (all but SPyNet)
        initialises this one (a warm start; the flow still comes from ``spynet_from``).
    precision: ``bf16`` trains under CPU/CUDA bf16 autocast (fp32 master weights).
    neighbour_lr_mul: learning-rate multiplier of the zero-initialised neighbour paths of a
        ``neighbour_gates`` preset (they start from nothing while the rest is trained).
    degradation: how LR training windows are made from GT: ``bi`` (the benchmark protocol,
        cached) or ``real`` (blur, resize, noise and video compression per window, see
        :mod:`vsrt_cli.train.realdeg`); validation stays BI (the protocol) either way.
    clean_share: with ``real``, the share of windows that keep the BI protocol (what the model
        must not lose on clean input is learnt from them).
    flows_from: with ``real`` and a frozen flow, the flows a window trains with: ``clean``
        (cut from the cached flows of the clean BI frames) or ``degraded`` (estimated again on
        the degraded window, with context around the patch, as the pipeline estimates them on
        a user's compressed video). A resume may switch it.
    ema: decay of an exponential moving average of the weights, validated and exported in
        their place (0: off). Long runs over many sessions stop anywhere; the average is the
        model to ship at any point.
    motion: share of training samples that are camera-motion windows made from one real frame
        (see :mod:`vsrt_cli.train.motion`); ``motion_speed`` (LR px/frame) and ``motion_jitter``
        (LR px) shape them.
    """

    stage: Stage
    minutes: float
    preset: str = PROJECT_PRESET
    seed: int = 0
    batch: int = 4
    patch: int = 32
    lr: float = 2e-4
    min_lr: float = 1e-7
    gt_scale: float = 0.5
    max_frames: int = 480
    flow_lr_mul: float = 0.0
    spynet_from: str = "runs/spynet"
    init_from: str | None = None
    precision: Literal["fp32", "bf16"] = "fp32"
    motion: float = 0.0
    motion_speed: float = 1.5
    motion_jitter: float = 0.35
    neighbour_lr_mul: float = 1.0
    ema: float = 0.0
    degradation: Literal["bi", "real"] = "bi"
    clean_share: float = 0.3
    flows_from: Literal["clean", "degraded"] = "clean"
    max_shift: float = 4.0  # spynet stage: largest global shift, LR pixels
    max_local: float = 1.5  # spynet stage: scale of the local flow field, LR pixels
    data_root: str = DATA_ROOT
    cache: str = "runs/cache"
    checkpoint_minutes: float = 5.0
    val_minutes: float = 4.0
    val_windows: int = 8  # per held-out sequence
    val_size: tuple[int, int] = (48, 96)  # LR height, width of the centre crop
    threads: int = 2

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"unknown stage {self.stage!r}; valid stages: {', '.join(STAGES)}")
        if self.minutes <= 0:
            raise ConfigError(f"--minutes must be > 0, got {self.minutes}")
        if self.batch < 1 or self.patch < 8:
            raise ConfigError(f"batch must be >= 1 and patch >= 8, got {self.batch}, {self.patch}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.init_from is not None and self.stage == "spynet":
            raise ConfigError("--init-from warm-starts a main or ablation run, not the spynet stage")
        if not 0 <= self.motion <= 1:
            raise ConfigError(f"--motion is a share of samples in [0, 1], got {self.motion}")
        if self.motion_speed < 0 or self.motion_jitter < 0:
            raise ConfigError("--motion-speed and --motion-jitter must be >= 0")
        if self.degradation not in ("bi", "real"):
            raise ConfigError(f"--degradation must be bi or real, got {self.degradation!r}")
        if not 0 <= self.clean_share <= 1:
            raise ConfigError(f"--clean-share is a share of windows in [0, 1], got {self.clean_share}")
        if self.flows_from not in ("clean", "degraded"):
            raise ConfigError(f"--flows-from must be clean or degraded, got {self.flows_from!r}")
        if self.flows_from == "degraded" and not (self.degradation == "real" and self.cached_flows):
            raise ConfigError("--flows-from degraded needs --degradation real and a frozen flow (main stage, --flow-lr-mul 0)")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"--ema is a decay in [0, 1), got {self.ema}")
        if not 0 < self.gt_scale <= 1:
            raise ConfigError(f"gt_scale must be in (0, 1], got {self.gt_scale}")

    @property
    def cached_flows(self) -> bool:
        """A main run with a frozen flow takes its flows from the whole-frame cache."""
        return self.stage == "main" and self.flow_lr_mul == 0

    def resume_key(self) -> dict:
        """The fields a resumed run must share with its checkpoint (not budget or cadence)."""
        loose = {"minutes", "checkpoint_minutes", "val_minutes", "threads", "data_root", "cache", "flows_from",
                 "precision"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in loose}

    def stored_key(self, key: dict) -> dict:
        """A checkpoint's stored ``key`` as this version compares it with :meth:`resume_key`: a
        field added since counts as its default, a field that became loose since is dropped."""
        defaults = TrainConfig(stage=self.stage, minutes=self.minutes).resume_key()
        return {k: v for k, v in {**defaults, **key}.items() if k in defaults}


def stage_defaults(stage: str, minutes: float, **overrides: object) -> TrainConfig:
    """The documented recipe of each stage; ``overrides`` (not None) replace single fields."""
    base: dict[str, object] = {}
    if stage == "spynet":
        # LR 64x64 synthetic pairs from the full-resolution sources (first 60 frames each).
        base = {"batch": 8, "patch": 64, "lr": 1e-4, "gt_scale": 1.0, "max_frames": 60}
    given = {k: v for k, v in overrides.items() if v is not None}
    return TrainConfig(stage=stage, minutes=minutes, **{**base, **given})  # type: ignore[arg-type]
