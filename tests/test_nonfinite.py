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
