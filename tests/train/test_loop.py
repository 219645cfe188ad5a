"""The training loop on a tiny network and synthetic clips: resume, export, log, settings."""

from __future__ import annotations

import csv
import json
import signal

import numpy as np
import pytest
import torch

from vsrt_cli.errors import CheckpointError, ConfigError
from vsrt_cli.model import VSRTConfig, build_model
from vsrt_cli.model import vsrt as vsrt_module
from vsrt_cli.model.spynet import SPyNet
from vsrt_cli.train import loop
from vsrt_cli.train.config import TrainConfig, stage_defaults
from vsrt_cli.train.data import Sequence
from vsrt_cli.train.degrade import bi_degrade
from vsrt_cli.train.flowcache import sequence_flows

TINY = VSRTConfig(
    num_feat=8, num_frame=5, depth=1, patch_size=4, extract_blocks=1, reconstruct_blocks=1,
    ff_blocks=1, norm="channel",
)


def textured(name: str, seed: int) -> Sequence:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(1, 24, 40, 3)).repeat(4, axis=1).repeat(4, axis=2)
    frames = np.stack([np.roll(base[0], 4 * t, axis=1) for t in range(7)]).astype(np.uint8)
    return Sequence(name, frames, bi_degrade(frames))


@pytest.fixture
def tiny_world(monkeypatch, tmp_path):
    monkeypatch.setitem(vsrt_module.PRESETS, "tiny", TINY)
    train = [textured("a/one", 0), textured("b/two", 1)]
    val = [textured("v/val", 2)]
    def load(root, sources, cache, gt_scale, max_frames, spynet=None):
        seqs = val if sources is loop.VAL_SOURCES else train
        if spynet is not None:  # the whole-frame flow cache of a frozen-flow run
            seqs = [Sequence(s.name, s.gt, s.lr, sequence_flows(spynet, s.lr)) for s in seqs]
        return seqs

    monkeypatch.setattr(loop, "load_sequences", load)
    flow_dir = tmp_path / "spynet"
    flow_dir.mkdir()
    torch.save(SPyNet().state_dict(), flow_dir / loop.SPYNET_FILE)
    return tmp_path


def config(tmp_path, **kw) -> TrainConfig:
    base = dict(stage="main", minutes=1e6, preset="tiny", batch=2, patch=8, val_size=(8, 16),
                val_windows=2, spynet_from=str(tmp_path / "spynet"), threads=1)
    return TrainConfig(**{**base, **kw})


def test_resumed_run_matches_an_uninterrupted_one(tiny_world):
    cfg = config(tiny_world)
    loop.run(cfg, tiny_world / "straight", max_steps=4, echo=lambda _: None)
    loop.run(cfg, tiny_world / "split", max_steps=2, echo=lambda _: None)
    loop.run(cfg, tiny_world / "split", max_steps=4, echo=lambda _: None)
    a = torch.load(tiny_world / "straight" / "last.pt", weights_only=True)
    b = torch.load(tiny_world / "split" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-6), k
    # the flow is frozen by default: referenced by spynet_from, not stored in the state
    assert not any(k.startswith("spynet.") for k in a["model"])
    assert a["config"]["spynet_from"] == str(tiny_world / "spynet")


def test_a_spent_budget_exports_loadable_fp16_weights_and_a_log(tiny_world):
    out = tiny_world / "run"
    metrics = loop.run(config(tiny_world, minutes=0.003), out, echo=lambda _: None)
    assert metrics["val_bicubic_psnr_y"] > 10 and np.isfinite(metrics["val_psnr_y"])
    blob = torch.load(out / loop.WEIGHTS_FILE, weights_only=True)
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values())
    model = build_model(VSRTConfig(**blob["config"]))
    model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    assert blob["quality"]["val_psnr_y"] == pytest.approx(metrics["val_psnr_y"])
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert len(rows) >= 2 and float(rows[-1]["compute_s"]) >= 0.18
    assert {"val_psnr_y", "val_bicubic_psnr_y", "gain_db_v"} <= set(rows[0])


def test_motion_windows_train_resume_and_validate_on_pans(tiny_world):
    cfg = config(tiny_world, motion=0.5)
    loop.run(cfg, tiny_world / "straight", max_steps=4, echo=lambda _: None)
    loop.run(cfg, tiny_world / "split", max_steps=2, echo=lambda _: None)
    loop.run(cfg, tiny_world / "split", max_steps=4, echo=lambda _: None)
    a = torch.load(tiny_world / "straight" / "last.pt", weights_only=True)["model"]
    b = torch.load(tiny_world / "split" / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    row = next(csv.DictReader(open(tiny_world / "straight" / "log.csv")))
    assert float(row["pan_val_bicubic_psnr_y"]) > 10 and np.isfinite(float(row["pan_val_psnr_y"]))
    with pytest.raises(ConfigError, match="share"):
        config(tiny_world, motion=1.5)


def test_ablation_is_single_frame_without_flow(tiny_world):
    cfg = config(tiny_world, stage="ablation")
    assert loop.model_config(cfg) == VSRTConfig(**{**TINY.__dict__, "num_frame": 1, "use_flow": False})
    metrics = loop.run(cfg, tiny_world / "abl", max_steps=1, echo=lambda _: None)
    assert np.isfinite(metrics["val_psnr_y"])


def test_resume_refuses_other_settings_and_main_needs_the_flow(tiny_world):
    loop.run(config(tiny_world), tiny_world / "r", max_steps=1, echo=lambda _: None)
    with pytest.raises(ConfigError, match="patch"):
        loop.run(config(tiny_world, patch=16), tiny_world / "r", max_steps=1, echo=lambda _: None)
    with pytest.raises(CheckpointError, match="--stage spynet"):
        loop.run(config(tiny_world, spynet_from=str(tiny_world / "nope")), tiny_world / "x", max_steps=1)


def test_stage_defaults_and_validation():
    assert stage_defaults("spynet", 5).patch == 64
    assert stage_defaults("main", 5, batch=None, lr=1e-3).lr == 1e-3
    with pytest.raises(ConfigError, match="valid stages"):
        TrainConfig(stage="nope", minutes=1)  # type: ignore[arg-type]
    assert loop.cosine(config_for_lr(), 0.0) == pytest.approx(2e-4)
    assert loop.cosine(config_for_lr(), 1.0) == pytest.approx(1e-7)


def config_for_lr() -> TrainConfig:
    return TrainConfig(stage="main", minutes=1)


def test_spynet_stage_trains_the_flow_alone(tiny_world, monkeypatch):
    big = [Sequence(s.name, s.gt.repeat(4, axis=1).repeat(4, axis=2)[:, :400, :400], s.lr) for s in
           (textured("a/one", 0), textured("v/val", 2))]
    monkeypatch.setattr(loop, "load_sequences", lambda *a: big)
    cfg = stage_defaults("spynet", 1e6, batch=2, patch=32, threads=1)
    metrics = loop.run(cfg, tiny_world / "flow", max_steps=2, echo=lambda _: None)
    assert metrics["val_epe_zero_flow"] > 0.5 and np.isfinite(metrics["val_epe"])
    ckpt = torch.load(tiny_world / "flow" / "last.pt", weights_only=True)
    assert ckpt["step"] == 2 and set(ckpt["model"]) == set(SPyNet().state_dict())


def test_sigterm_ends_the_session_with_a_checkpoint(tiny_world):
    def echo(line: str) -> None:
        if line.startswith("compute_s=0 "):  # the first validation, before step 1
            signal.raise_signal(signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    loop.run(config(tiny_world), tiny_world / "term", max_steps=50, echo=echo)
    assert torch.load(tiny_world / "term" / "last.pt", weights_only=True)["step"] == 1
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored


def test_warm_start_takes_the_body_of_a_finished_run_and_bundle_joins_the_curves(tiny_world, tmp_path):
    from vsrt_cli.train.bundle import full_curve

    first = tiny_world / "ablation"
    loop.run(config(tiny_world, stage="ablation", minutes=0.003), first, echo=lambda _: None)
    warm = config(tiny_world, stage="main", init_from=str(first), precision="bf16", flow_lr_mul=0.5)
    net = loop.SRStage(warm, fresh=True).net
    exported = torch.load(first / loop.WEIGHTS_FILE, weights_only=True)["state_dict"]
    for name, tensor in net.state_dict().items():
        if not name.startswith("spynet."):
            assert torch.equal(tensor, exported[name].float()), name
    flow = torch.load(tiny_world / "spynet" / loop.SPYNET_FILE, weights_only=True)
    assert all(torch.equal(net.state_dict()[f"spynet.{k}"], v) for k, v in flow.items())
    second = tiny_world / "main"
    loop.run(config(tiny_world, stage="main", init_from=str(first), precision="bf16", minutes=0.003), second, echo=lambda _: None)
    recipe = torch.load(second / loop.WEIGHTS_FILE, weights_only=True)["recipe"]
    curve, recipes = full_curve(second, recipe)
    assert [r["stage"] for r in recipes] == ["ablation", "main"]
    steps = [row["step"] for row in curve]
    assert steps == sorted(steps) and curve[-1]["compute_s"] > 0.3  # both budgets, one time line
    with pytest.raises(CheckpointError, match="needs a finished main or ablation run"):
        loop.SRStage(config(tiny_world, init_from=str(tmp_path / "nothing")), fresh=True)
    with pytest.raises(ConfigError, match="not the spynet stage"):
        config(tiny_world, stage="spynet", init_from=str(first))


def test_unbundle_rebuilds_a_run_that_warm_starts_like_the_original(tiny_world, monkeypatch):
    from vsrt_cli.train.bundle import bundle, full_curve, unbundle

    monkeypatch.setitem(vsrt_module.PRESETS, "tiny-1f", loop.model_config(config(tiny_world, stage="ablation")))
    first = tiny_world / "first"
    loop.run(config(tiny_world, stage="ablation", minutes=0.003), first, echo=lambda _: None)
    shipped = tiny_world / "weights"
    shipped.mkdir()
    entry = bundle(first, None, "tiny-1f", "tiny-1f", shipped, "test")
    assert entry["quality"]["panned"]["psnr_y"] == pytest.approx(entry["training"]["curve"][-1]["pan_val_psnr_y"])
    # shipped curves began before panned validation existed: early rows lack those columns
    manifest = json.loads((shipped / "manifest.json").read_text())
    early = manifest["models"][0]["training"]["curve"][0]
    for key in [k for k in early if k.startswith("pan_")]:
        del early[key]
    (shipped / "manifest.json").write_text(json.dumps(manifest))
    entry = manifest["models"][0]
    rebuilt = unbundle("tiny-1f", shipped, tiny_world / "rebuilt")
    with pytest.raises(CheckpointError, match="already exists"):
        unbundle("tiny-1f", shipped, rebuilt)
    original = torch.load(first / loop.WEIGHTS_FILE, weights_only=True)
    copy = torch.load(rebuilt / loop.WEIGHTS_FILE, weights_only=True)
    assert all(torch.equal(original["state_dict"][k], copy["state_dict"][k]) for k in original["state_dict"])
    assert copy["recipe"]["init_from"] is None and "tiny-1f.pth" in copy["recipe"]["unbundled_from"]
    assert full_curve(rebuilt, copy["recipe"])[0] == entry["training"]["curve"]
    warm = loop.SRStage(config(tiny_world, init_from=str(rebuilt)), fresh=True).net.state_dict()
    assert all(torch.equal(warm[k], v.float()) for k, v in original["state_dict"].items() if not k.startswith("spynet."))
    with pytest.raises(CheckpointError, match="not in"):
        unbundle("nope", shipped, tiny_world / "x")
    assert not (tiny_world / "x").exists()


def test_shipping_a_video_model_names_its_twin_records_its_budget_and_temporal_gain(tiny_world, monkeypatch):
    from vsrt_cli.train.bundle import bundle

    monkeypatch.setitem(vsrt_module.PRESETS, "tiny-1f", loop.model_config(config(tiny_world, stage="ablation")))
    twin, video = tiny_world / "twin", tiny_world / "video"
    loop.run(config(tiny_world, stage="ablation", minutes=0.003), twin, echo=lambda _: None)
    loop.run(config(tiny_world, stage="main", minutes=0.003), video, echo=lambda _: None)
    shipped = tiny_world / "weights"
    shipped.mkdir()
    bundle(twin, None, "old-default", "tiny-1f", shipped, "test")
    with pytest.raises(SystemExit, match="bundle the twin first"):
        bundle(video, twin, "tiny-5f", "tiny", shipped, "test", twin="tiny-1f")
    bundle(twin, None, "tiny-1f", "tiny-1f", shipped, "test")
    row = {"bicubic": 30.0, "single": 31.0, "video": 31.4, "video_minus_single_db": 0.4, "neighbours_worth_db": 0.5,
           "motion_db": 30.1, "windows": 8, "flow_epe_px": 0.1}
    report = {"windows": 8, "real": {"all": row, "moving": row, "static": row, "clip": row}, "pan": {"all": row}}
    entry = bundle(video, twin, "tiny-5f", "tiny", shipped, "test", twin="tiny-1f", temporal=report, first=True)
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"]] == ["tiny-5f", "old-default", "tiny-1f"]  # the default first
    assert entry["single_frame_twin"] == "tiny-1f"
    assert entry["quality"]["temporal"]["real"]["moving"]["video_minus_single_db"] == 0.4
    assert "flow_epe_px" not in entry["quality"]["temporal"]["real"]["moving"]
    assert "--windows 8" in entry["quality"]["temporal"]["command"]
    budget = entry["training"]["budget"]
    assert budget["gpu_minutes"] == 0 and budget["steps"] == entry["training"]["steps"]  # ends with a validation
    assert budget["cpu_minutes"] == pytest.approx(entry["training"]["compute_seconds"] / 60, abs=0.05)
    # a frozen state counts what it trained after its last validation too
    from vsrt_cli.train.bundle import freeze_state

    frozen = freeze_state(video, tiny_world / "frozen")
    payload = torch.load(frozen / loop.WEIGHTS_FILE, weights_only=True)
    payload["recipe"]["step"] += 5  # as if it had trained 5 steps and a minute past the validation
    payload["recipe"]["compute_s"] += 60
    torch.save(payload, frozen / loop.WEIGHTS_FILE)
    later = bundle(frozen, twin, "tiny-5f", "tiny", shipped, "test", twin="tiny-1f")["training"]["budget"]
    assert later["steps"] == budget["steps"] + 5 and later["cpu_minutes"] == pytest.approx(budget["cpu_minutes"] + 1, abs=0.05)
    # single-frame weights carry no SPyNet
    assert not any(k.startswith("spynet.") for k in torch.load(shipped / "tiny-1f.pth", weights_only=True)["state_dict"])


def test_a_checkpoint_from_before_a_new_setting_resumes_with_its_default(tiny_world):
    cfg = config(tiny_world)
    loop.run(cfg, tiny_world / "old", max_steps=1, echo=lambda _: None)
    ckpt = torch.load(tiny_world / "old" / "last.pt", weights_only=True)
    for key in ("motion", "motion_speed", "motion_jitter"):
        del ckpt["key"][key]
    torch.save(ckpt, tiny_world / "old" / "last.pt")
    loop.run(cfg, tiny_world / "old", max_steps=2, echo=lambda _: None)
    assert torch.load(tiny_world / "old" / "last.pt", weights_only=True)["step"] == 2
    with pytest.raises(ConfigError, match="motion"):
        loop.run(config(tiny_world, motion=0.5), tiny_world / "old", max_steps=3, echo=lambda _: None)


def test_pan_flow_error_measures_the_flow_against_the_camera_motion():
    from vsrt_cli.train.data import ValWindow

    net = build_model(TINY)
    window = ValWindow("v@0+pan1", torch.rand(5, 3, 16, 16), torch.rand(5, 3, 64, 64), pan=(0.6, -0.8))
    still = ValWindow("v@0", torch.rand(5, 3, 16, 16), torch.rand(5, 3, 64, 64))

    def flows_of(value):
        flow = torch.tensor(value).view(1, 1, 2, 1, 1).expand(1, 5, 2, 16, 16)
        return lambda x: (flow, flow)

    net.compute_flows = flows_of((-0.6, 0.8))  # the truth: content moves against the camera
    assert loop.pan_flow_error(net, [window, still]) == pytest.approx(0.0, abs=1e-6)
    net.compute_flows = flows_of((0.0, 0.0))
    assert loop.pan_flow_error(net, [window]) == pytest.approx(1.0, abs=1e-6)
    net.compute_flows = flows_of((0.6, -0.8))  # the wrong sign is twice as far
    assert loop.pan_flow_error(net, [window]) == pytest.approx(2.0, abs=1e-6)
    assert np.isnan(loop.pan_flow_error(net, [still]))


def test_log_rows_with_a_new_metric_widen_the_header(tmp_path):
    from vsrt_cli.train.checkpoint import append_log

    append_log(tmp_path, {"step": 0, "val_psnr_y": 30.0})
    append_log(tmp_path, {"step": 1, "val_psnr_y": 31.0})
    append_log(tmp_path, {"step": 2, "val_psnr_y": 32.0, "pan_flow_epe_px": 0.25})
    append_log(tmp_path, {"step": 3, "val_psnr_y": 33.0, "pan_flow_epe_px": 0.2})
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["step"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["pan_flow_epe_px"] for r in rows] == ["", "", "0.25", "0.2"]


def test_the_state_file_alone_resumes_the_run_elsewhere(tiny_world):
    """Copy only last.pt to a fresh folder (another machine): `--resume` continues the run
    with its stored settings, its curve comes back, and it ends where an unbroken run does."""
    import shutil

    from vsrt_cli.train.__main__ import main

    cfg = config(tiny_world, ema=0.9, val_minutes=1e-9)
    loop.run(cfg, tiny_world / "straight", max_steps=4, echo=lambda _: None)
    loop.run(cfg, tiny_world / "here", max_steps=2, echo=lambda _: None)
    elsewhere = tiny_world / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(tiny_world / "here" / "last.pt", elsewhere / "last.pt")
    assert main(["--resume", str(elsewhere), "--max-steps", "4"]) == 0
    a = torch.load(tiny_world / "straight" / "last.pt", weights_only=True)
    b = torch.load(elsewhere / "last.pt", weights_only=True)
    assert b["step"] == 4
    for part in ("model", "ema"):
        assert all(torch.allclose(a[part][k], b[part][k], atol=1e-6) for k in a[part]), part
    assert not torch.equal(b["ema"]["stem.weight"], b["model"]["stem.weight"])
    rows = list(csv.DictReader(open(elsewhere / "log.csv")))
    assert [r["step"] for r in rows] == [r["step"] for r in csv.DictReader(open(tiny_world / "straight" / "log.csv"))]
    assert (elsewhere / "last.pt").stat().st_size < 16 * 2**20


def test_a_gated_video_model_warm_starts_at_its_single_frame_score(tiny_world, monkeypatch):
    gated = VSRTConfig(**{**TINY.__dict__, "centre_first": True, "neighbour_gates": True})
    monkeypatch.setitem(vsrt_module.PRESETS, "tiny-5f", gated)
    single = tiny_world / "single"
    done = loop.run(config(tiny_world, stage="ablation", preset="tiny-5f", minutes=0.003), single, echo=lambda _: None)
    assert VSRTConfig(**torch.load(single / loop.WEIGHTS_FILE, weights_only=True)["config"]).num_frame == 1
    first = loop.run(config(tiny_world, preset="tiny-5f", init_from=str(single)), tiny_world / "video",
                     max_steps=1, echo=lambda _: None)
    assert first["val_psnr_y"] == pytest.approx(done["val_psnr_y"], abs=0.01)
    assert first["pan_val_psnr_y"] == pytest.approx(done["pan_val_psnr_y"], abs=0.01)


def test_export_state_ships_the_running_average_with_its_frozen_flow(tiny_world):
    from vsrt_cli.train.bundle import export_state
    from vsrt_cli.zoo.weights import load_weights

    run = tiny_world / "running"
    loop.run(config(tiny_world, ema=0.5), run, max_steps=3, echo=lambda _: None)
    net = load_weights(export_state(run, tiny_world / "now.pth"))
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == 3  # the run itself goes on from here
    for name, tensor in state["ema"].items():
        assert torch.allclose(net.state_dict()[name], tensor.half().float()), name
    flow = torch.load(tiny_world / "spynet" / loop.SPYNET_FILE, weights_only=True)
    assert all(torch.allclose(net.spynet.state_dict()[k], v.half().float()) for k, v in flow.items())


def test_bundle_joins_the_history_of_a_shipped_model_a_run_started_from(tiny_world, monkeypatch):
    from vsrt_cli.train import bundle as bundle_module

    shipped = {"training": {"curve": [{"step": 0, "compute_s": 0.0, "wall_s": 0.0, "val_psnr_y": 30.0},
                                      {"step": 10, "compute_s": 60.0, "wall_s": 90.0, "val_psnr_y": 31.0}],
                            "recipe": {"stage": "ablation"}, "stages": None}}
    monkeypatch.setattr(bundle_module, "shipped_entry", lambda name: shipped if name == "old-1f" else None)
    run = tiny_world / "from-name"
    run.mkdir()
    for row in ({"step": 0, "compute_s": 0.0, "wall_s": 0.0, "val_psnr_y": 29.0},
                {"step": 5, "compute_s": 30.0, "wall_s": 40.0, "val_psnr_y": 29.5}):
        loop.append_log(run, row)
    curve, recipes = bundle_module.full_curve(run, {"stage": "main", "init_from": "old-1f"})
    assert [r["step"] for r in curve] == [0, 10, 10, 15]
    assert [r["compute_s"] for r in curve] == [0.0, 60.0, 60.0, 90.0]
    assert [r["val_psnr_y"] for r in curve] == [30.0, 31.0, 29.0, 29.5]  # each validated as it was
    assert [r["stage"] for r in recipes] == ["ablation", "main"]


def test_a_branch_from_a_frozen_running_state_counts_its_compute_past_the_last_validation(tiny_world):
    from vsrt_cli.train.bundle import freeze_state, full_curve

    parent = tiny_world / "parent"
    loop.run(config(tiny_world, ema=0.5, val_minutes=1e6), parent, max_steps=3, echo=lambda _: None)
    state = torch.load(parent / "last.pt", weights_only=True)
    assert state["step"] == 3 and [int(float(r["step"])) for r in loop.read_log(parent)] == [0]
    frozen = freeze_state(parent, tiny_world / "frozen")
    with pytest.raises(CheckpointError, match="already exists"):
        freeze_state(parent, tiny_world / "frozen")
    net = loop.SRStage(config(tiny_world, init_from=str(frozen)), fresh=True).net
    for name, tensor in state["ema"].items():  # the branch starts from the parent's weight average
        if not name.startswith("spynet."):
            assert torch.equal(net.state_dict()[name], tensor.half().float()), name
    branch = tiny_world / "branch"
    loop.run(config(tiny_world, init_from=str(frozen), minutes=0.003), branch, echo=lambda _: None)
    recipe = torch.load(branch / loop.WEIGHTS_FILE, weights_only=True)["recipe"]
    curve, _ = full_curve(branch, recipe)
    own = loop.read_log(branch)[-1]
    # the parent's 3 steps and its compute count although it last validated at step 0
    assert curve[-1]["step"] == 3 + int(float(own["step"]))
    assert curve[-1]["compute_s"] == pytest.approx(state["compute"] + float(own["compute_s"]), abs=0.06)  # stored to 0.1 s


def test_a_compression_aware_run_is_validated_on_x264_windows_too(tiny_world):
    # tiny windows: the codec pads them to its minimum size and crops back
    done = loop.run(config(tiny_world, degradation="real"), tiny_world / "real", max_steps=2, echo=lambda _: None)
    assert done[f"crf{loop.VAL_CRF}_val_psnr_y"] > 0
    # the same windows, compressed: bicubic of the x264 frames is further from the GT
    assert done[f"crf{loop.VAL_CRF}_val_bicubic_psnr_y"] < done["val_bicubic_psnr_y"]
    assert f"crf{loop.VAL_CRF}_val_gain_db" in loop.read_log(tiny_world / "real")[-1]
    clean = loop.run(config(tiny_world), tiny_world / "bi", max_steps=1, echo=lambda _: None)
    assert not any(k.startswith("crf") for k in clean)


def test_a_blend_run_trains_only_the_offsets_and_resumes_its_frozen_clean_body(tiny_world, monkeypatch):
    blend = VSRTConfig(**{**TINY.__dict__, "quant_film": True, "quant_blend": True})
    monkeypatch.setitem(vsrt_module.PRESETS, "tiny-qb", blend)
    clean = tiny_world / "clean"
    done = loop.run(config(tiny_world, minutes=0.003), clean, echo=lambda _: None)
    body = torch.load(clean / loop.WEIGHTS_FILE, weights_only=True)["state_dict"]
    cfg = config(tiny_world, preset="tiny-qb", init_from=str(clean), degradation="real", ema=0.9, val_minutes=1e-6)
    first = loop.run(cfg, tiny_world / "qb", max_steps=1, echo=lambda _: None)
    # told the BI windows are clean, it is the clean network (its quantiser-free twin at CRF 28)
    assert first["val_psnr_y"] == pytest.approx(done["val_psnr_y"], abs=2e-3)  # fp16 weights file
    assert f"crf{loop.VAL_CRF}blind_val_psnr_y" in first
    loop.run(cfg, tiny_world / "qb", max_steps=3, echo=lambda _: None)  # a resume
    state = torch.load(tiny_world / "qb" / "last.pt", weights_only=True)
    assert state["step"] == 3
    assert not any(k in state["model"] for k in body)  # the frozen body is init_from's, not stored
    assert any(v.abs().sum() > 0 for k, v in state["model"].items() if k.startswith("delta."))  # offsets learnt
    stage = loop.SRStage(cfg, fresh=False)  # what a resume builds: the body from init_from
    for k, v in body.items():
        if not k.startswith("spynet."):
            assert torch.equal(stage.net.state_dict()[k], v.float()), k
    with pytest.raises(ConfigError, match="init-from"):
        loop.SRStage(config(tiny_world, preset="tiny-qb"), fresh=True)
    # shipped as the default for video: its weights file holds the body too, and told "clean"
    # it is the clean model
    from vsrt_cli.train.bundle import bundle, freeze_state
    from vsrt_cli.zoo.weights import load_weights

    frozen = freeze_state(tiny_world / "qb", tiny_world / "qb-frozen")
    shipped = tiny_world / "weights"
    shipped.mkdir()
    entry = bundle(frozen, None, "tiny-qb", "tiny-qb", shipped, "test", default_for="video")
    assert entry["default_for"] == "video" and entry["quality"]["compressed"]["blind_psnr_y"] > 0
    net, plain = load_weights(shipped / "tiny-qb.pth").eval(), load_weights(clean / loop.WEIGHTS_FILE).eval()
    x = torch.rand(1, 5, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x, quant=0.0), plain(x))
        assert not torch.allclose(net(x, quant=30.0), plain(x), atol=1e-4)


def test_a_resume_may_switch_the_precision_and_keeps_the_rest(tiny_world):
    """`--resume DIR --precision bf16` continues an fp32 run under bf16 autocast (fp32 weights
    and Adam state as before); the stored settings say bf16 from then on, and another setting
    is still refused. A state written before precision became switchable resumes too."""
    from vsrt_cli.train.__main__ import main

    run = tiny_world / "r"
    loop.run(config(tiny_world, val_minutes=1e-9), run, max_steps=2, echo=lambda _: None)
    before = torch.load(run / "last.pt", weights_only=True)
    old_style = dict(before, key={**before["key"], "precision": "fp32"})  # the key as 0.1.0 stored it
    torch.save(old_style, run / "last.pt")
    assert main(["--resume", str(run), "--max-steps", "4", "--precision", "bf16"]) == 0
    after = torch.load(run / "last.pt", weights_only=True)
    assert after["step"] == 4 and after["config"]["precision"] == "bf16" and "precision" not in after["key"]
    assert all(v.dtype == torch.float32 for v in after["model"].values() if v.is_floating_point())
    assert not torch.equal(after["model"]["stem.weight"], before["model"]["stem.weight"])
    with pytest.raises(ConfigError, match="patch"):
        loop.run(config(tiny_world, patch=16, precision="bf16"), run, max_steps=5, echo=lambda _: None)


def test_a_rebundled_model_keeps_its_measured_cost_only_for_the_same_network(tiny_world, monkeypatch):
    from vsrt_cli.train.bundle import bundle

    monkeypatch.setitem(vsrt_module.PRESETS, "tiny-1f", loop.model_config(config(tiny_world, stage="ablation")))
    run = tiny_world / "r"
    loop.run(config(tiny_world, stage="ablation", minutes=0.003), run, echo=lambda _: None)
    shipped = tiny_world / "weights"
    shipped.mkdir()
    assert "cost" not in bundle(run, None, "m", "tiny-1f", shipped, "test")
    manifest = json.loads((shipped / "manifest.json").read_text())
    manifest["models"][0]["cost"] = {"time_per_frame_vs_default": 0.5}
    (shipped / "manifest.json").write_text(json.dumps(manifest))
    assert bundle(run, None, "m", "tiny-1f", shipped, "test", first=True)["cost"] == {"time_per_frame_vs_default": 0.5}
    manifest = json.loads((shipped / "manifest.json").read_text())
    manifest["models"][0]["preset"] = "another"  # measured for another network: not carried
    (shipped / "manifest.json").write_text(json.dumps(manifest))
    assert "cost" not in bundle(run, None, "m", "tiny-1f", shipped, "test")
