"""The memory formula against a measurement of the real forward, and the default tiling."""

from __future__ import annotations

import pytest
import torch

from vsrt_cli.engine.budget import CPU_BATCH, CPU_TILE, TILE, LiveTensorBytes, Tiling, call_bytes, default_tiling, resident_bytes
from vsrt_cli.model import build_model
from vsrt_cli.model.vsrt import PRESETS
from vsrt_cli.engine.runtime import MIN_TILE
from vsrt_cli.engine.schedule import plan_tiles

TOLERANCE = 0.01  # the formula leaves out a few hundred bytes of small tensors per call


def measured_peak(name: str, tile: int, *, keep=None, batch: int = 1, bf16: bool = False) -> int:
    torch.manual_seed(0)
    config = PRESETS[name]
    model = build_model(config).eval()
    x = torch.rand(batch, config.num_frame, 3, tile, tile)
    flows = tuple(torch.zeros(batch, config.num_frame, 2, tile, tile) for _ in range(2))
    meter = LiveTensorBytes()
    with torch.inference_mode(), meter, torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(x, flows, keep=keep)
    return meter.peak


@pytest.mark.parametrize("name,keep", [
    ("vsrt-cpu-small-1f", None),
    ("vsrt-cpu-small", None),  # the reconstruction of 5 kept frames is the peak
    ("vsrt-cpu-small", [2]),  # one kept frame: the layers over all 5 frames are
    ("vsrt-cpu-small-5f", None),
    ("vsrt-cpu-small-5f", [1, 2, 3]),
])
def test_formula_matches_the_measured_peak_at_two_tile_sizes(name, keep):
    config = PRESETS[name]
    kept = config.num_frame if keep is None else len(keep)
    for tile in (32, 64):
        want = call_bytes(config, frames=config.num_frame, kept=kept, pixels=tile * tile, element_bytes=4)
        assert measured_peak(name, tile, keep=keep) == pytest.approx(want, rel=TOLERANCE)


def test_formula_matches_bf16_measurements_and_two_tiles_per_call():
    config = PRESETS["vsrt-cpu-small-1f"]
    want = call_bytes(config, frames=1, kept=1, pixels=32 * 32, element_bytes=2)
    assert measured_peak("vsrt-cpu-small-1f", 32, bf16=True) == pytest.approx(want, rel=TOLERANCE)
    joint = PRESETS["vsrt-cpu-small"]  # one kept frame: the layers, mostly fp32, are the peak
    want = call_bytes(joint, frames=5, kept=1, pixels=32 * 32, element_bytes=2)
    assert measured_peak("vsrt-cpu-small", 32, keep=[2], bf16=True) == pytest.approx(want, rel=TOLERANCE)
    two = call_bytes(config, frames=1, kept=1, pixels=2 * 32 * 32, element_bytes=4)
    assert measured_peak("vsrt-cpu-small-1f", 32, batch=2) == pytest.approx(two, rel=TOLERANCE)


def test_the_cpu_keeps_todays_defaults():
    for name in ("vsrt-cpu-small-1f", "vsrt-cpu-small-5f"):
        got = default_tiling(PRESETS[name], frames=5, size=(720, 1280), element_bytes=4, free_bytes=None)
        assert got == Tiling(CPU_TILE, CPU_BATCH)
    assert default_tiling(PRESETS["vsrt-reds"], frames=5, size=(720, 1280), element_bytes=2, free_bytes=None).tile == 64


def fits(config, tiling: Tiling, size, frames: int, free: int, share: float = 0.65) -> bool:
    grid = plan_tiles(*size, tile=tiling.tile, overlap=config.default_overlap if tiling.tile else 0, multiple=config.size_multiple)
    pixels = tiling.batch * grid.tile[0] * grid.tile[1]
    need = call_bytes(config, frames=frames, kept=frames, pixels=pixels, element_bytes=2)
    return need + resident_bytes(grid, frames=frames, kept=frames) <= share * free


@pytest.mark.parametrize("name", ["vsrt-cpu-small-1f", "vsrt-cpu-small", "vsrt-cpu-small-5f"])
def test_device_tiling_is_the_largest_that_fits(name):
    config = PRESETS[name]
    frames = config.num_frame
    size = (720, 1280)
    small = default_tiling(config, frames=frames, size=size, element_bytes=2, free_bytes=8 << 30)
    big = default_tiling(config, frames=frames, size=size, element_bytes=2, free_bytes=80 << 30)
    # never the whole frame, however much memory: the bounded tile, a frame's tiles in one call
    assert big == Tiling(TILE, len(plan_tiles(*size, tile=TILE, overlap=config.default_overlap, multiple=8).origins))
    assert small.tile % config.size_multiple == 0 and MIN_TILE <= small.tile <= TILE
    assert fits(config, small, size, frames, 8 << 30)
    if small.tile < TILE:  # one step larger would not fit
        assert not fits(config, Tiling(small.tile + config.size_multiple, 1), size, frames, 8 << 30)
    tiles = len(plan_tiles(*size, tile=small.tile, overlap=config.default_overlap, multiple=8).origins)
    assert small.batch == tiles or not fits(config, Tiling(small.tile, small.batch + 1), size, frames, 8 << 30)


def test_a_frame_smaller_than_the_tile_is_one_tile_just_covering_it():
    config = PRESETS["vsrt-cpu-small-5f"]
    tiling = default_tiling(config, frames=5, size=(90, 100), element_bytes=2, free_bytes=80 << 30)
    grid = plan_tiles(90, 100, tile=tiling.tile, overlap=config.default_overlap, multiple=8)
    assert tiling.tile == TILE and grid.tile == (96, 104) and len(grid.origins) == 1


def test_little_memory_gives_the_smallest_tile_and_fixed_models_keep_theirs():
    config = PRESETS["vsrt-cpu-small"]
    assert default_tiling(config, frames=5, size=(720, 1280), element_bytes=2, free_bytes=1 << 20) == Tiling(MIN_TILE, 1)
    reds = default_tiling(PRESETS["vsrt-reds"], frames=5, size=(720, 1280), element_bytes=2, free_bytes=8 << 30)
    assert reds.tile == 64 and reds.batch > 1
    unknown = default_tiling(config, frames=5, size=None, element_bytes=2, free_bytes=80 << 30)
    assert unknown.tile > 0 and unknown.tile % 8 == 0  # clips of several sizes: never "whole frame"


@pytest.mark.parametrize("free", [8 << 30, 80 << 30, None])
def test_upscale_sizes_its_default_tiles_by_the_free_device_memory(monkeypatch, capsys, tiny_weights, tmp_path, free):
    from tests.media import make_clip
    from vsrt_cli.cli import app as cli
    from vsrt_cli.engine import runtime

    monkeypatch.setattr(runtime, "free_memory", lambda device: free)  # a CUDA card with this much free
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(1280, 720))
    options = dict(source=clip, output=tmp_path / "out.mkv", model=None, weights=tiny_weights, device="cpu",
                   precision="bf16", tile=None, tile_overlap=None, window=None, window_stride=None, batch=None,
                   codec=None, crf=16, preset="medium", pix_fmt=None, fps="25", no_audio=True,
                   overwrite=True, skip_bad_frames=False)
    net, job = cli._job(**options)
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: tiling:")]
    config = net.config
    want = default_tiling(config, frames=config.num_frame, kept=config.num_frame, size=(720, 1280),
                          element_bytes=2, free_bytes=free)
    assert (job.schedule.tile, job.schedule.batch) == (want.tile, want.batch)
    if free is None:  # the CPU: today's defaults, nothing said
        assert (job.schedule.tile, job.schedule.batch) == (128, 4) and said == []
    else:
        assert (job.schedule.tile, job.schedule.batch) != (128, 4) and len(said) == 1
        assert f"{free / 2**30:.1f} GiB free" in said[0]
        cli._job(**options, quiet=True)
        assert "tiling:" not in capsys.readouterr().err
    # given flags win; with only --tile given, the tiles per call are sized for it
    _, job = cli._job(**options | dict(tile=64, batch=2))
    assert (job.schedule.tile, job.schedule.batch) == (64, 2)
    _, job = cli._job(**options | dict(tile=64))
    assert job.schedule.tile == 64 and job.schedule.batch == (4 if free is None else default_tiling(
        config, frames=config.num_frame, size=(720, 1280), element_bytes=2, free_bytes=free, tile=64).batch)


def test_preview_candidates_are_tiled_as_upscale_would_tile_them(monkeypatch, tiny_weights, tmp_path):
    """`vsrt preview --try` without a batch: the tiles per call `vsrt upscale` would choose on
    this device, not a fixed 4."""
    from tests.media import make_clip
    from vsrt_cli.inspect import preview as preview_module
    from vsrt_cli.engine import runtime
    from vsrt_cli.cli.app import main

    free = 8 << 30
    monkeypatch.setattr(runtime, "free_memory", lambda device: free)
    seen = []

    def capture(source, output, candidates, **kw):
        seen.extend(candidates)
        return iter(())

    monkeypatch.setattr(preview_module, "preview", capture)
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(1280, 720))
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", str(clip), "-o", str(tmp_path / "p.mp4"), "--quiet", "--try", f"weights={tiny_weights},tile=64,precision=bf16",
              "--try", f"weights={tiny_weights},tile=64,batch=2,precision=bf16"])
    assert exit_info.value.code == 0
    config = seen[0].model.config
    want = default_tiling(config, frames=config.num_frame, size=(720, 1280), element_bytes=2, free_bytes=free, tile=64)
    assert want.batch != 4 and (seen[0].job.schedule.tile, seen[0].job.schedule.batch) == (64, want.batch)
    assert (seen[1].job.schedule.tile, seen[1].job.schedule.batch) == (64, 2)  # given: kept
