"""Rebasing a compression-aware run (vsrt_cli/train/rebase.py): the run stands on a newer clean
body, keeps what it learnt, is that body exactly on clean input, and trains on from there."""

from __future__ import annotations

import pytest
import torch

from tests.train.test_loop import TINY, config, tiny_world  # noqa: F401  (fixture)
from vsrt_cli.errors import ConfigError, CheckpointError
from vsrt_cli.model import VSRTConfig
from vsrt_cli.model import vsrt as vsrt_module
from vsrt_cli.train import loop
from vsrt_cli.train.bundle import export_state
from vsrt_cli.train.config import TrainConfig
from vsrt_cli.train.rebase import main, rebase
from vsrt_cli.zoo.weights import load_weights


@pytest.fixture
def blend_world(tiny_world, monkeypatch):
    monkeypatch.setitem(vsrt_module.PRESETS, "tiny-qb", VSRTConfig(**{**TINY.__dict__, "quant_film": True, "quant_blend": True}))
    old, new = tiny_world / "old", tiny_world / "new"
    loop.run(config(tiny_world, minutes=0.003), old, echo=lambda _: None)
    loop.run(config(tiny_world, minutes=0.003, seed=1, lr=1e-3), new, echo=lambda _: None)  # another clean body
    cfg = config(tiny_world, preset="tiny-qb", init_from=str(old), degradation="real", ema=0.9, val_minutes=1e-6)
    loop.run(cfg, tiny_world / "qb", max_steps=2, echo=lambda _: None)
    return tiny_world


def test_a_rebased_run_is_the_new_body_on_clean_input_and_the_old_network_at_full_blend(blend_world):
    world = blend_world
    settings = rebase(world / "qb", world / "new", world / "qb2")
    assert settings["init_from"] == str(world / "new")
    before = torch.load(world / "qb" / "last.pt", weights_only=True)
    after = torch.load(world / "qb2" / "last.pt", weights_only=True)
    assert after["step"] == before["step"] == 2 and after["compute"] == before["compute"]
    assert after["rebased"] == [{"step": 2, "compute": before["compute"], "from": str(world / "old"),
                                 "to": str(world / "new"), "carried": True}]
    assert all(torch.equal(after["model"][k], v) for k, v in before["model"].items() if not k.startswith("delta."))
    assert any(not torch.equal(after["model"][k], v) for k, v in before["model"].items() if k.startswith("delta."))
    assert (world / "qb2" / "log.csv").read_text() == (world / "qb" / "log.csv").read_text()

    net = load_weights(export_state(world / "qb2", world / "qb2.pth")).eval()
    old = load_weights(export_state(world / "qb", world / "qb.pth")).eval()
    body = load_weights(world / "new" / loop.WEIGHTS_FILE).eval()
    x = torch.rand(1, 5, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x, quant=0.0), body(x))  # clean input: the new body exactly
        assert not torch.allclose(net(x, quant=0.0), old(x, quant=0.0), atol=1e-4)
        full = (net(x, quant=40.0) - old(x, quant=40.0)).abs().max()  # all of the offset: the old network
        part = (net(x, quant=20.0) - old(x, quant=20.0)).abs().max()  # part of it: between the two
        assert full < 1e-3 and part > 10 * full  # the weights files are fp16: equal up to its rounding
    # in the state itself (fp32), body + offset is the old run's exactly
    for name, new_weight in torch.load(world / "new" / loop.WEIGHTS_FILE, weights_only=True)["state_dict"].items():
        key = "delta." + name.replace(".", "__")
        if key in after["model"]:
            old_weight = torch.load(world / "old" / loop.WEIGHTS_FILE, weights_only=True)["state_dict"][name]
            assert torch.allclose(new_weight.float() + after["model"][key], old_weight.float() + before["model"][key], atol=1e-6)

    # the resume scores the rebased network first (the curve's last row scored the old one); at
    # --max-steps its own step, that is all it does
    rows = len(loop.read_log(world / "qb2"))
    scored = loop.run(TrainConfig(**settings), world / "qb2", max_steps=2, echo=lambda _: None)
    log = loop.read_log(world / "qb2")
    assert len(log) == rows + 1 and int(log[-1]["step"]) == 2 and float(log[-1]["val_psnr_y"]) == pytest.approx(scored["val_psnr_y"])
    state = torch.load(world / "qb2" / "last.pt", weights_only=True)
    assert state["step"] == 2 and "validate_first" not in state and state["rebased"] == after["rebased"]  # history kept
    assert all(torch.equal(state["model"][k], v) for k, v in after["model"].items())  # not trained
    loop.run(TrainConfig(**settings), world / "qb2", max_steps=4, echo=lambda _: None)  # then trains on the new body
    assert torch.load(world / "qb2" / "last.pt", weights_only=True)["step"] == 4


def test_offsets_kept_unchanged_act_on_the_new_body(blend_world):
    world = blend_world
    assert main(["--run", str(world / "qb"), "--body", str(world / "new"), "--out", str(world / "kept"), "--keep-offsets"]) == 0
    before = torch.load(world / "qb" / "last.pt", weights_only=True)
    after = torch.load(world / "kept" / "last.pt", weights_only=True)
    assert all(torch.equal(after["model"][k], v) for k, v in before["model"].items())
    assert after["rebased"][-1]["carried"] is False
    net = load_weights(export_state(world / "kept", world / "kept.pth")).eval()
    body = load_weights(world / "new" / loop.WEIGHTS_FILE).eval()
    x = torch.rand(1, 5, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x, quant=0.0), body(x))
        assert not torch.allclose(net(x, quant=40.0), body(x), atol=1e-4)


def test_what_cannot_be_rebased_is_refused(blend_world, monkeypatch):
    world = blend_world
    with pytest.raises(ConfigError, match="no frozen body"):
        rebase(world / "old", world / "new", world / "x")
    with pytest.raises(ConfigError, match="already stands on"):
        rebase(world / "qb", world / "old", world / "x")
    monkeypatch.setitem(vsrt_module.PRESETS, "tiny-narrow", VSRTConfig(**{**TINY.__dict__, "num_feat": 4, "heads": 1}))
    loop.run(config(world, minutes=0.003, preset="tiny-narrow"), world / "narrow", echo=lambda _: None)
    with pytest.raises(CheckpointError):
        rebase(world / "qb", world / "narrow", world / "x")
    assert not (world / "x").exists()
    rebase(world / "qb", world / "new", world / "y")
    assert main(["--run", str(world / "qb"), "--body", str(world / "new"), "--out", str(world / "y")]) != 0  # y exists
