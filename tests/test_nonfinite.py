"""A model output that is NaN or infinite (an fp16 overflow) stops the run with one error naming
the frame; no garbage frame is ever written."""

from __future__ import annotations

import pytest
import torch

from tests.media import make_clip
from vsrt_cli.errors import NumericError
from vsrt_cli.engine.pipeline import Schedule, UpscaleJob, upscale
from vsrt_cli.engine.schedule import plan_tiles
from vsrt_cli.engine.tiles import TileRunner


class Poisoned:
    """Wraps a model: ``value`` (NaN or inf) at one pixel of frame ``position`` of every call
    whose window starts at source frame ``first`` (the runner asks for the kept frames)."""

    def __init__(self, model, value: float, position: int) -> None:
        self.model, self.config, self.spynet = model, model.config, model.spynet
        self.value, self.position = value, position

    def __call__(self, tiles, flows=None):
        out = self.model(tiles, flows).clone()
        out[-1, self.position, 1, 5, 7] = self.value
        return out


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_output_names_its_frame(tiny_model, value):
    frames = torch.rand(5, 3, 40, 72)
    runner = TileRunner(Poisoned(tiny_model, value, position=3), plan_tiles(40, 72, tile=32, overlap=8, multiple=8),
                        batch=4, device=torch.device("cpu"), precision="fp16")
    with pytest.raises(NumericError, match=r"frame 13 \(counting from 0\) is not finite \(NaN or infinite\).*--precision bf16 or fp32") as caught:
        runner(frames, [0, 1, 2, 3, 4], (10, 11, 12, 13, 14))
    assert "\n" not in str(caught.value) and "frame 12" not in str(caught.value)


def test_a_clean_output_passes_untouched(tiny_model):
    frames = torch.rand(3, 3, 40, 72)
    grid = plan_tiles(40, 72, tile=32, overlap=8, multiple=8)
    out = TileRunner(tiny_model, grid, batch=4, device=torch.device("cpu"), precision="fp32")(frames, [0, 1, 2])
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_the_pipeline_writes_no_output_for_a_nan_frame(tiny_model, tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 24))
    job = UpscaleJob(source=source, output=tmp_path / "out.mkv", schedule=Schedule(tile=32, overlap=8, window=3, stride=3),
                     device=torch.device("cpu"), precision="fp32")
    with pytest.raises(NumericError, match=r"frame 1 \(counting from 0\) is not finite.*the weights"):
        list(upscale(Poisoned(tiny_model, float("nan"), position=1), job))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# --- on CUDA the check is read a window late, with the frames' download ---------------------------


def test_a_deferred_check_refuses_the_frames_when_they_are_read(tiny_model):
    """CUDA's path (forced here on the CPU): the call returns without waiting for the device; the
    window's flags travel with its download, which raises before handing out a frame."""
    from vsrt_cli.engine.runtime import Download

    frames = torch.rand(5, 3, 40, 72)
    runner = TileRunner(Poisoned(tiny_model, float("nan"), position=3), plan_tiles(40, 72, tile=32, overlap=8, multiple=8),
                        batch=4, device=torch.device("cpu"), precision="fp16")
    runner.defer_check = True
    hr = runner(frames, [0, 1, 2, 3, 4], (10, 11, 12, 13, 14))  # no error yet
    download = Download(hr, False, None, runner.take_check())
    with pytest.raises(NumericError, match=r"frame 13 \(counting from 0\) is not finite.*--precision bf16 or fp32"):
        download.images()
    assert runner.take_check() is None  # taken once


def test_a_deferred_check_nobody_took_is_read_at_the_next_call(tiny_model):
    frames = torch.rand(5, 3, 40, 72)
    runner = TileRunner(Poisoned(tiny_model, float("inf"), position=1), plan_tiles(40, 72, tile=32, overlap=8, multiple=8),
                        batch=4, device=torch.device("cpu"), precision="fp32")
    runner.defer_check = True
    runner(frames, [0, 1, 2, 3, 4], (0, 1, 2, 3, 4))
    with pytest.raises(NumericError, match=r"frame 1 \(counting from 0\)"):
        runner(frames, [0, 1, 2, 3, 4], (5, 6, 7, 8, 9))


def test_the_pipeline_with_the_deferred_check_writes_no_output_for_a_nan_frame(tiny_model, tmp_path, monkeypatch):
    made = TileRunner.__init__

    def deferring(self, *args, **kwargs):
        made(self, *args, **kwargs)
        self.defer_check = True

    class LastCallPoisoned(Poisoned):
        """Poisons only the last window's call: no later call would ever read its check."""

        calls = 0

        def __call__(self, tiles, flows=None):
            LastCallPoisoned.calls += 1
            return super().__call__(tiles, flows) if LastCallPoisoned.calls == 2 else self.model(tiles, flows)

    monkeypatch.setattr(TileRunner, "__init__", deferring)
    source = make_clip(tmp_path / "in.mp4", frames=6, size=(32, 24))
    job = UpscaleJob(source=source, output=tmp_path / "out.mkv", schedule=Schedule(tile=32, overlap=8, window=3, stride=3),
                     device=torch.device("cpu"), precision="fp32")
    with pytest.raises(NumericError, match=r"frame 4 \(counting from 0\) is not finite"):
        list(upscale(LastCallPoisoned(tiny_model, float("nan"), position=1), job))
    assert LastCallPoisoned.calls == 2  # two windows of 3, one tile each
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
