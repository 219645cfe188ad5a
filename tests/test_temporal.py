"""Temporal scores through `vsrt eval`: flicker along the ground truth's motion, and seams where
model calls meet."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from vsrt_cli.cli.app import main
from vsrt_cli.inspect.evaluate import ClipScore, score_clips
from vsrt_cli.io.frames import encode_png
from vsrt_cli.io.sidecar import write_sidecar
from vsrt_cli.engine.temporal import ReferenceFlow, call_ids

FRAMES, SIZE = 8, 64


def scene_frames() -> list[np.ndarray]:
    """A smooth textured scene panning 2 px right and 1 px down per frame (ground truth)."""
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, size=(SIZE // 4 + 8, SIZE // 4 + 12, 3)).astype(np.float64)
    big = np.kron(big, np.ones((4, 4, 1)))  # 4x4 blocks: texture a flow can follow
    kernel = np.ones(5) / 5
    for axis in (0, 1):
        big = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, big)
    return [big[30 - t : 30 - t + SIZE, 40 - 2 * t : 40 - 2 * t + SIZE].round().astype(np.uint8) for t in range(FRAMES)]


def save(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        (folder / f"f{i:03d}.png").write_bytes(encode_png(np.clip(frame, 0, 255).astype(np.uint8)))
    return folder


@pytest.fixture(scope="module")
def flow() -> ReferenceFlow:
    return ReferenceFlow()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("temporal")
    truth = scene_frames()
    smooth = [np.clip(f.astype(np.int16) + 3, 0, 255).astype(np.uint8) for f in truth]  # a steady offset
    rng = np.random.default_rng(1)
    noisy = [f + rng.normal(0, 6, f.shape) for f in smooth]  # the same frames, fresh noise per frame
    ids = call_ids(FRAMES, 5, 3)
    jump = [f.astype(np.float64) + 8 * (ids[t] % 2) for t, f in enumerate(smooth)]  # odd calls brighter
    return {name: save(root / name, frames) for name, frames in
            [("truth", truth), ("smooth", smooth), ("noisy", noisy), ("jump", jump)]}


def test_call_ids_follow_the_window_planner():
    assert call_ids(10, 5, 3) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert call_ids(6, 1, 1) == [0, 1, 2, 3, 4, 5]
    assert call_ids(8, 4, 4) == [0, 0, 0, 0, 1, 1, 1, 1]
    ids = call_ids(8, 4, 4, chunk_starts=(2,))
    assert ids[1] != ids[2] and ids[2] == ids[3]  # a chunk start is a new call


@pytest.fixture(scope="module")
def scores(flow, clips) -> dict[str, ClipScore]:
    names = ["smooth", "noisy", "jump"]
    found = score_clips([clips[n] for n in names], clips["truth"], names=names, flow=flow,
                        calls=lambda n: call_ids(n, 5, 3))
    return dict(zip(names, found))


def test_flicker_is_higher_with_per_frame_noise(scores):
    smooth, noisy = scores["smooth"], scores["noisy"]
    assert smooth.warp_error_truth < 1.5  # the flow explains the ground truth's own motion
    assert smooth.warp_error < 1.5 and noisy.warp_error > 2 * smooth.warp_error and noisy.warp_error > smooth.warp_error + 2
    assert smooth.warp_error_truth == noisy.warp_error_truth  # one reference for all
    assert len(noisy.warp_frames) == FRAMES and noisy.warp_frames[0] is None
    assert smooth.psnr_y == pytest.approx(np.mean(smooth.psnr_y_frames))


def test_seam_is_higher_with_a_jump_at_window_boundaries(scores):
    steady, jumpy = scores["smooth"], scores["jump"]
    assert steady.seam == pytest.approx(1.0, abs=0.3) and steady.seam_truth == pytest.approx(1.0, abs=0.3)
    assert jumpy.seam > 2.5
    assert jumpy.warp_error_truth == steady.warp_error_truth


def test_eval_reports_temporal_scores_and_plots(capsys, clips, tmp_path):
    scores, plot = tmp_path / "s.json", tmp_path / "plot.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(clips["smooth"]), str(clips["truth"]), "--window", "5"])
    assert exit_info.value.code == 2 and "--window-stride" in capsys.readouterr().err
    for name in ("smooth", "jump"):  # how they were made, as `vsrt upscale` records it
        write_sidecar(clips[name], {"vsrt": "test", "options": {"window": 5, "stride": 3}})
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(clips["smooth"]), str(clips["jump"]), str(clips["truth"]),
              "--json", str(scores), "--plot", str(plot)])
    assert exit_info.value.code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "warp" in text and "seam" in text and "truth" in text
    data = json.loads(scores.read_text())
    assert [c["name"] for c in data["clips"]] == ["smooth", "jump"]
    assert data["clips"][1]["seam"] > data["clips"][0]["seam"]
    from vsrt_cli.io.frames import read_image

    image, _, _ = read_image(plot)
    if os.environ.get("VSRT_KEEP_PLOT"):
        Path(os.environ["VSRT_KEEP_PLOT"]).write_bytes(plot.read_bytes())
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 4  # lines in distinct colours, not a blank
