"""Growing a run's network (vsrt_cli/train/grow.py): the grown network computes what the run's
did, the run's state carries over by name, and the grown run trains on from there."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.train.test_loop import TINY, config, tiny_world  # noqa: F401  (fixture)
from vsrt_cli.errors import CheckpointError, ConfigError
from vsrt_cli.model import build_model
from vsrt_cli.model import vsrt as vsrt_module
from vsrt_cli.train import loop
from vsrt_cli.train.grow import grow, grown_tensors, main
from vsrt_cli.train.steps import model_config

GROWN = dataclasses.replace(TINY, depth=2, gated_blocks=1, reconstruct_blocks=2, ff_blocks=2)


def net_of(state: dict, cfg) -> torch.nn.Module:
    net = build_model(model_config(cfg))
    net.load_state_dict(state, strict=False)  # a frozen SPyNet is not in the state
    return net.eval()


def test_a_grown_run_computes_what_its_source_did_then_trains_on(tiny_world, monkeypatch):
    monkeypatch.setitem(vsrt_module.PRESETS, "tiny-grown", GROWN)
    source = tiny_world / "source"
    loop.run(config(tiny_world, ema=0.9, val_minutes=1e-9), source, max_steps=3, echo=lambda _: None)
    grown_cfg = grow(source, "tiny-grown", tiny_world / "grown")
    before = torch.load(source / "last.pt", weights_only=True)
    after = torch.load(tiny_world / "grown" / "last.pt", weights_only=True)
    assert after["step"] == before["step"] and after["compute"] == before["compute"]
    assert after["config"]["preset"] == "tiny-grown" and after["grown_from"]["preset"] == "tiny"
    assert (tiny_world / "grown" / "log.csv").read_text() == (source / "log.csv").read_text()
    x = torch.rand(1, 5, 3, 8, 16)
    spynet = {k: v for k, v in build_model(TINY).state_dict().items() if k.startswith("spynet.")}
    old = net_of({**before["model"], **spynet}, config(tiny_world))
    new = net_of({**after["model"], **spynet}, grown_cfg)
    assert sum(p.numel() for p in new.parameters()) > sum(p.numel() for p in old.parameters())
    with torch.no_grad():
        assert torch.allclose(new(x), old(x), atol=1e-6)  # the added blocks compute nothing yet
        assert torch.allclose(net_of({**after["ema"], **spynet}, grown_cfg)(x),
                              net_of({**before["ema"], **spynet}, config(tiny_world))(x), atol=1e-6)
    moments = {k: v for k, v in after["optimizer"]["state"].items()}
    assert len(moments) == len(before["optimizer"]["state"])  # the added parameters have none yet
    loop.run(grown_cfg, tiny_world / "grown", max_steps=5, echo=lambda _: None)
    trained = torch.load(tiny_world / "grown" / "last.pt", weights_only=True)
    assert trained["step"] == 5 and float(trained["model"]["blocks.1.gate"]) != 0.0
    assert trained["grown_from"] == after["grown_from"]  # the resume's checkpoints keep the run's history


def test_growth_only_adds(tiny_world, monkeypatch):
    old = {"a": torch.ones(2), "b.conv2.weight": torch.ones(3)}
    new = {"a": torch.zeros(2), "b.conv2.weight": torch.zeros(3), "c.conv2.weight": torch.ones(3), "c.conv1.weight": torch.ones(3)}
    out = grown_tensors(old, new)
    assert torch.equal(out["a"], old["a"]) and torch.equal(out["c.conv2.weight"], torch.zeros(3))
    assert torch.equal(out["c.conv1.weight"], torch.ones(3))
    with pytest.raises(CheckpointError, match="reshapes"):
        grown_tensors({"a": torch.ones(3)}, new)
    monkeypatch.setitem(vsrt_module.PRESETS, "tiny-narrow", dataclasses.replace(TINY, num_feat=4, heads=1))
    loop.run(config(tiny_world), tiny_world / "s", max_steps=1, echo=lambda _: None)
    with pytest.raises(CheckpointError):
        grow(tiny_world / "s", "tiny-narrow", tiny_world / "n")
    with pytest.raises(ConfigError, match="own network"):
        grow(tiny_world / "s", "tiny", tiny_world / "same")
    (tiny_world / "exists").mkdir()
    (tiny_world / "exists" / "last.pt").write_bytes(b"x")
    assert main(["--from", str(tiny_world / "s"), "--preset", "tiny", "--out", str(tiny_world / "exists")]) != 0
