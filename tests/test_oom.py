"""Out-of-memory back-off of the tile runner, with the exception types CUDA really raises."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from vsrt_cli.engine import runtime, tiles
from vsrt_cli.errors import ResourceError
from vsrt_cli.model import build_model
from vsrt_cli.engine.pipeline import TileRunner
from vsrt_cli.engine.schedule import plan_tiles, smaller_tile

CPU = torch.device("cpu")
FAILURES = {
    "torch": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "cudnn": lambda: RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    "cublas": lambda: RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
}


class FailsAbove:
    """Wraps a model: raises ``error()`` when a call holds more LR pixels than ``limit``."""

    def __init__(self, model, limit: int, error) -> None:
        self.model, self.limit, self.error = model, limit, error
        self.config, self.spynet = model.config, model.spynet
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, tiles, flows=None, *, keep=None):
        self.calls.append(tuple(tiles.shape))
        if tiles.shape[0] * tiles.shape[-1] * tiles.shape[-2] > self.limit:
            raise self.error()
        return self.model(tiles, flows, keep=keep)


@pytest.fixture(scope="module")
def no_flow():
    torch.manual_seed(0)
    return build_model(TINY.__class__(**{**TINY.__dict__, "use_flow": False})).eval()


@pytest.fixture(scope="module")
def with_flow():
    torch.manual_seed(0)
    return build_model(TINY).eval()


def test_allocation_failures_are_recognised_and_other_errors_are_not():
    for make in FAILURES.values():
        assert runtime.is_out_of_memory(make())
    assert runtime.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"))
    assert not runtime.is_out_of_memory(RuntimeError("CUDNN_STATUS_BAD_PARAM"))
    assert not runtime.is_out_of_memory(ValueError("out of memory"))  # not from an allocator


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_each_failure_kind_halves_the_batch_with_the_same_output(no_flow, kind):
    frames = torch.rand(3, 3, 40, 72)
    grid = plan_tiles(40, 72, tile=32, overlap=8, multiple=8)
    reference = TileRunner(no_flow, grid, batch=4, device=CPU, precision="fp32")(frames, [0, 1, 2])
    flaky = FailsAbove(no_flow, 3 * grid.tile[0] * grid.tile[1], FAILURES[kind])  # 4 tiles fail, 2 fit
    runner = TileRunner(flaky, grid, batch=4, device=CPU, precision="fp32")
    out = runner(frames, [0, 1, 2])
    assert runner.batch == 2 and runner.notices == ["out of memory: retrying with 2 tile(s) per call (was 4)"]
    torch.testing.assert_close(out, reference, atol=0, rtol=0)


def test_tiles_shrink_but_never_below_32_pixels(no_flow):
    frames = torch.rand(2, 3, 72, 136)
    grid = plan_tiles(72, 136, tile=128, overlap=16, multiple=8)
    # one 72x80 tile (the frame in two equal 128-px-at-most tiles) does not fit, one 32x40 does
    assert grid.tile == (72, 80)
    runner = TileRunner(FailsAbove(no_flow, 64 * 64, FAILURES["torch"]), grid, batch=2, device=CPU, precision="fp32")
    out = runner(frames, [0, 1])
    assert out.shape == (2, 3, 288, 544) and runner.grid.tile == (32, 40)
    assert runner.notices[-1] == "out of memory: retrying with 32x40 tiles, overlap 10 (was 72x80)"
    hopeless = TileRunner(FailsAbove(no_flow, 16 * 16, FAILURES["cudnn"]), grid, batch=1, device=CPU, precision="fp32")
    with pytest.raises(ResourceError, match=r"one 32x32 tile per call \(RuntimeError: cuDNN error: CUDNN_STATUS_ALLOC_FAILED\)"):
        hopeless(frames, [0])
    assert hopeless.grid.tile == (32, 32)  # 128 -> 64 -> 32, then it stops
    assert smaller_tile(32, 180, 320, multiple=8, minimum=32) is None
    assert smaller_tile(48, 180, 320, multiple=8, minimum=32) == 32
    assert smaller_tile(0, 180, 320, multiple=8, minimum=32) == 160


class FlowFailsAbove(torch.nn.Module):
    """A SPyNet that runs out of memory above ``pairs`` frame pairs per call or above ``pixels``
    LR pixels per pair."""

    def __init__(self, spynet, *, pairs: int = 1 << 30, pixels: int = 1 << 30) -> None:
        super().__init__()
        self.inner, self.pairs, self.pixels = spynet, pairs, pixels

    def forward(self, ref, supp):
        if ref.shape[0] > self.pairs or ref.shape[-1] * ref.shape[-2] > self.pixels:
            raise FAILURES["cublas"]()
        return self.inner(ref, supp)


def test_the_flow_pass_shrinks_then_moves_to_tiles(with_flow):
    frames = torch.rand(5, 3, 32, 72)
    grid = plan_tiles(32, 72, tile=32, overlap=8, multiple=8)
    reference = TileRunner(with_flow, grid, batch=1, device=CPU, precision="fp32")(frames, [1, 2, 3])
    real = with_flow.spynet
    try:
        check_flow_back_off(with_flow, real, frames, grid, reference)
    finally:
        with_flow.spynet = real


def check_flow_back_off(with_flow, real, frames, grid, reference):
    with_flow.spynet = FlowFailsAbove(real, pairs=1)
    runner = TileRunner(with_flow, grid, batch=1, device=CPU, precision="fp32")
    out = runner(frames, [1, 2, 3])
    assert runner.flow_cache.chunk == 1 and runner.whole_frame_flows
    assert runner.notices == ["out of memory: retrying with 2 frame pair(s) per flow call (was 4)",
                              "out of memory: retrying with 1 frame pair(s) per flow call (was 2)"]
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)  # SPyNet batched differently
    # a whole frame never fits through SPyNet, a 32x32 tile does: flows are computed per tile
    per_tile = TileRunner(with_flow, grid, batch=1, device=CPU, precision="fp32")
    per_tile.whole_frame_flows = False
    with_flow.spynet = real
    expected = per_tile(frames, [1, 2, 3])
    with_flow.spynet = FlowFailsAbove(real, pixels=32 * 32)
    runner = TileRunner(with_flow, grid, batch=1, device=CPU, precision="fp32")
    out = runner(frames, [1, 2, 3])
    assert not runner.whole_frame_flows
    assert runner.notices[-1] == "out of memory: retrying with flows computed per tile (was on whole frames)"
    torch.testing.assert_close(out, expected, atol=0, rtol=0)


def test_memory_is_released_outside_the_except_block(no_flow, monkeypatch):
    seen = []
    monkeypatch.setattr(tiles, "release_memory", lambda device: seen.append(sys.exc_info()[0]))
    runner = TileRunner(FailsAbove(no_flow, 32 * 32, FAILURES["torch"]), plan_tiles(40, 72, tile=32, overlap=8, multiple=8),
                        batch=2, device=CPU, precision="fp32")
    runner(torch.rand(1, 3, 40, 72), [0])
    assert seen == [None]  # called once, with no exception (and so no traceback) alive


def test_errors_that_are_not_out_of_memory_pass_through(no_flow):
    broken = FailsAbove(no_flow, 0, lambda: RuntimeError("CUDNN_STATUS_BAD_PARAM"))
    runner = TileRunner(broken, plan_tiles(40, 72, tile=32, overlap=8, multiple=8), batch=2, device=CPU, precision="fp32")
    with pytest.raises(RuntimeError, match="BAD_PARAM"):
        runner(torch.rand(1, 3, 40, 72), [0])
    assert len(broken.calls) == 1 and runner.notices == []


def test_on_a_device_tiles_shrink_before_the_accumulator_moves_to_the_host(no_flow):
    """The host accumulator (every tile copied back synchronously, for the rest of the clip) is
    the last resort, after the smallest tile; the blend weights are made where the blending
    happens at each step, not copied over mid-window. ``meta`` stands for a device: no memory."""
    device = torch.device("meta")
    runner = TileRunner(no_flow, plan_tiles(72, 136, tile=128, overlap=16, multiple=8), batch=2, device=device, precision="fp32")
    where = []
    while runner.shrink("tiles"):
        where.append((runner.accumulate_on.type, {w.device.type for w in runner.weights}))
    assert runner.notices == [
        "out of memory: retrying with 1 tile(s) per call (was 2)",
        "out of memory: retrying with 32x40 tiles, overlap 10 (was 72x80)",
        "out of memory: retrying with 32x32 tiles, overlap 8 (was 32x40)",
        "out of memory: retrying with the tiles blended in host memory (was on the device)",
    ]
    assert where == [("meta", {"meta"})] * 3 + [("cpu", {"cpu"})]
    assert len(runner.weights) == len(runner.grid.origins)


def test_an_accumulator_that_does_not_fit_moves_to_the_host_at_once(no_flow):
    runner = TileRunner(no_flow, plan_tiles(72, 136, tile=64, overlap=16, multiple=8), batch=4,
                        device=torch.device("meta"), precision="fp32")
    assert runner.shrink("accumulator") and runner.accumulate_on.type == "cpu" and runner.batch == 4
    assert runner.grid.tile == (48, 56) and not runner.shrink("accumulator")  # the tiles unchanged


# --- memory outside the tile runner: colour conversion and quantising fall back to the host -----


def _oom_once(monkeypatch, name):
    """``runtime.NAME`` raises torch's OutOfMemoryError on its first call, then works."""
    from vsrt_cli.engine import runtime

    real, calls = getattr(runtime, name), []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime, name, flaky)
    return calls


def test_an_upload_out_of_memory_converts_on_the_host_with_the_same_numbers(monkeypatch):
    from vsrt_cli.engine.runtime import upload_frame
    from vsrt_cli.io.planes import Planes

    rng = np.random.default_rng(0)
    planes = Planes(rng.integers(16, 236, (24, 32), dtype=np.uint8), rng.integers(16, 241, (12, 16), dtype=np.uint8),
                    rng.integers(16, 241, (12, 16), dtype=np.uint8), 1, False, left=True)
    want = upload_frame(planes, torch.device("cpu"))
    calls = _oom_once(monkeypatch, "yuv420_to_rgb")
    got = upload_frame(planes, torch.device("cpu"))
    assert len(calls) == 2 and torch.equal(got, want)


def test_an_upload_that_never_fits_is_one_line_not_an_internal_error(monkeypatch):
    from vsrt_cli.engine import runtime
    from vsrt_cli.errors import ResourceError

    def never(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(runtime, "yuv420_to_rgb", never)
    from vsrt_cli.io.planes import Planes

    planes = Planes(np.zeros((24, 32), np.uint8), np.zeros((12, 16), np.uint8), np.zeros((12, 16), np.uint8), 1, False)
    with pytest.raises(ResourceError, match=r"out of CPU memory for one 32x24 frame") as caught:
        runtime.upload_frame(planes, torch.device("cpu"))
    assert "\n" not in str(caught.value)


def test_a_download_out_of_memory_quantises_on_the_host_as_rgb(monkeypatch):
    from vsrt_cli.engine.runtime import Download

    frames = torch.rand(2, 3, 16, 24)
    want = Download(frames, deep=False).images()
    calls = _oom_once(monkeypatch, "rgb_to_yuv420")
    got = Download(frames, deep=False, yuv=(1, False, True)).images()  # planes asked, RGB given
    assert len(calls) == 1 and all(isinstance(g, np.ndarray) for g in got)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
