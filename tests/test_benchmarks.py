"""The speed benchmark's measuring parts, on a tiny model (no timing asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import speed  # noqa: E402


def test_official_protocol_does_more_work_than_the_default_and_every_frame_comes_out(tiny_model):
    lr = np.random.default_rng(0).integers(0, 255, (7, 40, 72, 3), dtype=np.uint8)
    default, official = speed.default_schedule(tiny_model), speed.official_schedule(tiny_model)
    assert (official.tile, official.overlap, official.stride, official.batch) == (64, 32, 1, 1)
    run = speed.compute(tiny_model, lr, default)
    assert len(run["frames"]) == 7 and run["frames"][0].shape == (160, 288, 3)
    assert 0 < run["model_seconds"] <= run["seconds"]
    cheap, costly = speed.count_flops(tiny_model, lr, default), speed.count_flops(tiny_model, lr, official)
    # stride 1 runs every frame as the centre of its own 5-frame window: about 5x the model work
    assert 3 < costly / cheap < 8
    gt = np.repeat(np.repeat(lr, 4, axis=1), 4, axis=2)
    assert np.isfinite(speed.score(run["frames"], gt))
