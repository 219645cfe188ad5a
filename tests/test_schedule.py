"""Window, tile and blend geometry on edge sizes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vsrt_cli.engine.schedule import (
    WindowPlanner,
    blend_weights,
    normalised_weights,
    plan_tiles,
    plan_windows,
    reflection_circle,
    weight_total,
)


def test_reflection_circle_matches_the_official_examples():
    n = 20
    assert reflection_circle(0, n, 5) == (4, 3, 0, 1, 2)
    assert reflection_circle(1, n, 5) == (4, 0, 1, 2, 3)
    assert reflection_circle(n - 2, n, 5) == (n - 4, n - 3, n - 2, n - 1, n - 5)
    assert reflection_circle(n - 1, n, 5) == (n - 3, n - 2, n - 1, n - 4, n - 5)
    assert reflection_circle(0, n, 7) == (6, 5, 4, 0, 1, 2, 3)
    assert reflection_circle(n - 1, n, 7) == (n - 4, n - 3, n - 2, n - 1, n - 5, n - 6, n - 7)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 11, 12, 30])
@pytest.mark.parametrize("window,stride", [(5, 1), (5, 2), (5, 3), (5, 5), (7, 1), (7, 4), (3, 3), (1, 1), (4, 2)])
def test_every_frame_is_output_exactly_once_from_real_frames(n, window, stride):
    windows = plan_windows(n, window, stride)
    outputs = [o for w in windows for _, o in w.outputs]
    assert outputs == list(range(n))  # once each, in order
    for w in windows:
        assert len(w.frames) == min(window, n)
        assert all(0 <= f < n for f in w.frames)
        for pos, out in w.outputs:
            assert w.frames[pos] == out  # the output position holds that very frame


@pytest.mark.parametrize("n", [5, 6, 12])
def test_stride_one_is_the_official_centred_window(n):
    windows = plan_windows(n, 5, 1)
    assert [w.frames for w in windows] == [reflection_circle(i, n, 5) for i in range(n)]
    assert all(w.outputs == ((2, i),) for i, w in enumerate(windows))


def test_larger_stride_takes_each_frame_where_it_is_most_central():
    windows = plan_windows(12, 5, 3)
    assert [w.frames[0] for w in windows] == [0, 3, 6, 7]  # last one moved back to end on frame 11
    owned = [[o for _, o in w.outputs] for w in windows]
    assert owned == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11]]
    for w in windows[1:-1]:
        assert all(1 <= pos <= 3 for pos, _ in w.outputs)  # never an edge position mid-clip


@pytest.mark.parametrize("n", [1, 2, 5, 9, 17])
@pytest.mark.parametrize("window,stride", [(5, 1), (5, 3), (5, 5), (7, 2)])
def test_streaming_gives_the_same_windows_and_bounded_history(n, window, stride):
    planner = WindowPlanner(window, stride)
    streamed = []
    for available in range(n + 1):
        for w in planner.ready(available, eof=False):
            assert max(w.frames) < available
            streamed.append(w)
        # never more than a window and a bit of look-ahead pending
        assert available - planner.keep_from <= 3 * window
    streamed += planner.ready(n, eof=True)
    assert streamed == plan_windows(n, window, stride)


def test_keep_from_never_drops_a_needed_frame():
    for n, (window, stride) in itertools.product([6, 13], [(5, 1), (7, 1), (5, 3)]):
        planner = WindowPlanner(window, stride)
        kept_from = 0
        for available in range(n + 1):
            for w in planner.ready(available, eof=False):
                assert min(w.frames) >= kept_from
            kept_from = planner.keep_from
        for w in planner.ready(n, eof=True):
            assert min(w.frames) >= kept_from


def test_planner_rejects_impossible_settings():
    with pytest.raises(ValueError):
        WindowPlanner(4, 1)  # a centred window needs an odd length
    with pytest.raises(ValueError):
        WindowPlanner(5, 6)


# --- tiles ------------------------------------------------------------------------------------


def test_official_tiling_positions():
    # NOTES §9 worked example, REDS 180x320 with 64 tiles and overlap 32
    grid = plan_tiles(180, 320, tile=64, overlap=32, fixed=True)
    assert grid.rows == (0, 32, 64, 96, 116)
    assert grid.cols == (0, 32, 64, 96, 128, 160, 192, 224, 256)
    assert grid.padded == (180, 320)


@pytest.mark.parametrize("h,w", [(1, 1), (7, 13), (33, 64), (64, 64), (65, 200), (181, 321)])
@pytest.mark.parametrize("tile,overlap,multiple,fixed", [(64, 16, 8, False), (64, 32, 8, True), (32, 0, 8, False), (0, 0, 8, False)])
def test_tiles_cover_the_frame_and_fit_the_model(h, w, tile, overlap, multiple, fixed):
    grid = plan_tiles(h, w, tile=tile, overlap=overlap, multiple=multiple, fixed=fixed)
    th, tw = grid.tile
    assert th % multiple == 0 and tw % multiple == 0
    if fixed:
        assert (th, tw) == (tile, tile)
    ph, pw = grid.padded
    assert ph >= h and pw >= w
    covered = np.zeros((ph, pw), bool)
    for y, x in grid.origins:
        assert 0 <= y and y + th <= ph and 0 <= x and x + tw <= pw
        covered[y : y + th, x : x + tw] = True
    assert covered.all()
    assert len(set(grid.origins)) == len(grid.origins)


def test_bad_tile_settings_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        plan_tiles(100, 100, tile=64, overlap=64)
    with pytest.raises(ValueError, match="multiple of 8"):
        plan_tiles(100, 100, tile=60, overlap=8, multiple=8)
    with pytest.raises(ValueError, match="whole frame"):
        plan_tiles(100, 100, tile=0, overlap=0, fixed=True)


@pytest.mark.parametrize("h,w,tile,overlap", [(100, 150, 32, 8), (64, 64, 64, 16), (70, 90, 32, 16), (50, 200, 48, 0)])
def test_blend_weights_sum_to_one_and_are_smooth(h, w, tile, overlap):
    grid = plan_tiles(h, w, tile=tile, overlap=overlap, multiple=8)
    scale = 4
    raw = blend_weights(grid, scale)
    assert (weight_total(grid, raw, scale) > 0).all()
    total = weight_total(grid, normalised_weights(grid, scale), scale)
    np.testing.assert_allclose(total, 1.0, atol=1e-5)
    for wgt in raw:
        assert wgt.min() >= 0 and wgt.max() <= 1
        if overlap:  # no jumps bigger than a raised-cosine step
            assert np.abs(np.diff(wgt, axis=1)).max() < 0.2


@pytest.mark.parametrize("h,w", [(180, 320), (216, 384), (720, 1280), (1080, 1920), (129, 257), (40, 72)])
@pytest.mark.parametrize("tile,overlap", [(128, 16), (64, 8), (32, 8), (256, 32)])
def test_equal_tiles_cover_the_frame_with_the_least_work(h, w, tile, overlap):
    """Non-official models: as many tiles as stepping by ``tile - overlap`` needs, but each as
    small as still covers the frame with the overlap kept; never more work than stepping."""
    grid = plan_tiles(h, w, tile=tile, overlap=overlap, multiple=8)
    for length, side, starts in ((h, grid.tile[0], grid.rows), (w, grid.tile[1], grid.cols)):
        stepped = -(-(length - overlap) // (tile - overlap)) if length > tile else 1
        assert len(starts) == stepped and starts[0] == 0 and starts[-1] + side == max(length, side)
        assert side % 8 == 0 and side <= tile and (side >= min(tile, 32) or len(starts) == 1)
        assert all(b - a <= side - overlap for a, b in zip(starts, starts[1:]))  # overlap kept
    work = len(grid.rows) * grid.tile[0] * len(grid.cols) * grid.tile[1]
    old_rows = len(grid.rows) * min(tile, -(-h // 8) * 8)
    old_cols = len(grid.cols) * min(tile, -(-w // 8) * 8)
    assert work <= old_rows * old_cols
    if (h, w, tile, overlap) == (180, 320, 128, 16):
        assert grid.tile == (104, 120) and work / (h * w) < 1.31  # 3x2 tiles of 128 computed 1.71x the frame
