"""The training loop of every stage: resumable, seeded, time-budgeted, validated as it goes.

Stages: ``spynet`` (SPyNet alone on synthetic pairs with known flow, multi-level EPE),
``main`` (the project preset end to end, Charbonnier loss, SPyNet from the spynet stage) and
``ablation`` (the same preset with one frame and no flow, the single-frame baseline).
Adam (0.9, 0.99) with a cosine schedule over the budget. The batch of step ``k`` is drawn from
``default_rng([seed, k])``, so a resumed run sees the data an uninterrupted one would.

The budget is *compute* time: the process's CPU time divided by its thread count, summed over
resumes, without the time spent validating. On an idle machine that is about wall time; on a
shared one it stays fair, so the main run and its ablation get the same compute whatever else
runs beside them. The log has both.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vsrt_cli.errors import CheckpointError, ConfigError
from vsrt_cli.model.spynet import SPyNet
from vsrt_cli.model.vsrt import VSRT, build_model
from vsrt_cli.train import flow as flowlib
from vsrt_cli.train.checkpoint import (
    CHECKPOINT, append_log, export_weights, load_checkpoint, read_log, restore_curve, save_atomic,
)
from vsrt_cli.train.config import TrainConfig
from vsrt_cli.train.data import Motion, WindowSampler, load_sequences, panned_val_windows, val_windows
from vsrt_cli.train.ema import EMA
from vsrt_cli.train.realdeg import UNKNOWN_SHARE, compressed_windows
from vsrt_cli.train.sources import DATA_LICENCES, TRAIN_SOURCES, VAL_SOURCES
from vsrt_cli.train.steps import (  # noqa: F401  (cosine, model_config: the loop's public API)
    SPYNET_FILE, charbonnier, cosine, is_added_path, is_neighbour_path, load_spynet_weights, model_config, param_groups, sr_loss,
)
from vsrt_cli.train.validate import (  # noqa: F401
    VAL_FRAMES, centre_prediction, evaluate, pan_flow_error, to_image,
)

WEIGHTS_FILE = "weights_fp16.pt"
VAL_FLOW_PAIRS = 32
VAL_CRF = 28  # a compression-aware run is validated through x264 at this CRF too (issue #14)


def warm_start_file(source: str) -> Path:
    """The weights ``--init-from`` names: a finished run folder, or a bundled model's name."""
    if Path(source, WEIGHTS_FILE).exists():
        return Path(source, WEIGHTS_FILE)
    from vsrt_cli.zoo.registry import entries, require_path

    if source in entries():
        return require_path(entries()[source])
    raise CheckpointError(
        f"{Path(source, WEIGHTS_FILE)} not found: --init-from needs a finished main or "
        "ablation run, or the name of a bundled model (vsrt models list)"
    )


# what a state records of its past beyond the curve, kept by every checkpoint of a resume
HISTORY = ("gpu_s", "grown_from", "rebased")


def body_weights(source: str | Path, net: VSRT) -> dict[str, torch.Tensor]:
    """The network of a finished run or bundled model, without SPyNet, checked against
    ``net``: every non-SPyNet tensor must exist with the same shape, except the neighbour paths
    a single-frame network does not have (they stay zero-initialised)."""
    path = warm_start_file(str(source))
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    body = {k: v.float() for k, v in state.items() if not k.startswith("spynet.")}
    own = {k: v for k, v in net.state_dict().items() if not k.startswith("spynet.")}
    bad = sorted(
        k for k in own
        if (k not in body and not is_added_path(k)) or (k in body and body[k].shape != own[k].shape)
    )
    if bad or set(body) - set(own):
        raise CheckpointError(f"{path} does not fit this preset ({len(bad)} missing or mis-shaped tensors, e.g. {bad[:3]})")
    return body


def load_frozen_body(cfg: TrainConfig, net: VSRT) -> None:
    """A ``quant_blend`` run's body: the network it starts from (``init_from``), frozen, so not
    in its state file and loaded from there by every resume and export (as a frozen SPyNet is)."""
    if cfg.init_from is None:
        raise ConfigError("a quant_blend network trains offsets from a clean network: give --init-from")
    net.load_state_dict(body_weights(cfg.init_from, net), strict=False)


class FlowStage:
    """SPyNet pretraining on synthetic pairs; validation: EPE on fixed held-out pairs."""

    def __init__(self, cfg: TrainConfig, fresh: bool) -> None:
        self.cfg = cfg
        self.net = SPyNet()
        if fresh:
            flowlib.init_spynet(self.net)
        self.groups = [{"params": list(self.net.parameters()), "lr_mul": 1.0}]
        cache = Path(cfg.cache)
        self.train = load_sequences(Path(cfg.data_root), TRAIN_SOURCES, cache, cfg.gt_scale, cfg.max_frames)
        val = load_sequences(Path(cfg.data_root), VAL_SOURCES, cache, cfg.gt_scale, cfg.max_frames)
        self.val = flowlib.synthetic_batch(
            val, np.random.default_rng(12345), VAL_FLOW_PAIRS, cfg.patch, cfg.max_shift, cfg.max_local
        )

    model = property(lambda self: self.net)
    ema = None

    def after_step(self) -> None:
        pass

    def loss(self, rng: np.random.Generator) -> torch.Tensor:
        c = self.cfg
        ref, supp, gt = flowlib.synthetic_batch(self.train, rng, c.batch, c.patch, c.max_shift, c.max_local)
        return flowlib.multiscale_epe(flowlib.pyramid_flows(self.net, ref, supp), gt)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        ref, supp, gt = self.val
        self.net.eval()
        epe = flowlib.end_point_error(self.net(ref, supp), gt).item()
        self.net.train()
        return {"val_epe": epe, "val_epe_zero_flow": flowlib.end_point_error(torch.zeros_like(gt), gt).item()}

    def export(self, out: Path, quality: dict) -> str:
        save_atomic(self.net.state_dict(), out / SPYNET_FILE)
        return str(out / SPYNET_FILE)


class SRStage:
    """The VSRT network (main or ablation); validation: PSNR/SSIM-Y of the window's centre frame."""

    def __init__(self, cfg: TrainConfig, fresh: bool) -> None:
        self.cfg = cfg
        self.config = model_config(cfg)
        self.net: VSRT = build_model(self.config)
        if self.config.quant_blend:
            load_frozen_body(cfg, self.net)
        elif fresh and cfg.init_from is not None:
            self.net.load_state_dict(body_weights(cfg.init_from, self.net), strict=False)
        # A frozen SPyNet is not in the checkpoint: it is loaded from spynet_from every time.
        if cfg.stage == "main" and self.net.spynet is not None and (fresh or cfg.flow_lr_mul == 0):
            self.net.spynet.load_state_dict(load_spynet_weights(Path(cfg.spynet_from)))
        self.groups = param_groups(self.net, cfg)
        cache = Path(cfg.cache)
        spynet = self.net.flow_net if cfg.cached_flows else None
        train = load_sequences(Path(cfg.data_root), TRAIN_SOURCES, cache, cfg.gt_scale, cfg.max_frames, spynet)
        val = load_sequences(Path(cfg.data_root), VAL_SOURCES, cache, cfg.gt_scale, cfg.max_frames, spynet)
        motion = Motion(cfg.motion, cfg.motion_speed, cfg.motion_jitter)
        self.sampler = WindowSampler(
            train, self.config.num_frame, cfg.patch, motion, flows=cfg.cached_flows, degradation=cfg.degradation,
            clean_share=cfg.clean_share, hide_quant=UNKNOWN_SHARE if self.config.quant_film else 0.0,
            flow_net=self.net.flow_net if cfg.flows_from == "degraded" else None,
        )
        # What is validated and exported: the running average of the weights, if kept.
        self.ema = EMA(self.net, cfg.ema) if cfg.ema > 0 else None
        multiple = self.config.size_multiple
        self.val = val_windows(val, VAL_FRAMES, cfg.val_windows, cfg.val_size, multiple)
        # The held-out clips barely move at this scale; the same frames under a camera pan
        # measure what neighbours add.
        self.val_pan = panned_val_windows(val, VAL_FRAMES, 2 * cfg.val_windows, cfg.val_size, multiple)
        # A compression-aware run is validated on the same windows through x264 too.
        self.val_crf = compressed_windows(self.val, VAL_CRF) if cfg.degradation == "real" else []
        # A network told the quantiser is also validated without it (a codec that hides it).
        blind = self.config.quant_film and self.val_crf
        self.val_crf_blind = [dataclasses.replace(w, quant=math.nan) for w in self.val_crf] if blind else []

    @property
    def model(self) -> VSRT:
        """The network to validate and export (the weight average when there is one)."""
        return self.ema.net if self.ema is not None else self.net

    def loss(self, rng: np.random.Generator) -> torch.Tensor:
        lr, gt, flows, quant = self.sampler.batch(rng, self.cfg.batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            return sr_loss(self.net, lr, gt, flows, quant)

    def after_step(self) -> None:
        if self.ema is not None:
            self.ema.update(self.net)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        net = self.model
        pan = evaluate(net, self.val_pan)
        out = {**evaluate(net, self.val), **{f"pan_{k}": v for k, v in pan.items()}}
        if self.val_crf:
            out.update({f"crf{VAL_CRF}_{k}": v for k, v in evaluate(net, self.val_crf).items()})
        if self.val_crf_blind:
            out.update({f"crf{VAL_CRF}blind_{k}": v for k, v in evaluate(net, self.val_crf_blind).items()})
        if self.config.use_flow:  # a flow trained end to end can break; this shows it
            out["pan_flow_epe_px"] = pan_flow_error(net, self.val_pan)
        return out

    def export(self, out: Path, quality: dict) -> str:
        recipe = {k: v for k, v in dataclasses.asdict(self.cfg).items() if not isinstance(v, tuple)}
        recipe["val_sources"] = ",".join(VAL_SOURCES)
        recipe["train_sources"] = ",".join(TRAIN_SOURCES)
        recipe["data_licences"] = DATA_LICENCES
        digest = export_weights(self.model, self.config, out / WEIGHTS_FILE, recipe, quality)
        return f"{out / WEIGHTS_FILE} sha256={digest}"


def run(
    cfg: TrainConfig, out: Path, *, max_steps: int | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, float]:
    """Train (or resume) the run in ``out`` until its budget is spent; returns the last
    validation. ``max_steps`` stops this session early at that step (the budget is unchanged).
    SIGTERM / SIGINT end the session after the current step, with a checkpoint."""
    stop: list[int] = []
    handlers = {sig: signal.signal(sig, lambda signum, _: stop.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(cfg, out, max_steps, echo, stop)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _run(
    cfg: TrainConfig, out: Path, max_steps: int | None, echo: Callable[[str], None],
    stop: list[int],
) -> dict[str, float]:
    torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(out)
    stored = cfg.stored_key(ckpt["key"]) if ckpt is not None else None
    if stored is not None and stored != cfg.resume_key():
        diff = sorted(k for k, v in cfg.resume_key().items() if stored.get(k) != v)
        raise ConfigError(f"{out / CHECKPOINT} was trained with other settings ({', '.join(diff)}); use another --out")
    torch.manual_seed(cfg.seed)
    stage: FlowStage | SRStage = (FlowStage if cfg.stage == "spynet" else SRStage)(cfg, ckpt is None)
    net: nn.Module = stage.net
    opt = torch.optim.Adam([{"params": g["params"]} for g in stage.groups], lr=cfg.lr, betas=(0.9, 0.99))
    step, compute0, wall0 = 0, 0.0, 0.0
    samples0, extra = 0, {}  # extra: what a GPU segment, a growth or a rebase of the run recorded
    frozen = {k for k, p in net.named_parameters() if not p.requires_grad}
    if ckpt is not None:
        missing, unexpected = net.load_state_dict(ckpt["model"], strict=False)
        if unexpected or set(missing) - frozen:  # only a frozen SPyNet may be absent
            raise CheckpointError(f"{out / CHECKPOINT} does not fit this network ({len(missing)} missing, {len(unexpected)} unexpected tensors)")
        opt.load_state_dict(ckpt["optimizer"])
        if stage.ema is not None:
            stage.ema.load_state_dict(ckpt.get("ema", ckpt["model"]))
        if "torch_rng" in ckpt:
            torch.set_rng_state(ckpt["torch_rng"])
        restore_curve(out, ckpt.get("curve"))
        step, compute0, wall0 = ckpt["step"], ckpt["compute"], ckpt["wall"]
        samples0, extra = ckpt.get("samples", step * cfg.batch), {k: ckpt[k] for k in HISTORY if k in ckpt}
        echo(f"resuming {out} at step {step} ({compute0 / 60:.1f} of {cfg.minutes} compute min)")
    net.train()
    step0 = step
    budget = cfg.minutes * 60
    cpu_start, wall_start = time.process_time(), time.monotonic()
    validation_cpu = [0.0]  # validation is not training: a 5-frame run's costs 5x a 1-frame's

    def compute() -> float:
        return compute0 + (time.process_time() - cpu_start - validation_cpu[0]) / cfg.threads

    def wall() -> float:
        return wall0 + time.monotonic() - wall_start

    last_ckpt, last_echo = time.monotonic(), time.monotonic()
    last_val = -math.inf if step == 0 else compute0
    losses: list[float] = []

    def checkpoint() -> None:
        # The run's whole state in one small file (a frozen SPyNet is referenced by
        # spynet_from, not stored), so a run resumes on another machine from it alone.
        state = {
            "key": cfg.resume_key(), "config": dataclasses.asdict(cfg),
            "model": {k: v for k, v in net.state_dict().items() if k not in frozen},
            "optimizer": opt.state_dict(), "step": step, "compute": compute(), "wall": wall(),
            "torch_rng": torch.get_rng_state(), "curve": read_log(out),
            "samples": samples0 + (step - step0) * cfg.batch, **extra,
        }
        if stage.ema is not None:
            state["ema"] = {k: v for k, v in stage.ema.state_dict().items() if k not in frozen}
        save_atomic(state, out / CHECKPOINT)

    def log(now: float, lr: float) -> dict[str, float]:
        started = time.process_time()
        metrics = stage.validate()
        validation_cpu[0] += time.process_time() - started
        row = {"compute_s": round(now, 1), "wall_s": round(wall(), 1), "step": step,
               "samples": samples0 + (step - step0) * cfg.batch, "lr": lr,
               "train_loss": float(np.mean(losses)) if losses else float("nan"), **metrics}
        append_log(out, row)
        losses.clear()
        echo(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        return metrics

    metrics: dict[str, float] = {}
    lr = cosine(cfg, compute0 / budget)
    if ckpt is not None and ckpt.get("validate_first"):  # its last validation scored another network (a rebase)
        metrics, last_val = log(compute0, lr), compute0
    while True:
        now = compute()
        if now >= budget or (max_steps is not None and step >= max_steps) or stop:
            break
        if now - last_val >= cfg.val_minutes * 60:
            metrics, last_val = log(now, lr), now
        if time.monotonic() - last_ckpt >= cfg.checkpoint_minutes * 60:  # wall clock: safety
            checkpoint()
            last_ckpt = time.monotonic()
        lr = cosine(cfg, now / budget)
        for group, spec in zip(opt.param_groups, stage.groups):
            group["lr"] = lr * spec["lr_mul"]
        loss = stage.loss(np.random.default_rng([cfg.seed, step]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stage.after_step()
        losses.append(loss.item())
        step += 1
        if time.monotonic() - last_echo >= 60:
            echo(f"step {step} compute {now / 60:.1f} min wall {wall() / 60:.1f} min "
                 f"{step * cfg.batch / max(now, 1e-9):.2f} samples per compute s "
                 f"loss {np.mean(losses[-50:]):.4g}")
            last_echo = time.monotonic()
    checkpoint()
    now = compute()
    if now >= budget:  # the budget is spent: final validation and the exported weights
        metrics = log(now, lr)
        echo(f"exported {stage.export(out, metrics)}")
    return metrics
