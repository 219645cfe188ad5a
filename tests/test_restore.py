"""--restore auto|N: how much of a quant_blend model's compression offset is used (model/quant.py
restore_quant, engine/pipeline.py window_quant), checked on the bundled pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.media import noise, write_video
from vsrt_cli.errors import ConfigError
from vsrt_cli.engine.pipeline import Notice, Schedule, UpscaleJob, upscale
from vsrt_cli.io.frames import list_frames, read_image
from vsrt_cli.jobs.build import build_job, load_model, parse_restore
from vsrt_cli.model.quant import FULL_QP, blend_scale, describe_restore, restore_quant

SCHEDULE = Schedule(tile=0, overlap=0, window=5, stride=1, batch=1)


@pytest.mark.parametrize("strength", [0.0, 0.25, 0.5, 1.0])
def test_a_strength_is_told_as_the_quantiser_that_gives_it(strength):
    quant = restore_quant(strength)
    assert float(blend_scale(torch.tensor([quant]))[0]) == pytest.approx(strength)
    assert (quant == 0) == (strength == 0)  # 0: a clean input, modulation and offset both off


@pytest.mark.parametrize("text,value", [("auto", None), (None, None), ("0", 0.0), ("0.5", 0.5), (1, 1.0)])
def test_restore_parses_auto_or_a_share(text, value):
    assert parse_restore(text) == value


@pytest.mark.parametrize("text", ["1.5", "-0.1", "strong"])
def test_a_bad_restore_is_one_line(text):
    with pytest.raises(ConfigError, match="--restore"):
        parse_restore(text)


def test_the_note_says_what_was_used_and_why():
    assert describe_restore(0.5, 22.0).startswith("--restore 0.5: 0.50 of the compression offset (set by --restore")
    auto = describe_restore(None, 22.0)
    assert auto.startswith("--restore auto: 0.50 of the compression offset") and "QP 22" in auto
    assert "0.75" in describe_restore(None, None) and "does not say" in describe_restore(None, None)


@pytest.fixture(scope="module")
def compressed(tmp_path_factory) -> Path:
    """A small x264 clip at a coarse quantiser: auto gives it the whole offset."""
    folder = tmp_path_factory.mktemp("restore")
    return write_video(folder / "rough.mp4", [noise(24, 32, i) // 2 + 60 for i in range(5)], options={"crf": "40"})


def frames_of(net, source: Path, output: Path, restore: float | None) -> tuple[list[np.ndarray], list[Notice]]:
    job = UpscaleJob(source=source, output=output, schedule=SCHEDULE, device=torch.device("cpu"), precision="fp32",
                     frames_out=True, restore=restore)
    notes = [e for e in upscale(net, job) if isinstance(e, Notice)]
    return [read_image(p)[0] for p in list_frames(output)], notes


@pytest.fixture(scope="module")
def pair():
    return load_model("vsrt-cpu-small", None).eval(), load_model("vsrt-cpu-small-real", None).eval()


def test_restore_0_is_the_clean_model_bit_for_bit_and_1_the_full_offset(pair, compressed, tmp_path):
    clean, real = pair
    want, _ = frames_of(clean, compressed, tmp_path / "clean", None)
    zero, notes = frames_of(real, compressed, tmp_path / "zero", 0.0)
    assert len(want) == 5 and all(np.array_equal(a, b) for a, b in zip(want, zero))
    assert any(n.note and n.message.startswith("--restore 0: 0.00") for n in notes)
    full, notes = frames_of(real, compressed, tmp_path / "full", 1.0)
    assert any(n.message.startswith("--restore 1: 1.00") for n in notes)
    assert not all(np.array_equal(a, b) for a, b in zip(full, zero))  # the offset is used (and its weights: below)


def test_full_offset_is_the_weights_plus_the_whole_delta(pair):
    _, real = pair
    x = torch.rand(1, 5, 3, 16, 16)
    with torch.inference_mode():
        told = real(x, quant=restore_quant(1.0))
        weights = {n: p + real.delta[n.replace(".", "__")] for n, p in real.blended_parameters()}
        by_hand = torch.func.functional_call(real, weights, (x,), {"quant": FULL_QP, "blend": False}, strict=False)
    assert torch.equal(told, by_hand)


def test_a_model_without_the_blend_refuses_a_strength_in_one_line(compressed, tmp_path):
    with pytest.raises(ConfigError, match="no compression offset to blend") as caught:
        build_job(source=compressed, output=tmp_path / "o.mp4", model="vsrt-cpu-small", weights=None, device="cpu",
                  precision="fp32", tile=None, tile_overlap=16, window=None, window_stride=None, batch=None, codec=None,
                  crf=16, preset="medium", pix_fmt=None, fps="25", no_audio=False, overwrite=False,
                  skip_bad_frames=False, restore="0.3")
    assert "\n" not in str(caught.value)
