"""The GPU trainer's whole path on the CPU with a tiny budget: pack, train, resume on the CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.train.test_loop import TINY, config, textured, tiny_world  # noqa: F401  (fixture)
from vsrt_cli.model import VSRTConfig
from vsrt_cli.model import vsrt as vsrt_module
from vsrt_cli.model.spynet import SPyNet
from vsrt_cli.train import gpu, loop
from vsrt_cli.train.data import Sequence, panned_val_windows, val_windows
from vsrt_cli.train.flowcache import sequence_flows
from vsrt_cli.train.pack import build_pack


def test_the_gpu_trainer_imports_without_pyav_or_platformdirs():
    code = ("import sys; sys.modules['av'] = None; sys.modules['platformdirs'] = None; "
            "import vsrt_cli.train.gpu")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_pack_then_gpu_segment_then_cpu_resume(tiny_world, monkeypatch):
    from vsrt_cli.train.__main__ import main as train_main

    gated = VSRTConfig(**{**TINY.__dict__, "centre_first": True, "neighbour_gates": True})
    monkeypatch.setitem(vsrt_module.PRESETS, "tiny-5f", gated)
    video, twin = tiny_world / "video5f", tiny_world / "twin1f"
    cfg = config(tiny_world, preset="tiny-5f", ema=0.9)
    loop.run(cfg, video, max_steps=2, echo=lambda _: None)
    loop.run(config(tiny_world, preset="tiny-5f", stage="ablation", ema=0.9), twin, max_steps=2, echo=lambda _: None)

    spynet = SPyNet()
    spynet.load_state_dict(torch.load(tiny_world / "spynet" / loop.SPYNET_FILE, weights_only=True))
    train = [Sequence(s.name, s.gt, s.lr, sequence_flows(spynet, s.lr)) for s in (textured("a/one", 0), textured("b/two", 1))]
    val = [Sequence(s.name, s.gt, s.lr, sequence_flows(spynet, s.lr)) for s in (textured("v/val", 2),)]
    sets = {"real": val_windows(val, 5, 2, (8, 16), 4), "pan": panned_val_windows(val, 5, 2, (8, 16), 4)}
    pack = tiny_world / "pack.npz"
    meta = build_pack(cfg, train, sets, spynet, pack, mib=0.2, block=12, seed=1)
    assert pack.stat().st_size <= 0.2 * 2**20 and meta["blocks"] >= 8

    # the packed validation windows score as the CPU loop's own validation does
    net = loop.SRStage(cfg, fresh=False)
    state = torch.load(video / "last.pt", weights_only=True)
    net.net.load_state_dict(state["model"], strict=False)
    net.ema.load_state_dict(state["ema"])
    _, _, packed_val = gpu.load_pack(pack, torch.device("cpu"))
    assert gpu.validate(net.ema.net, packed_val)["val_psnr_y"] == pytest.approx(net.validate()["val_psnr_y"], abs=1e-3)

    out = tiny_world / "gpu"
    assert gpu.main(["--pack", str(pack), "--runs", str(video), str(twin), "--minutes", "0.02", "--out", str(out),
                     "--batch", "2", "--patch", "8", "--precision", "fp32", "--device", "cpu"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["stage"] for r in report["runs"]] == ["main", "ablation"]
    assert all(r["steps"] > 0 and np.isfinite(r["val_after"]["val_psnr_y"]) for r in report["runs"])
    for run in (video, twin):
        after = torch.load(out / run.name / "last.pt", weights_only=True)
        assert after["step"] > 2 and after["gpu_s"] > 0 and after["curve"][-1]["device"] == "cpu"
        assert after["curve"][-1]["gpu_val_psnr_y"] and not after["curve"][-1]["val_psnr_y"]  # a subset: own columns
        assert not any(k.startswith("spynet.") for k in after["model"])
        # back on the CPU: copy the continued state in and resume with one command
        shutil.copy(out / run.name / "last.pt", run / "last.pt")
        shutil.copy(out / run.name / "log.csv", run / "log.csv")
        assert train_main(["--resume", str(run), "--max-steps", str(after["step"] + 1)]) == 0
        resumed = torch.load(run / "last.pt", weights_only=True)
        assert resumed["step"] == after["step"] + 1 and resumed["gpu_s"] == after["gpu_s"]
        assert resumed["samples"] == after["samples"] + 2


@pytest.mark.parametrize("name", ["video5f", "twin1f"])
def test_the_committed_training_states_resume(tmp_path, name):
    """The runs in weights/training/ continue from their state files alone (here through the GPU
    trainer on the CPU, a few steps on a small pack of synthetic windows)."""
    from pathlib import Path

    from vsrt_cli.train.config import TrainConfig

    repo = Path(__file__).resolve().parents[2]
    state = repo / "weights" / "training" / name / "last.pt"
    ckpt = torch.load(state, weights_only=True)
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()})
    run = tmp_path / name
    run.mkdir()
    shutil.copy(state, run / "last.pt")
    spynet = SPyNet()
    spynet.load_state_dict(torch.load(repo / "weights" / "pretrained" / "spynet.pt", weights_only=True))
    seqs = [Sequence(s.name, s.gt, s.lr, sequence_flows(spynet, s.lr)) for s in (textured("a/one", 0), textured("v/val", 2))]
    sets = {"real": val_windows(seqs[1:], 5, 1, (16, 32), 8), "pan": panned_val_windows(seqs[1:], 5, 1, (16, 32), 8)}
    pack = tmp_path / "pack.npz"
    build_pack(cfg, seqs[:1], sets, spynet, pack, mib=2, block=20, seed=1)
    out = tmp_path / "out"
    assert gpu.main(["--pack", str(pack), "--runs", str(run), "--minutes", "0.01", "--out", str(out),
                     "--batch", "1", "--patch", "16", "--precision", "fp32", "--device", "cpu"]) == 0
    after = torch.load(out / name / "last.pt", weights_only=True)
    assert after["step"] > ckpt["step"] and after["config"] == ckpt["config"]
    assert len(after["curve"]) == len(ckpt["curve"]) + 1


@pytest.mark.parametrize("name", ["video5f", "twin1f", "video5f_qb", "twin1f_qb"])
def test_the_committed_training_states_pass_the_cpu_resume_check(name):
    """`python -m vsrt_cli.train --resume` refuses a state whose stored settings differ from its
    config (vsrt_cli/train/loop.py); a hand-edited state (its config changed, not its key) would
    stop the next session's run before its first step."""
    from pathlib import Path

    from vsrt_cli.train.config import TrainConfig

    repo = Path(__file__).resolve().parents[2]
    ckpt = torch.load(repo / "weights" / "training" / name / "last.pt", weights_only=True)
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()})
    assert cfg.stored_key(ckpt["key"]) == cfg.resume_key()
    init_from = Path(cfg.init_from)  # the run it was warm-started from is in the repository
    assert (repo / init_from / "weights_fp16.pt").is_file()


def test_the_gpu_trainer_refuses_a_run_whose_windows_need_video_encoders(tmp_path):
    """A ``--degradation real`` run degrades every window with PyAV encoders; the pack holds BI
    windows, so continuing it there would silently train it on the wrong data."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    ckpt = torch.load(repo / "weights" / "training" / "twin1f" / "last.pt", weights_only=True)
    ckpt["config"]["degradation"] = "real"
    run = tmp_path / "twin1f_real"
    run.mkdir()
    torch.save(ckpt, run / "last.pt")
    with pytest.raises(SystemExit, match="--degradation real.*continue this run on the CPU"):
        gpu.continue_run(run, ({}, {}, {}), 1.0, tmp_path / "out", device=torch.device("cpu"), batch=1, patch=8, precision="fp32")
